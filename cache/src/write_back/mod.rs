//! [`WriteBack`] (write-behind): writes are acknowledged once in memory and reach the [`Store`]
//! later, in batches.

use std::fmt;
use std::hash::{BuildHasher, Hash};

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use parking_lot::{Condvar, Mutex};

use crate::{
    CachePolicy, Clock, ConcurrentCache, Error, LoadError, Result, SipHashBuilder, Store,
    SystemClock,
};

mod builder;
mod flush;

pub use builder::WriteBackBuilder;

/// A write not yet in the store: the latest value (`None`: a delete) and its sequence number.
struct Dirty<V> {
    value: Option<V>,
    seq: u64,
}

/// Counters of a [`WriteBack`] since it was built.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WriteBackStats {
    /// Flushes that wrote everything they set out to write.
    pub flushes: u64,
    /// Batches the store accepted.
    pub batches: u64,
    /// Values written to the store.
    pub written: u64,
    /// Deletes applied to the store.
    pub deleted: u64,
    /// Batches the store refused (their entries stayed dirty).
    pub failures: u64,
    /// Failed flushes since the last successful one (drives the retry backoff).
    pub consecutive_failures: u32,
}

/// Flush bookkeeping, guarded by the flush lock (one flush at a time).
struct FlushState {
    /// When the last flush started.
    /// The clock's reading (nanoseconds) at the last flush.
    last_flush: u64,
    /// After a failed flush: how long after `last_flush` `tick` waits before retrying.
    backoff: Option<Duration>,
    stats: WriteBackStats,
}

/// What the background flusher is told.
#[derive(Default)]
struct Signal {
    wake: bool,
    stop: bool,
}

/// The settings of a [`WriteBack`]; see [`WriteBackBuilder`].
#[derive(Clone)]
struct Config {
    max_batch: usize,
    interval: Duration,
    initial_backoff: Duration,
    max_backoff: Duration,
    clock: Arc<dyn Clock>,
}

/// Everything the handle and the flusher thread share.
struct Shared<K, V, P, St, S> {
    cache: ConcurrentCache<K, V, P, S>,
    store: St,
    dirty: DashMap<K, Dirty<V>, S>,
    dirty_len: AtomicUsize,
    seq: AtomicU64,
    config: Config,
    flush: Mutex<FlushState>,
    /// A copy of `flush.stats`, readable while a flush holds the flush lock.
    stats: Mutex<WriteBackStats>,
    signal: Mutex<Signal>,
    wakeup: Condvar,
    flusher_running: AtomicBool,
}

/// A write-back (write-behind) cache: writes land in the cache and in a *dirty set* and are
/// acknowledged at once; a flush writes the dirty set to the [`Store`] in batches.
///
/// # When data reaches the store
/// - On [`flush`](Self::flush) and [`close`](Self::close), and when the handle is dropped (a
///   last, best-effort flush whose error is lost: call `close` to see it).
/// - On [`tick`](Self::tick) when a flush is due: `max_batch` or more dirty keys, or dirty keys
///   and `flush_interval` elapsed since the last flush (time from the builder's [`Clock`]).
///   [`spawn_flusher`](Self::spawn_flusher) starts a background thread that ticks on its own,
///   woken early when the dirty set reaches `max_batch`.
///
/// A flush writes at most `max_batch` entries per [`Store::store_all`] / [`Store::delete_all`]
/// call. A refused batch keeps its entries dirty and is retried by later flushes; `tick` waits
/// out an exponential backoff (from `initial_backoff`, doubling up to `max_backoff`) after each
/// failure, while an explicit `flush` always tries at once. Deletes are written back too (as
/// tombstones in the dirty set). Batches are retried whole, so store writes must be idempotent.
///
/// # Reads
/// [`get`](Self::get) sees the latest acknowledged write: the dirty set is consulted first, then
/// the cache, then the store (read-through with stampede protection). Dirty values live in the
/// dirty set until the store has them, so the cache evicting a dirty entry loses nothing.
///
/// # The crash window
/// Everything dirty lives only in this process's memory: if the process dies before a flush,
/// those writes are lost although they were acknowledged. Bound the window with a short
/// interval and `max_batch`; when writes must survive a crash, append them to a durable log
/// first (for example a `tierkit-mq` queue, replayed into the store) or use
/// [`WriteThrough`](crate::WriteThrough).
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use tierkit_cache::{ConcurrentCache, LruCache, MemoryStore, WriteBack};
///
/// let db = Arc::new(MemoryStore::new());
/// let cache: ConcurrentCache<u64, String, LruCache<u64, String>> = ConcurrentCache::new(1000)?;
/// let counters = WriteBack::builder(cache, Arc::clone(&db)).max_batch(100).build()?;
///
/// counters.put(1, "ada".to_string());
/// assert_eq!(counters.get(&1).expect("no error").as_deref(), Some("ada")); // visible at once
/// assert!(db.is_empty()); // not written yet
/// assert_eq!(counters.dirty_len(), 1);
/// counters.flush().expect("in-memory store never fails");
/// assert_eq!(db.get(&1).as_deref(), Some("ada"));
/// # Ok::<(), tierkit_cache::Error>(())
/// ```
// The bounds sit on the struct (not only on impls) because `Drop`, which flushes, needs them.
pub struct WriteBack<K, V, P, St, S = SipHashBuilder>
where
    K: Hash + Eq + Clone + 'static,
    V: Clone + Send + Sync + 'static,
    S: BuildHasher + Clone,
    P: CachePolicy<K, V, S>,
    St: Store<K, V>,
{
    shared: Arc<Shared<K, V, P, St, S>>,
    flusher: Mutex<Option<JoinHandle<()>>>,
}

impl<K, V, P, St, S> WriteBack<K, V, P, St, S>
where
    K: Hash + Eq + Clone + 'static,
    V: Clone + Send + Sync + 'static,
    S: BuildHasher + Clone,
    P: CachePolicy<K, V, S>,
    St: Store<K, V>,
{
    /// A builder fronting `store` with `cache`.
    pub fn builder(
        cache: ConcurrentCache<K, V, P, S>,
        store: St,
    ) -> WriteBackBuilder<K, V, P, St, S> {
        WriteBackBuilder {
            cache,
            store,
            config: Config {
                max_batch: 128,
                interval: Duration::from_secs(1),
                initial_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(30),
                clock: Arc::new(SystemClock),
            },
        }
    }

    /// Writes `value` under `key`: visible to reads at once, written to the store by a later
    /// flush.
    pub fn put(&self, key: K, value: V) {
        self.shared.write(key, Some(value));
    }

    /// Deletes `key`: reads see nothing at once; the store's row is deleted by a later flush.
    pub fn delete(&self, key: &K) {
        self.shared.write(key.clone(), None);
    }

    /// The latest acknowledged value of `key`: from the dirty set, the cache, or the store (a
    /// read-through load with stampede protection, cached).
    ///
    /// # Errors
    /// [`LoadError::Failed`] with the store's error on a miss; nothing is cached.
    ///
    /// # Panics
    /// A panic of the store's `load` propagates to the reader that ran it.
    pub fn get(&self, key: &K) -> Result<Option<V>, LoadError<St::Error>>
    where
        St::Error: Send + Sync + 'static,
    {
        let shared = &*self.shared;
        if let Some(found) = shared.dirty_value(key) {
            return Ok(found);
        }
        if let Some(v) = shared.cache.get(key) {
            return Ok(Some(v));
        }
        // The dirty set is checked again inside the loader: a write that landed (and whose cache
        // entry may already be evicted) after the first check must not be shadowed by the store.
        shared
            .cache
            .load(key.clone(), || match shared.dirty_value(key) {
                Some(found) => Ok(found),
                None => shared.store.load(key),
            })
            .map(|(v, _)| v)
    }

    /// Writes every dirty entry to the store now, in batches of `max_batch`, ignoring any retry
    /// backoff; returns how many entries (values and deletes) were written.
    ///
    /// Entries written again while the flush runs stay dirty (with their newer value).
    ///
    /// # Errors
    /// The store's error for the first refused batch: that batch and the ones after it stay
    /// dirty (batches before it are written and clean), and the next [`tick`](Self::tick) waits
    /// out the backoff.
    pub fn flush(&self) -> std::result::Result<usize, St::Error> {
        self.shared.flush()
    }

    /// Flushes if a flush is due (see [When data reaches the store](Self#when-data-reaches-the-store))
    /// and no backoff is pending; returns how many entries were written (0 if none was due).
    ///
    /// # Errors
    /// As [`flush`](Self::flush).
    pub fn tick(&self) -> std::result::Result<usize, St::Error> {
        self.shared.tick()
    }

    /// Whether [`tick`](Self::tick) would flush now.
    pub fn flush_due(&self) -> bool {
        self.shared.flush_due(&self.shared.flush.lock())
    }

    /// Stops the background flusher (if any) and flushes everything.
    ///
    /// # Errors
    /// As [`flush`](Self::flush); the entries stay dirty, so `flush` can be retried. Whatever is
    /// still dirty when the handle is dropped gets one more attempt, then is lost.
    pub fn close(&self) -> std::result::Result<usize, St::Error> {
        self.stop_flusher();
        self.flush()
    }

    /// Keys written but not yet in the store.
    pub fn dirty_len(&self) -> usize {
        self.shared.dirty_len.load(Ordering::Acquire)
    }

    /// The flush counters.
    pub fn stats(&self) -> WriteBackStats {
        *self.shared.stats.lock()
    }

    /// The cache in front of the store. Reading it directly skips dirty values the cache has
    /// evicted; writing it directly bypasses the store.
    pub fn cache(&self) -> &ConcurrentCache<K, V, P, S> {
        &self.shared.cache
    }

    /// The store.
    pub fn store(&self) -> &St {
        &self.shared.store
    }

    fn stop_flusher(&self) {
        let Some(handle) = self.flusher.lock().take() else {
            return;
        };
        self.shared.signal.lock().stop = true;
        self.shared.wakeup.notify_all();
        // A flusher that panicked (in the store) has nothing left to clean up.
        let _ = handle.join();
        self.shared.flusher_running.store(false, Ordering::Release);
        self.shared.signal.lock().stop = false;
    }
}

impl<K, V, P, St, S> WriteBack<K, V, P, St, S>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    S: BuildHasher + Clone + Send + Sync + 'static,
    P: CachePolicy<K, V, S> + Send + Sync + 'static,
    St: Store<K, V> + Send + Sync + 'static,
{
    /// Starts a background thread that calls [`tick`](Self::tick): when the interval passes,
    /// when a failed flush's backoff ends, and as soon as the dirty set reaches `max_batch`. Does
    /// nothing if one is running. It stops on [`close`](Self::close) or drop.
    ///
    /// # Errors
    /// The thread could not be spawned.
    pub fn spawn_flusher(&self) -> std::io::Result<()> {
        let mut slot = self.flusher.lock();
        if slot.is_some() {
            return Ok(());
        }
        let shared = Arc::clone(&self.shared);
        let handle = std::thread::Builder::new()
            .name("tierkit-write-back".into())
            .spawn(move || shared.run_flusher())?;
        self.shared.flusher_running.store(true, Ordering::Release);
        *slot = Some(handle);
        Ok(())
    }
}

impl<K, V, P, St, S> Drop for WriteBack<K, V, P, St, S>
where
    K: Hash + Eq + Clone + 'static,
    V: Clone + Send + Sync + 'static,
    S: BuildHasher + Clone,
    P: CachePolicy<K, V, S>,
    St: Store<K, V>,
{
    fn drop(&mut self) {
        self.stop_flusher();
        if self.dirty_len() > 0 {
            // Best effort: `close` reports this error; here there is no one left to tell.
            let _ = self.shared.flush();
        }
    }
}

impl<K, V, P, St, S> fmt::Debug for WriteBack<K, V, P, St, S>
where
    K: Hash + Eq + Clone + 'static,
    V: Clone + Send + Sync + 'static,
    S: BuildHasher + Clone,
    P: CachePolicy<K, V, S>,
    St: Store<K, V>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteBack")
            .field("dirty_len", &self.dirty_len())
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}
