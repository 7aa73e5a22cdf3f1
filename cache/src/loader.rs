//! Read-through loading with stampede protection ("single flight"): [`LoadError`],
//! [`LoadOutcome`] and [`ConcurrentCache::get_or_load`].
//!
//! Loads in flight are kept in a `DashMap` from key to a shared [`Flight`] slot. The first caller
//! to miss registers a flight and runs its loader (the *leader*); later callers for the same key
//! find the flight and wait for its outcome. No shard lock is held while a loader runs.

use std::any::Any;
use std::borrow::Borrow;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use parking_lot::{Condvar, Mutex};

use crate::concurrent::Shard;
use crate::{Cache, CachePolicy, ConcurrentCache};

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

/// A flight of any value and error type, as stored in the map.
pub(crate) trait Pending: Send + Sync {
    /// A write or invalidation overtook this load: its result must not be cached.
    fn supersede(&self);
    /// For downcasting to the concrete [`Flight`].
    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync>;
}

/// How a load ended, as seen by a waiter.
pub(crate) enum Settled<V, E> {
    /// The loader returned: a value (`None`: "not found", not cached) or its shared error.
    Done(Result<Option<V>, Arc<E>>),
    /// The leader went away (panicked, or its future was dropped) without an outcome.
    Abandoned,
}

/// The slot one load publishes its outcome into.
pub(crate) struct Flight<V, E> {
    state: Mutex<Option<Settled<V, E>>>,
    done: Condvar,
    #[cfg(feature = "tokio")]
    notify: tokio::sync::Notify,
    superseded: AtomicBool,
}

impl<V, E> Flight<V, E> {
    fn new() -> Self {
        Self {
            state: Mutex::new(None),
            done: Condvar::new(),
            #[cfg(feature = "tokio")]
            notify: tokio::sync::Notify::new(),
            superseded: AtomicBool::new(false),
        }
    }

    fn publish(&self, outcome: Settled<V, E>) {
        *self.state.lock() = Some(outcome);
        self.done.notify_all();
        #[cfg(feature = "tokio")]
        self.notify.notify_waiters();
    }

    fn is_superseded(&self) -> bool {
        self.superseded.load(Ordering::Acquire)
    }
}

impl<V: Clone, E> Settled<V, E> {
    fn share(&self) -> Self {
        match self {
            Self::Done(Ok(v)) => Self::Done(Ok(v.clone())),
            Self::Done(Err(e)) => Self::Done(Err(Arc::clone(e))),
            Self::Abandoned => Self::Abandoned,
        }
    }
}

impl<V: Clone, E> Flight<V, E> {
    /// Blocks the thread until the load ends.
    fn wait(&self) -> Settled<V, E> {
        let mut state = self.state.lock();
        loop {
            if let Some(settled) = &*state {
                return settled.share();
            }
            self.done.wait(&mut state);
        }
    }

    /// Waits asynchronously until the load ends (cancel-safe: dropping this future only stops
    /// waiting).
    #[cfg(feature = "tokio")]
    pub(crate) async fn wait_async(&self) -> Settled<V, E> {
        loop {
            let mut notified = std::pin::pin!(self.notify.notified());
            notified.as_mut().enable();
            if let Some(settled) = &*self.state.lock() {
                return settled.share();
            }
            notified.await;
        }
    }
}

impl<V, E> Pending for Flight<V, E>
where
    V: Send + Sync + 'static,
    E: Send + Sync + 'static,
{
    fn supersede(&self) {
        self.superseded.store(true, Ordering::Release);
    }

    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }
}

/// The loads in flight of one cache.
pub(crate) struct Flights<K, S> {
    map: DashMap<K, Arc<dyn Pending>, S>,
    /// Entries in `map`, so writes skip the map entirely while nothing loads.
    count: AtomicUsize,
}

impl<K, S> Flights<K, S>
where
    K: Hash + Eq,
    S: BuildHasher + Clone,
{
    pub(crate) fn new(hasher: S) -> Self {
        Self {
            map: DashMap::with_hasher(hasher),
            count: AtomicUsize::new(0),
        }
    }

    /// A write to `key` overtook any load of it: that load must not cache its (older) result, and
    /// later callers must not join it. Called under `key`'s shard lock.
    pub(crate) fn supersede<Q>(&self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if self.count.load(Ordering::Acquire) == 0 {
            return;
        }
        if let Some((_, flight)) = self.map.remove(key) {
            self.count.fetch_sub(1, Ordering::AcqRel);
            flight.supersede();
        }
    }

    /// [`supersede`](Self::supersede) for every load in flight.
    pub(crate) fn supersede_all(&self) {
        if self.count.load(Ordering::Acquire) == 0 {
            return;
        }
        self.map.retain(|_, flight| {
            flight.supersede();
            self.count.fetch_sub(1, Ordering::AcqRel);
            false
        });
    }

    /// Removes `flight` from the map if it is still registered there.
    fn retire<V, E>(&self, key: &K, flight: &Arc<Flight<V, E>>) {
        let mine =
            |_: &K, f: &Arc<dyn Pending>| std::ptr::addr_eq(Arc::as_ptr(f), Arc::as_ptr(flight));
        if self.map.remove_if(key, mine).is_some() {
            self.count.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// What a caller that missed does next.
pub(crate) enum Join<K, V, E, S>
where
    K: Hash + Eq,
    S: BuildHasher + Clone,
{
    /// Run the loader: this caller registered the flight.
    Lead(Lead<K, V, E, S>),
    /// Wait for the flight another caller leads.
    Wait(Arc<Flight<V, E>>),
    /// A load of the same key with a different error type is in flight: load without
    /// coordination.
    Foreign,
}

impl<K, S> Flights<K, S>
where
    K: Hash + Eq + Clone,
    S: BuildHasher + Clone,
{
    /// Joins the load of `key` in flight, or registers a new one.
    pub(crate) fn join<V, E>(self: &Arc<Self>, key: &K) -> Join<K, V, E, S>
    where
        V: Clone + Send + Sync + 'static,
        E: Send + Sync + 'static,
    {
        match self.map.entry(key.clone()) {
            Entry::Occupied(e) => match Arc::clone(e.get()).into_any().downcast::<Flight<V, E>>() {
                Ok(flight) => Join::Wait(flight),
                Err(_) => Join::Foreign,
            },
            Entry::Vacant(e) => {
                let flight = Arc::new(Flight::new());
                e.insert(Arc::clone(&flight) as Arc<dyn Pending>);
                self.count.fetch_add(1, Ordering::AcqRel);
                Join::Lead(Lead {
                    flights: Arc::clone(self),
                    key: key.clone(),
                    flight,
                    done: false,
                })
            }
        }
    }
}

/// The leader's duty: publish an outcome. Dropped without one (the loader panicked, or the
/// leading future was dropped), it publishes [`Settled::Abandoned`] so waiters retry.
pub(crate) struct Lead<K, V, E, S>
where
    K: Hash + Eq,
    S: BuildHasher + Clone,
{
    flights: Arc<Flights<K, S>>,
    key: K,
    flight: Arc<Flight<V, E>>,
    done: bool,
}

impl<K, V, E, S> Lead<K, V, E, S>
where
    K: Hash + Eq + Clone,
    V: Clone,
    S: BuildHasher + Clone,
{
    /// Stores a found value in `shard` (unless a write superseded this load), then retires the
    /// flight and publishes the outcome to every waiter.
    pub(crate) fn complete<P: Cache<K, V>>(
        mut self,
        shard: &Shard<P>,
        outcome: Result<Option<V>, Arc<E>>,
    ) {
        if let Ok(Some(value)) = &outcome {
            let mut policy = shard.lock.write();
            // Checked under the shard lock, where writers set it: no write can slip in between.
            if !self.flight.is_superseded() {
                policy.insert(self.key.clone(), value.clone());
            }
        }
        self.flights.retire(&self.key, &self.flight);
        self.flight.publish(Settled::Done(outcome));
        self.done = true;
    }

    /// Settles a loader's result: caches and publishes it, and hands it back typed for the leader.
    pub(crate) fn settle<T, P: Cache<K, V>>(
        self,
        shard: &Shard<P>,
        result: Result<T, E>,
        to_cache: fn(&T) -> Option<V>,
    ) -> Result<T, LoadError<E>> {
        match result {
            Ok(t) => {
                self.complete(shard, Ok(to_cache(&t)));
                Ok(t)
            }
            Err(e) => {
                let e = Arc::new(e);
                self.complete(shard, Err(Arc::clone(&e)));
                Err(LoadError::Failed(e))
            }
        }
    }

    pub(crate) fn key(&self) -> &K {
        &self.key
    }
}

impl<K, V, E, S> Drop for Lead<K, V, E, S>
where
    K: Hash + Eq,
    S: BuildHasher + Clone,
{
    fn drop(&mut self) {
        if !self.done {
            self.flights.retire(&self.key, &self.flight);
            self.flight.publish(Settled::Abandoned);
        }
    }
}

/// What the typed front ends ask of a flight's outcome.
pub(crate) trait Output<V>: Sized {
    /// The value to cache, if any.
    fn to_cache(&self) -> Option<V>;
    /// This caller's answer from a published outcome; `None`: run an own loader instead.
    fn from_flight(found: Option<V>) -> Option<Self>;
}

/// `get_or_load`: a value is required; a "not found" flight makes the waiter load itself.
impl<V: Clone> Output<V> for Required<V> {
    fn to_cache(&self) -> Option<V> {
        Some(self.0.clone())
    }
    fn from_flight(found: Option<V>) -> Option<Self> {
        found.map(Required)
    }
}

/// `get_or_load_opt`: "not found" is an answer.
impl<V: Clone> Output<V> for Option<V> {
    fn to_cache(&self) -> Option<V> {
        self.clone()
    }
    fn from_flight(found: Option<V>) -> Option<Self> {
        Some(found)
    }
}

/// A value that must be present.
pub(crate) struct Required<V>(pub(crate) V);

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
    K: Hash + Eq + Clone,
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
        let hash = self.hash(lead.key());
        let shard = self.shard(hash);
        // A load that finished between our miss and our registration cached its value already.
        let cached = shard.lock.read().peek_hashed(hash, lead.key()).cloned();
        if let Some(t) = cached.clone().and_then(|v| T::from_flight(Some(v))) {
            lead.complete(shard, Ok(cached));
            return Ok((t, LoadOutcome::Hit));
        }
        let t = lead.settle(shard, loader(), T::to_cache)?;
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
