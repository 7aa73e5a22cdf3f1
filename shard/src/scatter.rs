//! Scatter-gather: one request fanned out to many shards concurrently, with a per-shard timeout,
//! bounded concurrency and an honest account of who answered.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::ShardId;

/// How to fan out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ScatterOptions {
    /// How long each shard may take before it counts as failed (default 1 s).
    pub timeout: Duration,
    /// At most this many shards are queried at once (default 16).
    pub concurrency: usize,
}

impl Default for ScatterOptions {
    fn default() -> Self {
        ScatterOptions {
            timeout: Duration::from_secs(1),
            concurrency: 16,
        }
    }
}

impl ScatterOptions {
    /// Sets the per-shard timeout.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the concurrency limit (0 is treated as 1).
    #[must_use]
    pub fn concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = concurrency;
        self
    }
}

/// Why a shard did not contribute to a [`Gathered`] result.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ShardFailure<E> {
    /// The shard's query returned an error.
    Error(E),
    /// The shard did not answer within the timeout.
    Timeout(Duration),
    /// The shard's query panicked.
    Panicked,
}

/// The answers of a scatter-gather: which shards answered with what, which failed and why.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Gathered<T, E> {
    /// Answers, by shard id ascending.
    pub ok: Vec<(ShardId, T)>,
    /// Failures, by shard id ascending.
    pub failed: Vec<(ShardId, ShardFailure<E>)>,
}

impl<T, E> Gathered<T, E> {
    /// Whether some shard failed, so the combined answer covers only part of the data.
    #[must_use]
    pub fn is_partial(&self) -> bool {
        !self.failed.is_empty()
    }

    /// The shards that answered.
    pub fn answered(&self) -> impl Iterator<Item = ShardId> + '_ {
        self.ok.iter().map(|(id, _)| *id)
    }

    /// The answers without their shard ids, in shard order.
    #[must_use]
    pub fn into_values(self) -> Vec<T> {
        self.ok.into_iter().map(|(_, v)| v).collect()
    }
}

/// Runs `query` on every target concurrently (at most `options.concurrency` at once, each
/// bounded by `options.timeout`) and gathers the results.
///
/// Cancellation-safe: dropping the returned future aborts the queries still running. Must be
/// called within a tokio runtime with time enabled.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use tierkit_shard::{ShardId, scatter::{scatter, ScatterOptions}};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let shards: Vec<(ShardId, Arc<Vec<u32>>)> =
///     (0..4).map(|i| (ShardId(i), Arc::new(vec![i; 3]))).collect();
/// let counts = scatter(shards, ScatterOptions::default(), |_, rows: Arc<Vec<u32>>| async move {
///     Ok::<_, String>(rows.len())
/// })
/// .await;
/// assert!(!counts.is_partial());
/// assert_eq!(counts.into_values().iter().sum::<usize>(), 12);
/// # }
/// ```
pub async fn scatter<S, T, E, F, Fut, I>(
    targets: I,
    options: ScatterOptions,
    query: F,
) -> Gathered<T, E>
where
    I: IntoIterator<Item = (ShardId, S)>,
    F: Fn(ShardId, S) -> Fut,
    Fut: Future<Output = Result<T, E>> + Send + 'static,
    T: Send + 'static,
    E: Send + 'static,
{
    let permits = Arc::new(Semaphore::new(options.concurrency.max(1)));
    let mut tasks = JoinSet::new();
    let mut task_shards = Vec::new();
    for (id, shard) in targets {
        let fut = query(id, shard);
        let permits = permits.clone();
        let timeout = options.timeout;
        let handle = tasks.spawn(async move {
            // The semaphore is never closed, so acquiring only waits for a free permit.
            let _permit = permits.acquire_owned().await;
            match tokio::time::timeout(timeout, fut).await {
                Ok(Ok(value)) => Ok(value),
                Ok(Err(e)) => Err(ShardFailure::Error(e)),
                Err(_) => Err(ShardFailure::Timeout(timeout)),
            }
        });
        task_shards.push((handle.id(), id));
    }
    let shard_of = |task| {
        task_shards
            .iter()
            .find(|(t, _)| *t == task)
            .map_or(ShardId(u32::MAX), |(_, id)| *id)
    };
    let mut gathered = Gathered {
        ok: Vec::new(),
        failed: Vec::new(),
    };
    while let Some(joined) = tasks.join_next_with_id().await {
        match joined {
            Ok((task, Ok(value))) => gathered.ok.push((shard_of(task), value)),
            Ok((task, Err(failure))) => gathered.failed.push((shard_of(task), failure)),
            Err(join_error) => gathered
                .failed
                .push((shard_of(join_error.id()), ShardFailure::Panicked)),
        }
    }
    gathered.ok.sort_by_key(|(id, _)| *id);
    gathered.failed.sort_by_key(|(id, _)| *id);
    gathered
}
