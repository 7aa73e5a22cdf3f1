//! [`CacheBuilder`]: one validated configuration for every policy and for the sharded cache.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use crate::coarse_clock::shared_reading;
use crate::engine::Hashed;
use crate::rules::{EntryRules, nanos};
use crate::{
    Cache, Clock, Error, Expiry, RemovalListener, Result, SipHashBuilder, SystemClock, Weigher,
};

/// A single-owner cache policy that [`CacheBuilder`] can construct, and that
/// [`ConcurrentCache`](crate::ConcurrentCache) can shard: [`LruCache`](crate::LruCache),
/// [`LfuCache`](crate::LfuCache), [`FifoCache`](crate::FifoCache) and
/// [`S3FifoCache`](crate::S3FifoCache).
///
/// This trait is sealed (implemented by this crate's policies only): `ConcurrentCache` reaches
/// into the policies through crate-internal operations (lookups on a hash it computed once,
/// lookups under a shared lock) that would corrupt a cache if called with a wrong hash.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a cache policy that `CacheBuilder::build` can make",
    label = "name a single-owner cache type here (LruCache<K, V>, S3FifoCache<K, V>, ...)",
    note = "for a thread-safe cache use `ConcurrentCache::builder().max_capacity(n).build()?`, or `ConcurrentCache::with_builder(&builder)?`"
)]
pub trait CachePolicy<K, V, S = SipHashBuilder>: Cache<K, V> + Sized + Hashed<K, V> {
    /// Builds an empty cache from a validated configuration.
    ///
    /// # Errors
    /// Any [`Error`] the policy's own settings can produce (the common settings were
    /// validated by [`CacheBuilder`] already).
    fn from_builder(builder: &CacheBuilder<K, V, S>) -> Result<Self>;
}

/// Configures and builds any of the caches.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use tierkit_cache::{Cache, CacheBuilder, LruCache};
///
/// let mut cache: LruCache<String, Vec<u8>> = CacheBuilder::new(64 * 1024)
///     .weigher(|_k: &String, v: &Vec<u8>| v.len() as u64)
///     .default_ttl(Duration::from_secs(30))
///     .build()?;
/// cache.insert("logo.png".to_string(), vec![0; 1024]);
/// assert_eq!(cache.weight(), 1024);
/// # Ok::<(), tierkit_cache::Error>(())
/// ```
#[must_use]
pub struct CacheBuilder<K, V, S = SipHashBuilder> {
    pub(crate) capacity: u64,
    /// The default time-to-live as given (validated by `validate`).
    pub(crate) default_ttl: Option<Duration>,
    /// The default time-to-idle as given.
    pub(crate) default_tti: Option<Duration>,
    /// Weigher, expiry policy and the defaults in nanoseconds.
    pub(crate) rules: EntryRules<K, V>,
    pub(crate) listener: Option<Arc<dyn RemovalListener<K, V>>>,
    pub(crate) clock: Arc<dyn Clock>,
    /// `clock`'s shared reading when it is a [`CoarseClock`](crate::CoarseClock).
    pub(crate) recent: Option<&'static AtomicU64>,
    pub(crate) hasher: S,
    pub(crate) shards: Option<usize>,
    pub(crate) count_lookups: bool,
    /// Built as a shard of a `ConcurrentCache`: removals are kept for the owner to report.
    pub(crate) deferred: bool,
}

impl<K, V> CacheBuilder<K, V, SipHashBuilder> {
    /// A builder for a cache holding at most `capacity` entries (or total weight, with a
    /// [`weigher`](Self::weigher)). Zero is reported by `build`.
    pub fn new(capacity: u64) -> Self {
        Self {
            capacity,
            default_ttl: None,
            default_tti: None,
            rules: EntryRules {
                weigher: None,
                expiry: None,
                default_ttl: None,
                default_tti: None,
            },
            listener: None,
            clock: Arc::new(SystemClock),
            recent: None,
            hasher: SipHashBuilder::new(),
            shards: None,
            count_lookups: true,
            deferred: false,
        }
    }
}

impl<K, V, S> CacheBuilder<K, V, S> {
    /// The capacity: at most this many entries, or this much total weight with a
    /// [`weigher`](Self::weigher) (moka's name; the same as the capacity given to `new`).
    pub fn max_capacity(mut self, capacity: u64) -> Self {
        self.capacity = capacity;
        self
    }

    /// Every entry inserted with plain `insert` expires this long after its insert (unless an
    /// [`Expiry`] says otherwise). `Duration::MAX` means "never"; zero is refused by `build`.
    pub fn time_to_live(mut self, ttl: Duration) -> Self {
        self.default_ttl = Some(ttl);
        self.rules.default_ttl = Some(nanos(ttl));
        self
    }

    /// The same as [`time_to_live`](Self::time_to_live) (the name this crate used first).
    pub fn default_ttl(self, ttl: Duration) -> Self {
        self.time_to_live(ttl)
    }

    /// Every entry expires once it has gone this long without a `get` hit (unless an
    /// [`Expiry`] says otherwise); `peek`, `contains` and iteration do not count as reads. An
    /// entry with both a time-to-live and a time-to-idle expires at the earlier deadline.
    /// `Duration::MAX` means "never"; zero is refused by `build`.
    ///
    /// In a [`ConcurrentCache`](crate::ConcurrentCache), a hit on an entry with an idle period
    /// takes the shard's lock exclusively (to move its deadline), where other hits share it.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use tierkit_cache::{Cache, CacheBuilder, LruCache, ManualClock};
    ///
    /// let clock = ManualClock::new();
    /// let mut cache: LruCache<&str, u32> = CacheBuilder::new(100)
    ///     .time_to_idle(Duration::from_secs(10))
    ///     .clock(clock.clone())
    ///     .build()?;
    /// cache.insert("a", 1);
    /// clock.advance(Duration::from_secs(9));
    /// assert_eq!(cache.get(&"a"), Some(&1)); // idle again from now
    /// clock.advance(Duration::from_secs(9));
    /// assert_eq!(cache.get(&"a"), Some(&1));
    /// clock.advance(Duration::from_secs(10));
    /// assert_eq!(cache.get(&"a"), None);
    /// # Ok::<(), tierkit_cache::Error>(())
    /// ```
    pub fn time_to_idle(mut self, tti: Duration) -> Self {
        self.default_tti = Some(tti);
        self.rules.default_tti = Some(nanos(tti));
        self
    }

    /// Decides each entry's time-to-live and time-to-idle from its key and value (see
    /// [`Expiry`]), when it is written and before the cache takes any lock.
    pub fn expire_after(mut self, expiry: impl Expiry<K, V>) -> Self {
        self.rules.expiry = Some(Arc::new(expiry));
        self
    }

    /// Bounds the cache by total weight: capacity becomes a weight budget (e.g. bytes). The
    /// weigher runs once per insert, before the cache changes anything (and outside any lock).
    pub fn weigher(mut self, weigher: impl Weigher<K, V>) -> Self {
        self.rules.weigher = Some(Arc::new(weigher));
        self
    }

    /// Hears every removal with its cause, after the operation that caused it is done and
    /// outside any lock (see [`RemovalListener`]).
    pub fn removal_listener(mut self, listener: impl RemovalListener<K, V>) -> Self {
        self.listener = Some(Arc::new(listener));
        self
    }

    /// Reads time from `clock` instead of the exact [`SystemClock`]: a
    /// [`CoarseClock`](crate::CoarseClock) for cheap expiry checks on lookups, a
    /// [`ManualClock`](crate::ManualClock) in tests. See [`Clock`] for which reading is used when.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.recent = shared_reading(&clock);
        self.clock = Arc::new(clock);
        self
    }

    /// Hashes keys with `hasher` instead of the default [`SipHashBuilder`] (keyed SipHash-1-3, which
    /// resists hash flooding by attacker-chosen keys; choose a faster hasher only for trusted keys).
    pub fn hasher<S2>(self, hasher: S2) -> CacheBuilder<K, V, S2> {
        CacheBuilder {
            capacity: self.capacity,
            default_ttl: self.default_ttl,
            default_tti: self.default_tti,
            rules: self.rules,
            listener: self.listener,
            clock: self.clock,
            recent: self.recent,
            hasher,
            shards: self.shards,
            count_lookups: self.count_lookups,
            deferred: self.deferred,
        }
    }

    /// Number of shards of a [`ConcurrentCache`](crate::ConcurrentCache) (default: 16 x the CPU
    /// count, rounded up to a power of two, and fewer for small capacities: see
    /// [Shards and capacity](crate::ConcurrentCache#shards-and-capacity)). Ignored by
    /// single-owner caches.
    pub fn shards(mut self, shards: usize) -> Self {
        self.shards = Some(shards);
        self
    }

    /// Whether a [`ConcurrentCache`](crate::ConcurrentCache) counts the hits and misses of its
    /// lookups (default: `true`).
    ///
    /// A lookup runs under the shard's shared lock, so counting it takes one atomic increment
    /// next to the lock word. That increment is a full memory barrier: on our benchmark machine
    /// it adds about 5 ns to a 15 ns hit. With `false`, the cache's
    /// [`stats`](crate::ConcurrentCache::stats) report zero hits and misses (every other counter
    /// is kept: those are counted under the exclusive lock, for free). Single-owner caches
    /// always count (a plain increment) and ignore this setting.
    ///
    /// # Examples
    ///
    /// ```
    /// use tierkit_cache::{CacheBuilder, ConcurrentCache, LruCache};
    ///
    /// let hot: ConcurrentCache<u64, u64, LruCache<u64, u64>> =
    ///     ConcurrentCache::with_builder(&CacheBuilder::new(10_000).count_lookups(false))?;
    /// hot.insert(1, 1);
    /// assert_eq!(hot.get(&1), Some(1));
    /// assert_eq!((hot.stats().hits, hot.stats().inserts), (0, 1));
    /// # Ok::<(), tierkit_cache::Error>(())
    /// ```
    pub fn count_lookups(mut self, count: bool) -> Self {
        self.count_lookups = count;
        self
    }

    /// The configured capacity.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Checks the settings every policy shares.
    ///
    /// # Errors
    /// [`Error::ZeroCapacity`], [`Error::ZeroTtl`] for a zero default TTL,
    /// [`Error::InvalidConfig`] for a zero time-to-idle, and [`Error::ZeroShards`] for
    /// `shards(0)`.
    pub fn validate(&self) -> Result<()> {
        if self.capacity == 0 {
            return Err(Error::ZeroCapacity);
        }
        if self.default_ttl == Some(Duration::ZERO) {
            return Err(Error::ZeroTtl);
        }
        if self.default_tti == Some(Duration::ZERO) {
            return Err(Error::InvalidConfig {
                name: "time_to_idle",
                reason: "must be greater than zero",
            });
        }
        if self.shards == Some(0) {
            return Err(Error::ZeroShards);
        }
        Ok(())
    }

    /// Validates the settings and builds the cache type `P` (inferred or named).
    ///
    /// # Errors
    /// See [`validate`](Self::validate), plus `P`'s own errors such as
    /// [`Error::CapacityTooLarge`].
    pub fn build<P: CachePolicy<K, V, S>>(&self) -> Result<P> {
        self.validate()?;
        P::from_builder(self)
    }
}

impl<K, V, S: Clone> Clone for CacheBuilder<K, V, S> {
    fn clone(&self) -> Self {
        Self {
            capacity: self.capacity,
            default_ttl: self.default_ttl,
            default_tti: self.default_tti,
            rules: self.rules.clone(),
            listener: self.listener.clone(),
            clock: Arc::clone(&self.clock),
            recent: self.recent,
            hasher: self.hasher.clone(),
            shards: self.shards,
            count_lookups: self.count_lookups,
            deferred: self.deferred,
        }
    }
}

impl<K, V, S> fmt::Debug for CacheBuilder<K, V, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheBuilder")
            .field("capacity", &self.capacity)
            .field("time_to_live", &self.default_ttl)
            .field("time_to_idle", &self.default_tti)
            .field("weigher", &self.rules.weigher.is_some())
            .field("expiry", &self.rules.expiry.is_some())
            .field("listener", &self.listener.is_some())
            .field("shards", &self.shards)
            .field("count_lookups", &self.count_lookups)
            .finish_non_exhaustive()
    }
}
