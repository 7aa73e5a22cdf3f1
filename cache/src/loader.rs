//! Blocking read-through loading with stampede protection ("single flight"): [`LoadError`],
//! [`LoadOutcome`] and [`ConcurrentCache::get_or_load`] (the flights themselves are in
//! `flight.rs`).

use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;

use crate::flight::{Join, Output, Required, Settled};
use crate::{CachePolicy, ConcurrentCache};

/// Why [`get_or_load`](ConcurrentCache::get_or_load) (or its async and wrapper forms) produced no
/// value.
///
/// The loader's own error is shared: every caller that waited on the same load receives the same
/// `Arc<E>`, and nothing is cached, so the next call runs a loader again.
#[non_exhaustive]
pub enum LoadError<E> {
    /// The loader returned this error.
    Failed(Arc<E>),
    /// The load ended without an outcome: its task was cancelled (for example because the tokio
    /// runtime shut down) before the loader finished.
    Abandoned,
}

impl<E> LoadError<E> {
    /// The loader's error, if it returned one.
    #[must_use]
    pub fn error(&self) -> Option<&E> {
        match self {
            Self::Failed(e) => Some(e),
            Self::Abandoned => None,
        }
    }

    /// The shared loader error, if it returned one.
    #[must_use]
    pub fn into_shared(self) -> Option<Arc<E>> {
        match self {
            Self::Failed(e) => Some(e),
            Self::Abandoned => None,
        }
    }
}

impl<E> Clone for LoadError<E> {
    fn clone(&self) -> Self {
        match self {
            Self::Failed(e) => Self::Failed(Arc::clone(e)),
            Self::Abandoned => Self::Abandoned,
        }
    }
}

impl<E: fmt::Debug> fmt::Debug for LoadError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Failed(e) => f.debug_tuple("Failed").field(e).finish(),
            Self::Abandoned => f.write_str("Abandoned"),
        }
    }
}

impl<E: fmt::Display> fmt::Display for LoadError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Failed(e) => write!(f, "loader failed: {e}"),
            Self::Abandoned => f.write_str("load was abandoned before it finished"),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for LoadError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Failed(e) => Some(&**e),
            Self::Abandoned => None,
        }
    }
}

/// How [`get_or_load_with_outcome`](ConcurrentCache::get_or_load_with_outcome) (or its async
/// form) obtained the value it returned: for `X-Cache: HIT` headers, per-request metrics, or
/// tests of a read-through path.
///
/// # Examples
///
/// ```
/// use tierkit_cache::{ConcurrentCache, LoadOutcome, LruCache};
///
/// let cache: ConcurrentCache<u32, String, LruCache<u32, String>> = ConcurrentCache::new(100)?;
/// let load = || Ok::<_, std::io::Error>("seven".to_string());
/// let (value, outcome) = cache.get_or_load_with_outcome(7, load)?;
/// assert_eq!((value.as_str(), outcome), ("seven", LoadOutcome::Loaded));
/// let (_, outcome) = cache.get_or_load_with_outcome(7, load)?;
/// assert_eq!(outcome, LoadOutcome::Hit);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LoadOutcome {
    /// The value was in the cache; no loader ran for this call and it did not wait for one.
    /// This includes the rare case where the first lookup missed but a concurrent load stored the
    /// value just before this call would have run its own loader (the stats then count a miss).
    Hit,
    /// This call's loader ran and returned the value (cached unless a write to the key overtook
    /// the load).
    Loaded,
    /// Another caller's load of the same key was in flight: this call waited for it and returns
    /// a clone of its value; its own loader did not run.
    Joined,
}

impl LoadOutcome {
    /// Whether the value came from the cache without waiting ([`Hit`](Self::Hit)).
    #[must_use]
    pub fn is_hit(self) -> bool {
        self == Self::Hit
    }
}

impl<K, V, P, S> ConcurrentCache<K, V, P, S>
where
    K: Hash + Eq + Clone + 'static,
    V: Clone + Send + Sync + 'static,
    S: BuildHasher + Clone,
    P: CachePolicy<K, V, S>,
{
    /// Returns the cached value for `key`, or runs `loader`, caches its value and returns it.
    ///
    /// **Stampede protection**: concurrent misses on the same key run one loader; every other
    /// caller blocks until it finishes and receives a clone of its value (or its error). No lock
    /// of the cache is held while the loader runs. The first lookup counts as a hit or a miss in
    /// [`stats`](Self::stats).
    ///
    /// - A loader error reaches every caller of that load as the same
    ///   [`LoadError::Failed`]`(Arc<E>)`; nothing is cached, so the next call loads again.
    /// - Callers share a load when their loaders have the same error type `E` (the usual case);
    ///   a concurrent load of the same key with another error type runs on its own.
    /// - This call blocks its thread while waiting; in async code use `get_or_load_async`
    ///   (feature `tokio`), which waits without blocking and shares flights with this method.
    /// - If a write ([`insert`](Self::insert), [`remove`](Self::remove),
    ///   [`invalidate`](Self::invalidate), ...) to `key` happens while the loader runs, the loaded
    ///   value is still returned to the callers of this load but is not cached: it may be older
    ///   than the write.
    ///
    /// # Errors
    /// [`LoadError::Failed`] with the loader's error.
    ///
    /// # Panics
    /// If `loader` panics, the panic propagates to this caller; callers waiting on this load
    /// wake up and one of them runs its own loader (no one is left waiting).
    ///
    /// # Examples
    ///
    /// ```
    /// use tierkit_cache::{ConcurrentCache, LruCache};
    ///
    /// let cache: ConcurrentCache<u32, String, LruCache<u32, String>> = ConcurrentCache::new(100)?;
    /// let v = cache.get_or_load(7, || Ok::<_, std::io::Error>("seven".to_string()));
    /// assert_eq!(v.ok().as_deref(), Some("seven"));
    /// // Cached now: the loader does not run.
    /// let v = cache.get_or_load(7, || Err(std::io::Error::other("not called")));
    /// assert_eq!(v.ok().as_deref(), Some("seven"));
    /// # Ok::<(), tierkit_cache::Error>(())
    /// ```
    pub fn get_or_load<E>(
        &self,
        key: K,
        loader: impl FnOnce() -> Result<V, E>,
    ) -> Result<V, LoadError<E>>
    where
        E: Send + Sync + 'static,
    {
        self.get_or_load_with_outcome(key, loader).map(|(v, _)| v)
    }

    /// [`get_or_load`](Self::get_or_load), also telling how the value was obtained: from the
    /// cache, from this call's loader, or from another caller's load that this call joined (see
    /// [`LoadOutcome`]).
    ///
    /// # Errors
    /// [`LoadError::Failed`] with the loader's error (the loader of this call, or of the load it
    /// joined).
    ///
    /// # Panics
    /// As [`get_or_load`](Self::get_or_load): a loader's panic propagates to its caller.
    ///
    /// # Examples
    ///
    /// ```
    /// use tierkit_cache::{ConcurrentCache, LoadOutcome, LruCache};
    ///
    /// let cache: ConcurrentCache<u64, u64, LruCache<u64, u64>> = ConcurrentCache::new(100)?;
    /// let (v, how) = cache.get_or_load_with_outcome(2, || Ok::<_, std::io::Error>(4))?;
    /// assert_eq!((v, how), (4, LoadOutcome::Loaded));
    /// let (v, how) = cache.get_or_load_with_outcome(2, || Ok::<_, std::io::Error>(5))?;
    /// assert_eq!((v, how), (4, LoadOutcome::Hit));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn get_or_load_with_outcome<E>(
        &self,
        key: K,
        loader: impl FnOnce() -> Result<V, E>,
    ) -> Result<(V, LoadOutcome), LoadError<E>>
    where
        E: Send + Sync + 'static,
    {
        if let Some(v) = self.get(&key) {
            return Ok((v, LoadOutcome::Hit));
        }
        self.load(key, || loader().map(Required))
            .map(|(r, outcome)| (r.0, outcome))
    }

    /// Like [`get_or_load`](Self::get_or_load) for a loader that may find nothing: `Ok(None)` is
    /// returned to every caller of that load and nothing is cached (no negative caching).
    ///
    /// # Errors
    /// [`LoadError::Failed`] with the loader's error.
    ///
    /// # Panics
    /// As [`get_or_load`](Self::get_or_load): a loader's panic propagates to its caller.
    pub fn get_or_load_opt<E>(
        &self,
        key: K,
        loader: impl FnOnce() -> Result<Option<V>, E>,
    ) -> Result<Option<V>, LoadError<E>>
    where
        E: Send + Sync + 'static,
    {
        if let Some(v) = self.get(&key) {
            return Ok(Some(v));
        }
        self.load(key, loader).map(|(v, _)| v)
    }

    /// How many callers are waiting for the load of `key` in flight (0 when none runs): the
    /// size of a stampede that single flight is absorbing, for metrics and for tests that
    /// need to know a caller has joined.
    ///
    /// # Examples
    ///
    /// ```
    /// use tierkit_cache::ConcurrentCache;
    ///
    /// let cache: ConcurrentCache<u32, u32> = ConcurrentCache::new(100)?;
    /// assert_eq!(cache.load_waiters(&1), 0);
    /// # Ok::<(), tierkit_cache::Error>(())
    /// ```
    pub fn load_waiters<Q>(&self, key: &Q) -> usize
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.flights.waiters(key)
    }

    /// The miss path of every sync front end.
    pub(crate) fn load<T, E>(
        &self,
        key: K,
        loader: impl FnOnce() -> Result<T, E>,
    ) -> Result<(T, LoadOutcome), LoadError<E>>
    where
        T: Output<V>,
        E: Send + Sync + 'static,
    {
        let lead = loop {
            match self.flights.join::<V, E>(&key) {
                Join::Lead(lead) => break lead,
                Join::Wait(flight) => match flight.wait() {
                    Settled::Done(Ok(found)) => {
                        if let Some(t) = T::from_flight(found) {
                            return Ok((t, LoadOutcome::Joined));
                        }
                    }
                    Settled::Done(Err(e)) => return Err(LoadError::Failed(e)),
                    // The leader panicked: try to lead (or join whoever leads now).
                    Settled::Abandoned => {}
                },
                Join::Foreign => {
                    let t = self.load_uncoordinated(key, loader())?;
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
        let t = lead.settle(self, loader(), T::to_cache)?;
        Ok((t, LoadOutcome::Loaded))
    }

    /// Caches and returns a result loaded without a flight.
    pub(crate) fn load_uncoordinated<T, E>(
        &self,
        key: K,
        result: Result<T, E>,
    ) -> Result<T, LoadError<E>>
    where
        T: Output<V>,
    {
        let t = result.map_err(|e| LoadError::Failed(Arc::new(e)))?;
        if let Some(v) = t.to_cache() {
            self.insert(key, v);
        }
        Ok(t)
    }
}
