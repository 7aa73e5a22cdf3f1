//! Loads in flight ("single flight"): a `DashMap` from key to a shared [`Flight`] slot. The
//! first caller to miss registers a flight and runs its loader (the *leader*); later callers for
//! the same key find the flight and wait for its outcome, blocking ([`Flight::wait`]) or as a
//! future ([`Flight::wait_async`], executor-agnostic: wakers, no runtime). No shard lock is held
//! while a loader runs, and the leader stores the value through the cache's normal insert path
//! (listeners and weighers run outside the lock).

use std::any::Any;
use std::borrow::Borrow;
use std::future::poll_fn;
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Poll, Waker};

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use parking_lot::{Condvar, Mutex};

use crate::loader::LoadError;
use crate::{CachePolicy, ConcurrentCache};

/// A flight of any value and error type, as stored in the map.
pub(crate) trait Pending: Send + Sync {
    /// A write or invalidation overtook this load: its result must not be cached.
    fn supersede(&self);
    /// Callers waiting for this load's outcome.
    fn waiters(&self) -> usize;
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

/// What a flight holds: its outcome once published, and the wakers of async waiters.
struct State<V, E> {
    settled: Option<Settled<V, E>>,
    wakers: Vec<Waker>,
}

/// The slot one load publishes its outcome into.
pub(crate) struct Flight<V, E> {
    state: Mutex<State<V, E>>,
    done: Condvar,
    superseded: AtomicBool,
    /// Callers waiting (blocked or as futures) for the outcome.
    waiters: AtomicUsize,
}

/// Counts one waiter while it lives (a dropped waiting future stops counting).
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::AcqRel);
        Self(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl<V, E> Flight<V, E> {
    fn new() -> Self {
        Self {
            state: Mutex::new(State {
                settled: None,
                wakers: Vec::new(),
            }),
            done: Condvar::new(),
            superseded: AtomicBool::new(false),
            waiters: AtomicUsize::new(0),
        }
    }

    fn publish(&self, outcome: Settled<V, E>) {
        let wakers = {
            let mut state = self.state.lock();
            state.settled = Some(outcome);
            std::mem::take(&mut state.wakers)
        };
        self.done.notify_all();
        for waker in wakers {
            waker.wake();
        }
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
    pub(crate) fn wait(&self) -> Settled<V, E> {
        let _waiting = Waiting::new(&self.waiters);
        let mut state = self.state.lock();
        loop {
            if let Some(settled) = &state.settled {
                return settled.share();
            }
            self.done.wait(&mut state);
        }
    }

    /// Waits asynchronously until the load ends, on any executor (cancel-safe: dropping this
    /// future only stops waiting; its waker is woken once, harmlessly, at publication).
    pub(crate) async fn wait_async(&self) -> Settled<V, E> {
        let _waiting = Waiting::new(&self.waiters);
        poll_fn(|cx| {
            let mut state = self.state.lock();
            if let Some(settled) = &state.settled {
                return Poll::Ready(settled.share());
            }
            if !state.wakers.iter().any(|w| w.will_wake(cx.waker())) {
                state.wakers.push(cx.waker().clone());
            }
            Poll::Pending
        })
        .await
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

    fn waiters(&self) -> usize {
        self.waiters.load(Ordering::Acquire)
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

    /// Callers waiting on the load of `key` in flight (0 without one).
    pub(crate) fn waiters<Q>(&self, key: &Q) -> usize
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if self.count.load(Ordering::Acquire) == 0 {
            return 0;
        }
        self.map.get(key).map_or(0, |f| f.waiters())
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
    K: Hash + Eq + Clone + 'static,
    V: Clone + 'static,
    S: BuildHasher + Clone,
{
    /// Stores a found value in `cache` (unless a write superseded this load), then retires the
    /// flight and publishes the outcome to every waiter.
    pub(crate) fn complete<P: CachePolicy<K, V, S>>(
        mut self,
        cache: &ConcurrentCache<K, V, P, S>,
        outcome: Result<Option<V>, Arc<E>>,
    ) {
        if let Ok(Some(value)) = &outcome {
            // Checked under the shard lock, where writers set it: no write can slip in between.
            let flight = &self.flight;
            cache.store_loaded(self.key.clone(), value.clone(), || flight.is_superseded());
        }
        self.flights.retire(&self.key, &self.flight);
        self.flight.publish(Settled::Done(outcome));
        self.done = true;
    }

    /// Settles a loader's result: caches and publishes it, and hands it back typed for the leader.
    pub(crate) fn settle<T, P: CachePolicy<K, V, S>>(
        self,
        cache: &ConcurrentCache<K, V, P, S>,
        result: Result<T, E>,
        to_cache: fn(&T) -> Option<V>,
    ) -> Result<T, LoadError<E>> {
        match result {
            Ok(t) => {
                self.complete(cache, Ok(to_cache(&t)));
                Ok(t)
            }
            Err(e) => {
                let e = Arc::new(e);
                self.complete(cache, Err(Arc::clone(&e)));
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
