//! [`ConcurrentCache`]: any single-owner policy, sharded behind locks, `Send + Sync`.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{BuildHasher, Hash};

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crossbeam_utils::CachePadded;
use parking_lot::{RwLock, RwLockWriteGuard};

use crate::engine::SharedGet;
use crate::flight::Flights;
use crate::removal::{Drained, Removal};
use crate::rules::{EntryRules, Ttl};
use crate::{
    CacheBuilder, CachePolicy, DefaultPolicy, Rejected, RemovalListener, Result, SipHashBuilder,
};

/// Shards per CPU when the builder does not say. Every lookup writes its shard's lock word, so
/// two threads reading hot keys contend on it whenever they land on the same shard: on the
/// `concurrent/read_scaling` bench (2 CPUs, Zipf 0.9 reads, medians of 5 runs) going from 1 to
/// 2 threads gave 0.95x with 8 shards, 1.35x with 32 (this default there) and 1.62x with 64.
const SHARDS_PER_CPU: usize = 16;

/// The default shard count leaves each shard at least this much capacity (when the capacity
/// allows more than one shard), so small caches keep their policy's behaviour and a weighted
/// shard's share still fits sizeable entries.
const MIN_SHARD_CAPACITY: u64 = 64;

/// One shard: a policy behind a read-write lock, and the hit and miss counts of the lookups
/// answered under the read lock. `repr(C)` keeps the counters next to the lock word, on the one
/// cache line that every operation on the shard touches anyway (the policy's own counters need
/// the write lock).
#[repr(C)]
pub(crate) struct Shard<P> {
    pub(crate) hits: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) lock: RwLock<P>,
}

impl<P> Shard<P> {
    fn new(policy: P) -> Self {
        Self {
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            lock: RwLock::new(policy),
        }
    }
}

/// The shards, each padded to its own cache line(s) so neighbouring shards never share one.
pub(crate) type Shards<P> = Arc<[CachePadded<Shard<P>>]>;

/// A thread-safe cache: `N` independent shards of a single-owner policy `P` (such as
/// [`LruCache`](crate::LruCache) or [`S3FifoCache`](crate::S3FifoCache)), each behind its own
/// read-write lock.
///
/// A key always lives in the same shard, chosen from its hash, so operations on keys of different
/// shards never wait for each other; the policy (recency, frequency, eviction) is applied per
/// shard, which approximates the global policy well when keys spread evenly. A key is hashed
/// once per operation: the same hash picks the shard and probes the shard's table.
///
/// # Policies under a shared lock
///
/// Lookups ([`get`](Self::get), [`get_map`](Self::get_map), [`peek`](Self::peek),
/// [`contains`](Self::contains) and the first lookup of [`get_or_load`](Self::get_or_load)) take
/// the shard's lock **shared**, so lookups never wait for each other; writes take it exclusively.
/// A hit is recorded without exclusive access where the policy allows it:
///
/// | policy | a hit under the shared lock | effect on the policy |
/// |---|---|---|
/// | [`FifoCache`](crate::FifoCache) | nothing to record | exact (per shard) |
/// | [`S3FifoCache`](crate::S3FifoCache) | bumps the entry's 2-bit frequency (an atomic byte) | exact, except that two threads hitting the same entry at the same instant may count once |
/// | [`LruCache`](crate::LruCache) | marks the entry as referenced (an atomic byte, written once) | approximate, see below |
/// | [`LfuCache`](crate::LfuCache) | cannot: the hit takes the exclusive lock | exact (per shard) |
/// | [`TinyLfuCache`](crate::TinyLfuCache) (the default `P`) | counts the hit in the entry (an atomic byte, up to 15) | the count reaches the frequency sketch, and the entry its new place, when the entry is next handled exclusively (an eviction scan reaching it, a replacement, its removal) |
///
/// **LRU approximation.** A hit does not move the entry to the front at once (that needs the
/// exclusive lock); it marks it, and when a marked entry reaches the back of the recency list,
/// eviction moves it to the front (unmarked) instead of evicting it, as CLOCK does. So a hit
/// always saves an entry from the next eviction, but entries hit since they were last moved keep
/// their insertion order among themselves rather than their order of last use. Inserts and value
/// replacements move the entry to the front exactly. A single-owner [`LruCache`](crate::LruCache)
/// is exact LRU. On the crate's Zipf and scan test traces the approximation hits about one point
/// *more* often than exact LRU (CLOCK usually does).
///
/// A lookup that finds an expired entry (which must be dropped), or an entry with a
/// time-to-idle to restart, takes the exclusive lock, so expiry behaves as in the single-owner
/// caches.
///
/// # No user code under a lock
///
/// Removal listeners, weighers, [`Expiry`](crate::Expiry) policies, loaders and the drop of
/// removed values never run while a shard lock is held: weights and lifetimes are decided
/// before the lock is taken, and what an operation removed (evicted, expired, replaced,
/// removed) is taken out under the lock and reported, then dropped, after it is released. So
/// a listener may call back into the cache, and a listener or weigher that panics leaves every
/// count correct. The exceptions are `V::clone` in [`get`](Self::get) and [`peek`](Self::peek)
/// and the closure of [`get_map`](Self::get_map), which read the value in place under the
/// *shared* lock.
///
/// # Building
///
/// [`ConcurrentCache::builder`] configures everything (capacity, time-to-live, time-to-idle,
/// per-entry [`Expiry`](crate::Expiry), weigher, removal listener, clock, hasher, policy, shard
/// count) and builds the cache; [`ConcurrentCache::new`] takes a capacity and the defaults.
/// The policy is the type parameter `P`, [`DefaultPolicy`] unless the builder's
/// [`policy`](crate::ConcurrentCacheBuilder::policy) picks another (or you name one):
///
/// | type | policy |
/// |---|---|
/// | `ConcurrentCache<K, V>` | [`DefaultPolicy`] ([`TinyLfuCache`](crate::TinyLfuCache) shards) |
/// | [`ConcurrentLru<K, V>`](crate::ConcurrentLru) | [`LruCache`](crate::LruCache) shards |
/// | [`ConcurrentLfu<K, V>`](crate::ConcurrentLfu) | [`LfuCache`](crate::LfuCache) shards |
/// | [`ConcurrentFifo<K, V>`](crate::ConcurrentFifo) | [`FifoCache`](crate::FifoCache) shards |
/// | [`ConcurrentS3Fifo<K, V>`](crate::ConcurrentS3Fifo) | [`S3FifoCache`](crate::S3FifoCache) shards |
///
/// # Sharing
///
/// A `ConcurrentCache` is a handle: [`Clone`] is cheap (a few reference counts) and every clone
/// is the same cache, as with moka. Share it between threads and tasks by cloning, no `Arc`
/// needed.
///
/// # Shards and capacity
///
/// - The shard count is the builder's [`shards`](CacheBuilder::shards) (any number from 1), or by
///   default 16 x [`available_parallelism`](std::thread::available_parallelism) rounded up to a
///   power of two (many shards, because a lookup writes its shard's lock word and readers of
///   the same shard contend on it), lowered to a power of two so that every shard gets at least
///   64 units of capacity (one shard for a capacity below 128).
/// - Each shard is built with capacity `ceil(capacity / shards)` (at least 1), so the total
///   [`capacity`](Self::capacity) is `shards x ceil(capacity / shards)`: at least the capacity
///   asked for and less than `capacity + shards`. A shard evicts when *it* is full, which can
///   happen before the whole cache is.
/// - With a [`weigher`](CacheBuilder::weigher) the same split applies to the weight budget: an
///   entry heavier than one shard's share is rejected even if it fits the total, so a cache of
///   few large entries wants few shards.
/// - A shard is picked from bits 25..57 of the key's hash under the builder's hasher: the inner
///   hash tables use the low bits (bucket) and the top 7 bits (tag), so the shard choice does not
///   thin out either of them.
///
/// # Values are returned as clones
///
/// [`get`](Self::get) and [`peek`](Self::peek) return `V` by value, cloned under the shard lock
/// (a reference could not outlive the lock). Store large values as `Arc<V>` so a hit costs one
/// reference-count increment. Since lookups on several threads read the same values at once, a
/// shared cache needs `K` and `V` to be `Send + Sync`.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use tierkit_cache::ConcurrentCache;
///
/// let cache: ConcurrentCache<u64, String> = ConcurrentCache::builder()
///     .max_capacity(10_000)
///     .time_to_live(Duration::from_secs(300))
///     .build()?;
/// let handles: Vec<_> = (0..4)
///     .map(|t| {
///         let cache = cache.clone();
///         std::thread::spawn(move || cache.insert(t, format!("user {t}")))
///     })
///     .collect();
/// for h in handles {
///     h.join().expect("no panic");
/// }
/// assert_eq!(cache.get(&2).as_deref(), Some("user 2"));
/// assert_eq!(cache.len(), 4);
/// # Ok::<(), tierkit_cache::Error>(())
/// ```
pub struct ConcurrentCache<K, V, P = DefaultPolicy<K, V>, S = SipHashBuilder> {
    pub(crate) shards: Shards<P>,
    pub(crate) hasher: S,
    pub(crate) flights: Arc<Flights<K, S>>,
    /// The weigher, the expiry policy and the default lifetimes, run before a shard is locked.
    rules: EntryRules<K, V>,
    listener: Option<Arc<dyn RemovalListener<K, V>>>,
    /// Each shard's capacity (all equal).
    shard_capacity: u64,
    /// The sum of the shards' capacities (fixed at construction).
    pub(crate) capacity: u64,
    /// Whether lookups under the shared lock are counted ([`CacheBuilder::count_lookups`]).
    pub(crate) count_lookups: bool,
}

impl<K, V, P, S: Clone> Clone for ConcurrentCache<K, V, P, S> {
    /// Another handle on the same cache (reference counts only).
    fn clone(&self) -> Self {
        Self {
            shards: Arc::clone(&self.shards),
            hasher: self.hasher.clone(),
            flights: Arc::clone(&self.flights),
            rules: self.rules.clone(),
            listener: self.listener.clone(),
            shard_capacity: self.shard_capacity,
            capacity: self.capacity,
            count_lookups: self.count_lookups,
        }
    }
}

impl<K, V, P> ConcurrentCache<K, V, P, SipHashBuilder>
where
    K: Hash + Eq + 'static,
    V: 'static,
    P: CachePolicy<K, V, SipHashBuilder>,
{
    /// A cache of `capacity` entries with every other setting at its default.
    ///
    /// # Errors
    /// [`Error::ZeroCapacity`](crate::Error::ZeroCapacity) for zero, and the policy's
    /// own errors (such as [`Error::CapacityTooLarge`](crate::Error::CapacityTooLarge)).
    pub fn new(capacity: u64) -> Result<Self> {
        Self::with_builder(&CacheBuilder::new(capacity))
    }
}

impl<K, V, P, S> ConcurrentCache<K, V, P, S>
where
    K: Hash + Eq + 'static,
    V: 'static,
    S: BuildHasher + Clone,
    P: CachePolicy<K, V, S>,
{
    /// A cache configured by `builder`; see [Shards and capacity](Self#shards-and-capacity).
    ///
    /// # Errors
    /// Every error of [`CacheBuilder::validate`] (including
    /// [`Error::ZeroShards`](crate::Error::ZeroShards)), and the policy's own errors
    /// for the per-shard capacity.
    pub fn with_builder(builder: &CacheBuilder<K, V, S>) -> Result<Self> {
        builder.validate()?;
        let count = builder
            .shards
            .unwrap_or_else(|| default_shards(builder.capacity));
        let count_u64 = u64::try_from(count).unwrap_or(u64::MAX);
        let mut shard_builder = builder.clone();
        shard_builder.capacity = builder.capacity.div_ceil(count_u64).max(1);
        shard_builder.shards = None;
        shard_builder.deferred = true;
        let shards = (0..count)
            .map(|_| P::from_builder(&shard_builder).map(|p| CachePadded::new(Shard::new(p))))
            .collect::<Result<Vec<_>>>()?;
        let shard_capacity = shards.first().map_or(0, |s| s.lock.read().capacity());
        let capacity = shards.iter().map(|s| s.lock.read().capacity()).sum();
        Ok(Self {
            capacity,
            shard_capacity,
            count_lookups: builder.count_lookups,
            shards: shards.into(),
            hasher: builder.hasher.clone(),
            flights: Arc::new(Flights::new(builder.hasher.clone())),
            rules: builder.rules.clone(),
            listener: builder.listener.clone(),
        })
    }
}

/// The default shard count for `capacity` (see the type docs).
fn default_shards(capacity: u64) -> usize {
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let wanted = cpus
        .saturating_mul(SHARDS_PER_CPU)
        .checked_next_power_of_two()
        .unwrap_or(1 << 16);
    // The largest power of two not above `capacity / MIN_SHARD_CAPACITY`, so every shard holds
    // at least that much.
    let cap_pow2 = usize::try_from(capacity / MIN_SHARD_CAPACITY).map_or(usize::MAX, |c| {
        if c == 0 {
            1
        } else {
            1 << (usize::BITS - 1 - c.leading_zeros())
        }
    });
    wanted.min(cap_pow2).max(1)
}

/// The shard of `hash` among `n`: bits 25..57 scaled to `0..n` (multiply-shift, no division).
#[inline]
pub(crate) fn shard_index(hash: u64, n: usize) -> usize {
    let bits = (hash >> 25) & 0xFFFF_FFFF;
    let n = u64::try_from(n).unwrap_or(u64::MAX);
    // `bits < 2^32`: the product fits in u128 and the result is `< n`.
    usize::try_from((u128::from(bits) * u128::from(n)) >> 32).unwrap_or(0)
}

impl<K, V, P, S> ConcurrentCache<K, V, P, S>
where
    K: Hash + Eq + 'static,
    V: 'static,
    S: BuildHasher + Clone,
    P: CachePolicy<K, V, S>,
{
    /// The hash of `key` under the cache's hasher (the shards' tables use the same).
    #[inline]
    pub(crate) fn hash<Q: Hash + ?Sized>(&self, key: &Q) -> u64 {
        self.hasher.hash_one(key)
    }

    /// The shard of a key whose hash is `hash`.
    #[inline]
    pub(crate) fn shard(&self, hash: u64) -> &Shard<P> {
        &self.shards[shard_index(hash, self.shards.len())]
    }

    /// Reports `drained` and `target` (in that order) to the listener, then drops them and
    /// returns the target's value. Called with no lock held.
    #[inline]
    pub(crate) fn report(
        &self,
        drained: Drained<K, V>,
        target: Option<Removal<K, V>>,
    ) -> Option<V> {
        drained.report(target, self.listener.as_deref())
    }

    /// Looks `key` up, counting a hit or miss and updating the policy (see
    /// [Policies under a shared lock](Self#policies-under-a-shared-lock)); returns a clone of
    /// the value.
    #[inline]
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        V: Clone,
    {
        self.get_map(key, V::clone)
    }

    /// Calls `f` on the value for `key` (counting and updating like [`get`](Self::get)) without
    /// cloning it, and returns what `f` returns.
    ///
    /// `f` runs under the shard's *shared* lock: keep it short, and do not write to this cache
    /// from it (a write to the same shard would wait for the lock `f` holds). (This crate called
    /// it `get_with` before; that name now means moka's loader, [`get_with`](Self::get_with).)
    ///
    /// # Examples
    ///
    /// ```
    /// use tierkit_cache::ConcurrentCache;
    ///
    /// let cache: ConcurrentCache<u32, Vec<u8>> = ConcurrentCache::new(100)?;
    /// cache.insert(1, vec![0; 4096]);
    /// assert_eq!(cache.get_map(&1, Vec::len), Some(4096)); // no copy of the 4 KiB
    /// # Ok::<(), tierkit_cache::Error>(())
    /// ```
    #[inline]
    pub fn get_map<Q, R>(&self, key: &Q, f: impl FnOnce(&V) -> R) -> Option<R>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hash(key);
        let shard = self.shard(hash);
        {
            let policy = shard.lock.read();
            match policy.get_shared(hash, key) {
                SharedGet::Hit(value) => {
                    if self.count_lookups {
                        shard.hits.fetch_add(1, Ordering::Relaxed);
                    }
                    return Some(f(value));
                }
                SharedGet::Miss => {
                    if self.count_lookups {
                        shard.misses.fetch_add(1, Ordering::Relaxed);
                    }
                    return None;
                }
                SharedGet::Exclusive => {}
            }
        }
        // Rare: an expired entry to drop, an idle period to restart, or a policy that counts
        // hits exclusively (LFU). `f` runs once the lock is downgraded to shared, and the
        // expired entry is reported after it is released.
        let mut policy = shard.lock.write();
        let found = policy.get_hashed(hash, key).is_some();
        let drained = policy.take_removed();
        let policy = RwLockWriteGuard::downgrade(policy);
        let result = if found {
            policy.peek_hashed(hash, key).map(f)
        } else {
            None
        };
        drop(policy);
        self.report(drained, None);
        result
    }

    /// Looks `key` up without touching the policy or the stats; returns a clone of the value.
    pub fn peek<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        V: Clone,
    {
        let hash = self.hash(key);
        self.shard(hash).lock.read().peek_hashed(hash, key).cloned()
    }

    /// Whether a live entry for `key` is present (not counted, no policy update).
    pub fn contains<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hash(key);
        self.shard(hash)
            .lock
            .read()
            .peek_hashed(hash, key)
            .is_some()
    }

    /// Inserts with the default time-to-live; returns the previous live value.
    ///
    /// A load of `key` in flight ([`get_or_load`](Self::get_or_load)) will not overwrite this
    /// value when it finishes.
    pub fn insert(&self, key: K, value: V) -> Option<V> {
        self.insert_ttl(key, value, Ttl::Default)
    }

    /// Inserts with its own time-to-live (see
    /// [`Cache::insert_with_ttl`](crate::Cache::insert_with_ttl)); returns the previous live
    /// value.
    pub fn insert_with_ttl(&self, key: K, value: V, ttl: Duration) -> Option<V> {
        self.insert_ttl(key, value, Ttl::For(ttl))
    }

    /// Inserts like [`insert`](Self::insert) unless the entry alone weighs more than a
    /// shard's capacity: then the cache is unchanged (a value already under `key` stays) and the
    /// key and value come back in [`Rejected`] (counted in `stats().rejections`, not reported to
    /// the removal listener).
    ///
    /// # Errors
    /// [`Rejected`] holding the key and value.
    ///
    /// # Examples
    ///
    /// ```
    /// use tierkit_cache::ConcurrentCache;
    ///
    /// let cache: ConcurrentCache<u32, Vec<u8>> = ConcurrentCache::builder()
    ///     .max_capacity(1 << 20)
    ///     .weigher(|_: &u32, v: &Vec<u8>| v.len() as u64)
    ///     .build()?;
    /// let huge = vec![0u8; 2 << 20];
    /// let (key, value) = cache.try_insert(1, huge).unwrap_err().into_inner();
    /// assert_eq!((key, value.len()), (1, 2 << 20)); // handed back, not dropped
    /// # Ok::<(), tierkit_cache::Error>(())
    /// ```
    pub fn try_insert(&self, key: K, value: V) -> std::result::Result<Option<V>, Rejected<K, V>> {
        let prepared = self.rules.prepare(&key, &value, Ttl::Default);
        let hash = self.hash(&key);
        if prepared.weight > self.shard_capacity {
            self.shard(hash).lock.write().count_rejection();
            return Err(Rejected::new(
                key,
                value,
                prepared.weight,
                self.shard_capacity,
            ));
        }
        Ok(self.insert_prepared(hash, key, value, prepared))
    }

    fn insert_ttl(&self, key: K, value: V, ttl: Ttl) -> Option<V> {
        // User code (weigher, expiry) first, before any lock.
        let prepared = self.rules.prepare(&key, &value, ttl);
        self.insert_prepared(self.hash(&key), key, value, prepared)
    }

    /// Inserts a prepared entry under the shard lock; reports what left after releasing it.
    #[inline]
    pub(crate) fn insert_prepared(
        &self,
        hash: u64,
        key: K,
        value: V,
        prepared: crate::rules::Prepared,
    ) -> Option<V> {
        let (target, drained) = {
            let mut policy = self.shard(hash).lock.write();
            self.flights.supersede(&key);
            let target = policy.insert_hashed(hash, key, value, prepared);
            (target, policy.take_removed())
        };
        self.report(drained, target)
    }

    /// Inserts `value` for a load of `key` that finished, unless a write superseded the load
    /// (checked under the shard lock, where writers mark it). Reports after the lock.
    pub(crate) fn store_loaded(&self, key: K, value: V, superseded: impl FnOnce() -> bool) {
        let prepared = self.rules.prepare(&key, &value, Ttl::Default);
        let hash = self.hash(&key);
        let (target, drained) = {
            let mut policy = self.shard(hash).lock.write();
            let target = if superseded() {
                None
            } else {
                policy.insert_hashed(hash, key, value, prepared)
            };
            (target, policy.take_removed())
        };
        self.report(drained, target);
    }

    /// Removes `key`, returning its value if it was live. A load of `key` in flight will not
    /// store its result.
    pub fn remove<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hash(key);
        let (target, drained) = {
            let mut policy = self.shard(hash).lock.write();
            self.flights.supersede(key);
            let target = policy.remove_hashed(hash, key);
            (target, policy.take_removed())
        };
        self.report(drained, target)
    }
}

impl<K, V, P, S> fmt::Debug for ConcurrentCache<K, V, P, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConcurrentCache")
            .field("shards", &self.shards.len())
            .field("capacity", &self.capacity)
            .field("count_lookups", &self.count_lookups)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_index_is_in_range_and_uses_middle_bits() {
        for n in [1, 2, 3, 7, 64, 1000] {
            for h in [0, u64::MAX, 1 << 40, 0x1234_5678_9abc_def0] {
                assert!(shard_index(h, n) < n);
            }
        }
        // Only the low 25 bits and the top 7 bits differ: same shard.
        assert_eq!(
            shard_index(0x1ff_ffff, 64),
            shard_index(0xfe00_0000_0000_0000, 64)
        );
    }

    #[test]
    fn default_shards_never_exceed_capacity() {
        assert_eq!(default_shards(1), 1);
        assert!(default_shards(3) <= 2);
        assert!(default_shards(1 << 40).is_power_of_two());
    }
}
