//! [`WriteBackBuilder`]: validates the settings of a [`WriteBack`].

use super::*;

/// Configures a [`WriteBack`]; from [`WriteBack::builder`].
#[must_use]
pub struct WriteBackBuilder<K, V, P, St, S = SipHashBuilder> {
    pub(super) cache: ConcurrentCache<K, V, P, S>,
    pub(super) store: St,
    pub(super) config: Config,
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
