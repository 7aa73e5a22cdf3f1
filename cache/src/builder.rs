//! [`CacheBuilder`]: one validated configuration for every policy and for the sharded cache.

use std::fmt;
use std::hash::RandomState;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use crate::coarse_clock::shared_reading;
use crate::engine::Hashed;
use crate::{Cache, Error, Clock, RemovalListener, Result, SystemClock, Weigher};

/// A single-owner cache policy that [`CacheBuilder`] can construct, and that
/// [`ConcurrentCache`](crate::ConcurrentCache) can shard: [`LruCache`](crate::LruCache),
/// [`LfuCache`](crate::LfuCache), [`FifoCache`](crate::FifoCache) and
/// [`S3FifoCache`](crate::S3FifoCache).
///
/// This trait is sealed (implemented by this crate's policies only): `ConcurrentCache` reaches
/// into the policies through crate-internal operations (lookups on a hash it computed once,
/// lookups under a shared lock) that would corrupt a cache if called with a wrong hash.
pub trait CachePolicy<K, V, S = RandomState>: Cache<K, V> + Sized + Hashed<K, V> {
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
pub struct CacheBuilder<K, V, S = RandomState> {
    pub(crate) capacity: u64,
    pub(crate) default_ttl: Option<Duration>,
    pub(crate) weigher: Option<Arc<dyn Weigher<K, V>>>,
    pub(crate) listener: Option<Arc<dyn RemovalListener<K, V>>>,
    pub(crate) clock: Arc<dyn Clock>,
    /// `clock`'s shared reading when it is a [`CoarseClock`](crate::CoarseClock).
    pub(crate) recent: Option<&'static AtomicU64>,
    pub(crate) hasher: S,
    pub(crate) shards: Option<usize>,
    pub(crate) count_lookups: bool,
}

impl<K, V> CacheBuilder<K, V, RandomState> {
    /// A builder for a cache holding at most `capacity` entries (or total weight, with a
    /// [`weigher`](Self::weigher)). Zero is reported by `build`.
    pub fn new(capacity: u64) -> Self {
        Self {
            capacity,
            default_ttl: None,
            weigher: None,
            listener: None,
            clock: Arc::new(SystemClock),
            recent: None,
            hasher: RandomState::new(),
            shards: None,
            count_lookups: true,
        }
    }
}

impl<K, V, S> CacheBuilder<K, V, S> {
    /// Every entry inserted with plain `insert` expires this long after its insert.
    pub fn default_ttl(mut self, ttl: Duration) -> Self {
        self.default_ttl = Some(ttl);
        self
    }

    /// Bounds the cache by total weight: capacity becomes a weight budget (e.g. bytes).
    pub fn weigher(mut self, weigher: impl Weigher<K, V>) -> Self {
        self.weigher = Some(Arc::new(weigher));
        self
    }

    /// Hears every removal with its cause.
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

    /// Hashes keys with `hasher` instead of the default [`RandomState`] (keyed SipHash-1-3, which
    /// resists hash flooding by attacker-chosen keys; choose a faster hasher only for trusted keys).
    pub fn hasher<S2>(self, hasher: S2) -> CacheBuilder<K, V, S2> {
        CacheBuilder {
            capacity: self.capacity,
            default_ttl: self.default_ttl,
            weigher: self.weigher,
            listener: self.listener,
            clock: self.clock,
            recent: self.recent,
            hasher,
            shards: self.shards,
            count_lookups: self.count_lookups,
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
    /// [`Error::ZeroCapacity`], [`Error::ZeroTtl`] for a zero default TTL, and
    /// [`Error::ZeroShards`] for `shards(0)`.
    pub fn validate(&self) -> Result<()> {
        if self.capacity == 0 {
            return Err(Error::ZeroCapacity);
        }
        if self.default_ttl == Some(Duration::ZERO) {
            return Err(Error::ZeroTtl);
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
            weigher: self.weigher.clone(),
            listener: self.listener.clone(),
            clock: Arc::clone(&self.clock),
            recent: self.recent,
            hasher: self.hasher.clone(),
            shards: self.shards,
            count_lookups: self.count_lookups,
        }
    }
}

impl<K, V, S> fmt::Debug for CacheBuilder<K, V, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheBuilder")
            .field("capacity", &self.capacity)
            .field("default_ttl", &self.default_ttl)
            .field("weigher", &self.weigher.is_some())
            .field("listener", &self.listener.is_some())
            .field("shards", &self.shards)
            .field("count_lookups", &self.count_lookups)
            .finish_non_exhaustive()
    }
}
