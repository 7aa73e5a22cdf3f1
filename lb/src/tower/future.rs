//! The response futures: [`ResponseFuture`] (timing, outcome, timeout) and [`Oneshot`] (a
//! picked backend service driven to readiness, then called).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use ::tower::{BoxError, Service};
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};

use super::Classify;
use crate::{Error, Lease, NoBackend};

/// What a started request carries until its outcome is known.
struct Attempt<B, C> {
    lease: Lease<B>,
    /// The balancer's clock at `call`.
    start: u64,
    classify: C,
    /// The timeout and tokio's clock at `call` (read only when there is a timeout).
    timeout: Option<(Duration, Instant)>,
}

pin_project! {
    /// The future of one balanced request: resolves to the inner service's response, and
    /// reports the outcome on the request's [`Lease`] when it does: a success with the time
    /// since `call` (an `Ok` response the classifier accepts), or a failure (an inner error, a
    /// response the classifier rejects, or the balancer's timeout, which resolves to
    /// [`Error::Timeout`]). Dropping it before it resolves counts the request as cancelled.
    /// A pick that found no backend resolves at once to [`Error::NoBackend`].
    ///
    /// The timer is created on the first poll, so a timeout needs a tokio runtime with time
    /// enabled there; without a timeout nothing here needs a runtime.
    #[must_use = "futures do nothing unless polled"]
    pub struct ResponseFuture<F, B, C> {
        #[pin]
        inner: Option<F>,
        // Boxed: a tokio `Sleep` is several times the size of the rest of the future, which is
        // moved a few times before it is pinned; only requests with a timeout allocate it.
        sleep: Option<Pin<Box<Sleep>>>,
        attempt: Option<Attempt<B, C>>,
        refused: Option<NoBackend>,
    }
}

impl<F, B, C> ResponseFuture<F, B, C> {
    pub(crate) fn new(inner: F, lease: Lease<B>, classify: C, timeout: Option<Duration>) -> Self {
        Self {
            inner: Some(inner),
            sleep: None,
            attempt: Some(Attempt {
                start: lease.clock_now(),
                lease,
                classify,
                timeout: timeout.map(|limit| (limit, Instant::now())),
            }),
            refused: None,
        }
    }

    pub(crate) fn refused(reason: NoBackend) -> Self {
        Self {
            inner: None,
            sleep: None,
            attempt: None,
            refused: Some(reason),
        }
    }
}

impl<F, B, C, Res, E> Future for ResponseFuture<F, B, C>
where
    F: Future<Output = Result<Res, E>>,
    E: Into<BoxError>,
    C: Classify<Res>,
{
    type Output = Result<Res, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let Some(inner) = this.inner.as_mut().as_pin_mut() else {
            return Poll::Ready(Err(match this.refused.take() {
                Some(reason) => Error::NoBackend(reason).into(),
                None => "tierkit_lb::tower::ResponseFuture polled after completion".into(),
            }));
        };
        if let Poll::Ready(result) = inner.poll(cx) {
            this.inner.set(None);
            *this.sleep = None;
            if let Some(a) = this.attempt.take() {
                match &result {
                    Ok(res) if !a.classify.is_failure(res) => {
                        // The reading that ends the latency also timestamps the observation.
                        let end = a.lease.clock_now();
                        a.lease.success_at(end.saturating_sub(a.start), end);
                    }
                    _ => a.lease.failure(),
                }
            }
            return Poll::Ready(result.map_err(Into::into));
        }
        let Some(a) = this.attempt.as_ref() else {
            return Poll::Pending;
        };
        let Some((limit, called)) = a.timeout else {
            return Poll::Pending;
        };
        if this.sleep.is_none() {
            // `None` (a deadline past the clock's range) means no deadline.
            let Some(deadline) = called.checked_add(limit) else {
                return Poll::Pending;
            };
            *this.sleep = Some(Box::pin(tokio::time::sleep_until(deadline)));
        }
        if let Some(sleep) = this.sleep.as_mut()
            && sleep.as_mut().poll(cx).is_ready()
        {
            this.inner.set(None);
            *this.sleep = None;
            if let Some(a) = this.attempt.take() {
                a.lease.failure();
            }
            return Poll::Ready(Err(Error::Timeout(limit).into()));
        }
        Poll::Pending
    }
}

impl<F, B: fmt::Debug, C> fmt::Debug for ResponseFuture<F, B, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("lease", &self.attempt.as_ref().map(|a| &a.lease))
            .field("refused", &self.refused)
            .finish_non_exhaustive()
    }
}

pin_project! {
    /// A picked backend's own service (a clone of the balancer's value), polled until ready
    /// and then called with the request. Waiting for readiness happens while the request holds
    /// its lease, so the wait counts as in flight on that backend.
    pub struct Oneshot<S, Req>
    where
        S: Service<Req>,
    {
        #[pin]
        state: State<S, Req>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, Req>
    where
        S: Service<Req>,
    {
        NotReady { svc: S, req: Option<Req> },
        Called { #[pin] fut: S::Future },
    }
}

impl<S: Service<Req>, Req> Oneshot<S, Req> {
    pub(crate) fn new(svc: S, req: Req) -> Self {
        Self {
            state: State::NotReady {
                svc,
                req: Some(req),
            },
        }
    }
}

impl<S: Service<Req>, Req> Future for Oneshot<S, Req> {
    type Output = Result<S::Response, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            match state.as_mut().project() {
                StateProj::NotReady { svc, req } => {
                    ready!(svc.poll_ready(cx))?;
                    let req = req.take().expect("invariant: NotReady holds its request");
                    let fut = svc.call(req);
                    state.set(State::Called { fut });
                }
                StateProj::Called { fut } => return fut.poll(cx),
            }
        }
    }
}

impl<S: Service<Req>, Req> fmt::Debug for Oneshot<S, Req> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.state {
            State::NotReady { .. } => "Oneshot::NotReady",
            State::Called { .. } => "Oneshot::Called",
        })
    }
}
