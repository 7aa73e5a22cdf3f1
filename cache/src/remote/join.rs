//! Awaits many futures concurrently on the current task (no spawning, no `'static` bound).

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

/// Polls every future until all are ready; outputs in input order.
pub(crate) async fn join_all<F: Future>(futs: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let mut pinned: Vec<Pin<Box<F>>> = futs.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = (0..pinned.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, slot) in pinned.iter_mut().zip(out.iter_mut()) {
            if slot.is_none() {
                match f.as_mut().poll(cx) {
                    Poll::Ready(v) => *slot = Some(v),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    out.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn keeps_order() {
        let out = join_all((0..5u64).map(|i| async move {
            tokio::task::yield_now().await;
            i * 2
        }))
        .await;
        assert_eq!(out, [0, 2, 4, 6, 8]);
    }
}
