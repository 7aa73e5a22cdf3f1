//! [`WriteBack`] (write-behind): writes are acknowledged once in memory and reach the [`Store`]
//! later, in batches.

use std::fmt;
use std::hash::{BuildHasher, Hash, RandomState};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use parking_lot::{Condvar, Mutex};

use crate::{CachePolicy, Clock, ConcurrentCache, Error, LoadError, Result, Store, SystemClock};

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
pub struct WriteBack<K, V, P, St, S = RandomState>
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

/// Configures a [`WriteBack`]; from [`WriteBack::builder`].
#[must_use]
pub struct WriteBackBuilder<K, V, P, St, S = RandomState> {
    cache: ConcurrentCache<K, V, P, S>,
    store: St,
    config: Config,
}

impl<K, V, P, St, S> WriteBackBuilder<K, V, P, St, S> {
    /// Entries per store call, and the dirty-set size at which a flush is due (default 128).
    pub fn max_batch(mut self, max_batch: usize) -> Self {
        self.config.max_batch = max_batch;
        self
    }

    /// How long dirty entries may wait for a flush (default 1 s).
    pub fn flush_interval(mut self, interval: Duration) -> Self {
        self.config.interval = interval;
        self
    }

    /// The retry backoff after a failed flush: `initial`, doubling per consecutive failure, at
    /// most `max` (default 100 ms to 30 s).
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.config.initial_backoff = initial;
        self.config.max_backoff = max;
        self
    }

    /// Reads time from `clock` (tests: [`ManualClock`](crate::ManualClock)) for the interval and
    /// the backoff.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.config.clock = Arc::new(clock);
        self
    }
}

impl<K, V, P, St, S> WriteBackBuilder<K, V, P, St, S>
where
    K: Hash + Eq + Clone + 'static,
    V: Clone + Send + Sync + 'static,
    S: BuildHasher + Clone,
    P: CachePolicy<K, V, S>,
    St: Store<K, V>,
{
    /// Validates the settings and builds the write-back cache (no background thread: see
    /// [`WriteBack::spawn_flusher`]).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a zero `max_batch` or `flush_interval`, or a
    /// `max_backoff` below `initial_backoff`.
    pub fn build(self) -> Result<WriteBack<K, V, P, St, S>> {
        let config = self.config;
        if config.max_batch == 0 {
            return Err(Error::InvalidConfig {
                name: "max_batch",
                reason: "must be at least 1",
            });
        }
        if config.interval.is_zero() {
            return Err(Error::InvalidConfig {
                name: "flush_interval",
                reason: "must be greater than zero",
            });
        }
        if config.max_backoff < config.initial_backoff {
            return Err(Error::InvalidConfig {
                name: "backoff",
                reason: "max must not be below initial",
            });
        }
        let dirty = DashMap::with_hasher(self.cache.hasher.clone());
        let now = config.clock.now_nanos();
        Ok(WriteBack {
            shared: Arc::new(Shared {
                cache: self.cache,
                store: self.store,
                dirty,
                dirty_len: AtomicUsize::new(0),
                seq: AtomicU64::new(0),
                config,
                flush: Mutex::new(FlushState {
                    last_flush: now,
                    backoff: None,
                    stats: WriteBackStats::default(),
                }),
                stats: Mutex::new(WriteBackStats::default()),
                signal: Mutex::new(Signal::default()),
                wakeup: Condvar::new(),
                flusher_running: AtomicBool::new(false),
            }),
            flusher: Mutex::new(None),
        })
    }
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

impl<K, V, P, St, S> Shared<K, V, P, St, S>
where
    K: Hash + Eq + Clone + 'static,
    V: Clone + Send + Sync + 'static,
    S: BuildHasher + Clone,
    P: CachePolicy<K, V, S>,
    St: Store<K, V>,
{
    /// Records a write (`None`: delete) in the dirty set and the cache, atomically per key: the
    /// cache is changed while the key's dirty entry is locked, so two racing writers leave the
    /// cache and the dirty set agreeing.
    fn write(&self, key: K, value: Option<V>) {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let entry = self.dirty.entry(key.clone());
        let fresh = matches!(entry, Entry::Vacant(_));
        let guard = entry.insert(Dirty {
            value: value.clone(),
            seq,
        });
        let len = if fresh {
            self.dirty_len.fetch_add(1, Ordering::AcqRel) + 1
        } else {
            0
        };
        match value {
            Some(v) => drop(self.cache.insert(key, v)),
            None => self.cache.invalidate(&key),
        }
        drop(guard);
        if len >= self.config.max_batch && self.flusher_running.load(Ordering::Acquire) {
            self.signal.lock().wake = true;
            self.wakeup.notify_all();
        }
    }

    /// `Some(answer)` if `key` is dirty (`answer` is `None` for a pending delete).
    fn dirty_value(&self, key: &K) -> Option<Option<V>> {
        if self.dirty_len.load(Ordering::Acquire) == 0 {
            return None;
        }
        self.dirty.get(key).map(|d| d.value.clone())
    }

    fn flush_due(&self, state: &FlushState) -> bool {
        let len = self.dirty_len.load(Ordering::Acquire);
        if len == 0 {
            return false;
        }
        let elapsed = self
            .config
            .clock
            .now_nanos()
            .saturating_sub(state.last_flush);
        let elapsed = Duration::from_nanos(elapsed);
        match state.backoff {
            // After a failure, retry once the backoff has passed (and not before).
            Some(backoff) => elapsed >= backoff,
            None => len >= self.config.max_batch || elapsed >= self.config.interval,
        }
    }

    fn tick(&self) -> std::result::Result<usize, St::Error> {
        let mut state = self.flush.lock();
        if !self.flush_due(&state) {
            return Ok(0);
        }
        self.flush_locked(&mut state)
    }

    fn flush(&self) -> std::result::Result<usize, St::Error> {
        self.flush_locked(&mut self.flush.lock())
    }

    fn flush_locked(&self, state: &mut FlushState) -> std::result::Result<usize, St::Error> {
        state.last_flush = self.config.clock.now_nanos();
        let pending: Vec<(K, Option<V>, u64)> = self
            .dirty
            .iter()
            .map(|e| (e.key().clone(), e.value.clone(), e.seq))
            .collect();
        let mut written = 0;
        let mut batch = Vec::with_capacity(self.config.max_batch.min(pending.len()));
        let mut pending = pending.into_iter().peekable();
        while pending.peek().is_some() {
            batch.clear();
            batch.extend(pending.by_ref().take(self.config.max_batch));
            if let Err(e) = self.write_batch(&batch, state) {
                state.stats.failures += 1;
                state.stats.consecutive_failures =
                    state.stats.consecutive_failures.saturating_add(1);
                state.backoff = Some(self.backoff(state.stats.consecutive_failures));
                *self.stats.lock() = state.stats;
                return Err(e);
            }
            written += batch.len();
        }
        state.stats.flushes += 1;
        state.stats.consecutive_failures = 0;
        state.backoff = None;
        *self.stats.lock() = state.stats;
        Ok(written)
    }

    /// Writes one batch, then marks its entries clean unless they were written again meanwhile.
    fn write_batch(
        &self,
        batch: &[(K, Option<V>, u64)],
        state: &mut FlushState,
    ) -> std::result::Result<(), St::Error> {
        let mut puts = Vec::new();
        let mut deletes = Vec::new();
        for (key, value, _) in batch {
            match value {
                Some(v) => puts.push((key.clone(), v.clone())),
                None => deletes.push(key.clone()),
            }
        }
        if !puts.is_empty() {
            self.store.store_all(&puts)?;
        }
        if !deletes.is_empty() {
            self.store.delete_all(&deletes)?;
        }
        for (key, _, seq) in batch {
            if self.dirty.remove_if(key, |_, d| d.seq == *seq).is_some() {
                self.dirty_len.fetch_sub(1, Ordering::AcqRel);
            }
        }
        state.stats.batches += 1;
        state.stats.written += puts.len() as u64;
        state.stats.deleted += deletes.len() as u64;
        *self.stats.lock() = state.stats;
        Ok(())
    }

    /// The wait after the `failures`-th consecutive failure.
    fn backoff(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(31);
        self.config
            .initial_backoff
            .saturating_mul(1 << doublings)
            .min(self.config.max_backoff)
    }

    /// How long the flusher may sleep before a tick could be due.
    fn next_wait(&self) -> Duration {
        let state = self.flush.lock();
        let elapsed = self
            .config
            .clock
            .now_nanos()
            .saturating_sub(state.last_flush);
        let elapsed = Duration::from_nanos(elapsed);
        let wait = state.backoff.unwrap_or(self.config.interval);
        wait.saturating_sub(elapsed).max(Duration::from_millis(1))
    }

    /// The background flusher's loop.
    fn run_flusher(&self) {
        loop {
            let wait = self.next_wait();
            {
                let mut signal = self.signal.lock();
                if !signal.stop && !signal.wake {
                    let _ = self.wakeup.wait_for(&mut signal, wait);
                }
                if signal.stop {
                    return;
                }
                signal.wake = false;
            }
            // Errors stay dirty and are retried after the backoff; `stats` counts them.
            let _ = self.tick();
        }
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

impl<K, V, P, St, S> fmt::Debug for WriteBackBuilder<K, V, P, St, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteBackBuilder")
            .field("max_batch", &self.config.max_batch)
            .field("flush_interval", &self.config.interval)
            .field("initial_backoff", &self.config.initial_backoff)
            .field("max_backoff", &self.config.max_backoff)
            .finish_non_exhaustive()
    }
}
