//! Async read-through in the caller's task, moka's names: [`ConcurrentCache::get_with`],
//! [`try_get_with`](ConcurrentCache::try_get_with) and
//! [`optionally_get_with`](ConcurrentCache::optionally_get_with). No feature and no runtime
//! needed: waiters park on wakers, and the loader is polled by its own caller, so its future may
//! borrow (it need not be `Send` or `'static`).

use std::convert::Infallible;
use std::future::Future;
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;

use crate::flight::{Join, Output, Required, Settled};
use crate::loader::{LoadError, LoadOutcome};
use crate::{CachePolicy, ConcurrentCache};

impl<K, V, P, S> ConcurrentCache<K, V, P, S>
where
    K: Hash + Eq + Clone + 'static,
    V: Clone + Send + Sync + 'static,
    S: BuildHasher + Clone,
    P: CachePolicy<K, V, S>,
{
    /// Returns the cached value for `key`, or awaits `init`, caches its value and returns it
    /// (moka's `get_with`).
    ///
    /// **One load per key**: concurrent misses on the same key (from tasks, or from blocking
    /// [`get_or_load`](Self::get_or_load) callers) run one loader; the others wait for it
    /// without blocking a thread and receive a clone of its value.
    ///
    /// `init` runs inside this call's own future, in the caller's task: it may borrow from the
    /// caller (a request handler's state, a `&Connection`), and need not be `Send` or
    /// `'static`. No runtime is required (any executor works). If this future is dropped while
    /// its loader runs, the load is abandoned: a waiting caller takes over and runs its own
    /// `init`. (`get_or_load_async`, with the `tokio` feature, runs the
    /// loader on a spawned task instead, which outlives its caller, at the price of a
    /// `Send + 'static` loader.)
    ///
    /// # Panics
    /// If `init` panics, the panic propagates to this caller; the callers waiting on this load
    /// run their own.
    ///
    /// # Examples
    ///
    /// ```
    /// use tierkit_cache::ConcurrentCache;
    ///
    /// struct Db {
    ///     rows: Vec<String>,
    /// }
    ///
    /// async fn name(cache: &ConcurrentCache<usize, String>, db: &Db, id: usize) -> String {
    ///     // The loader borrows `db`: no `Arc`, no `'static`.
    ///     cache.get_with(id, async { db.rows[id].clone() }).await
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tierkit_cache::Error> {
    /// let cache = ConcurrentCache::builder().max_capacity(100).build()?;
    /// let db = Db { rows: vec!["alice".to_string(), "bob".to_string()] };
    /// assert_eq!(name(&cache, &db, 1).await, "bob");
    /// assert_eq!(cache.get(&1).as_deref(), Some("bob"));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn get_with(&self, key: K, init: impl Future<Output = V>) -> V {
        match self
            .get_with_outcome(key, async { Ok::<_, Infallible>(init.await) })
            .await
        {
            Ok((v, _)) => v,
            Err(e) => match e.into_shared().map(Arc::unwrap_or_clone) {
                Some(never) => match never {},
                None => unreachable!("invariant: an in-task load is never abandoned to its leader"),
            },
        }
    }

    /// Returns the cached value for `key`, or awaits `init`, caches its `Ok` value and returns
    /// it (moka's `try_get_with`). One load per key as in [`get_with`](Self::get_with), whose
    /// notes apply; an error is shared: every caller of that load receives the same `Arc<E>`,
    /// and nothing is cached, so the next call loads again.
    ///
    /// Callers join a load when their loaders have the same error type `E` (the usual case);
    /// a concurrent load of the same key with another error type runs on its own.
    ///
    /// # Errors
    /// The loader's error, shared.
    ///
    /// # Panics
    /// As [`get_with`](Self::get_with).
    ///
    /// # Examples
    ///
    /// ```
    /// use tierkit_cache::ConcurrentCache;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let cache: ConcurrentCache<u32, u32> = ConcurrentCache::builder().max_capacity(100).build()?;
    /// let err = cache.try_get_with(1, async { Err::<u32, _>("backend down") }).await;
    /// assert_eq!(*err.unwrap_err(), "backend down");
    /// assert_eq!(cache.try_get_with(1, async { Ok::<_, &str>(7) }).await, Ok(7));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn try_get_with<E>(
        &self,
        key: K,
        init: impl Future<Output = Result<V, E>>,
    ) -> Result<V, Arc<E>>
    where
        E: Send + Sync + 'static,
    {
        self.try_get_with_outcome(key, init).await.map(|(v, _)| v)
    }

    /// [`try_get_with`](Self::try_get_with), also telling how the value was obtained: from the
    /// cache, from this call's loader, or from another caller's load that this call joined (see
    /// [`LoadOutcome`]).
    ///
    /// # Errors
    /// The loader's error, shared.
    ///
    /// # Panics
    /// As [`get_with`](Self::get_with).
    pub async fn try_get_with_outcome<E>(
        &self,
        key: K,
        init: impl Future<Output = Result<V, E>>,
    ) -> Result<(V, LoadOutcome), Arc<E>>
    where
        E: Send + Sync + 'static,
    {
        self.get_with_outcome(key, init).await.map_err(|e| match e {
            LoadError::Failed(e) => e,
            LoadError::Abandoned => {
                unreachable!("invariant: an in-task load is never abandoned to its leader")
            }
        })
    }

    /// Returns the cached value for `key`, or awaits `init`; caches and returns what it found
    /// (moka's `optionally_get_with`). `None` ("not found") reaches every caller of that load
    /// and is not cached. One load per key as in [`get_with`](Self::get_with), whose notes
    /// apply.
    ///
    /// # Panics
    /// As [`get_with`](Self::get_with).
    ///
    /// # Examples
    ///
    /// ```
    /// use tierkit_cache::ConcurrentCache;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tierkit_cache::Error> {
    /// let cache: ConcurrentCache<u32, String> = ConcurrentCache::builder().max_capacity(100).build()?;
    /// assert_eq!(cache.optionally_get_with(1, async { None }).await, None);
    /// assert!(!cache.contains(&1)); // "not found" is not cached
    /// # Ok(())
    /// # }
    /// ```
    pub async fn optionally_get_with(
        &self,
        key: K,
        init: impl Future<Output = Option<V>>,
    ) -> Option<V> {
        if let Some(v) = self.get(&key) {
            return Some(v);
        }
        let loader = async { Ok::<_, Infallible>(init.await) };
        match self
            .load_in_task::<Option<V>, Infallible>(key, loader)
            .await
        {
            Ok((v, _)) => v,
            Err(_) => unreachable!("invariant: an infallible in-task load has no error"),
        }
    }

    /// The hit path and the miss path of the `Result` front ends.
    async fn get_with_outcome<E>(
        &self,
        key: K,
        init: impl Future<Output = Result<V, E>>,
    ) -> Result<(V, LoadOutcome), LoadError<E>>
    where
        E: Send + Sync + 'static,
    {
        if let Some(v) = self.get(&key) {
            return Ok((v, LoadOutcome::Hit));
        }
        let loader = async { init.await.map(Required) };
        self.load_in_task(key, loader)
            .await
            .map(|(r, outcome)| (r.0, outcome))
    }

    /// The miss path: lead the flight and await `loader` here, or wait for the leader. Never
    /// returns [`LoadError::Abandoned`]: a waiter whose leader went away leads itself.
    async fn load_in_task<T, E>(
        &self,
        key: K,
        loader: impl Future<Output = Result<T, E>>,
    ) -> Result<(T, LoadOutcome), LoadError<E>>
    where
        T: Output<V>,
        E: Send + Sync + 'static,
    {
        let lead = loop {
            match self.flights.join::<V, E>(&key) {
                Join::Lead(lead) => break lead,
                Join::Wait(flight) => match flight.wait_async().await {
                    Settled::Done(Ok(found)) => {
                        if let Some(t) = T::from_flight(found) {
                            return Ok((t, LoadOutcome::Joined));
                        }
                    }
                    Settled::Done(Err(e)) => return Err(LoadError::Failed(e)),
                    // The leader panicked or was dropped: lead (or join whoever leads now).
                    Settled::Abandoned => {}
                },
                Join::Foreign => {
                    let t = self.load_uncoordinated(key, loader.await)?;
                    return Ok((t, LoadOutcome::Loaded));
                }
            }
        };
        // A load that finished between our miss and our registration cached its value already.
        let cached = self.peek(lead.key());
        if let Some(t) = cached.clone().and_then(|v| T::from_flight(Some(v))) {
            lead.complete(self, Ok(cached));
            return Ok((t, LoadOutcome::Hit));
        }
        // `lead` lives across this await: dropping the future drops it, which publishes
        // `Abandoned` and wakes the waiters.
        let result = loader.await;
        let t = lead.settle(self, result, T::to_cache)?;
        Ok((t, LoadOutcome::Loaded))
    }
}
