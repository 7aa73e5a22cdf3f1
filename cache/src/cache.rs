//! The shared trait: [`Cache`].

use std::borrow::Borrow;
use std::hash::Hash;
use std::time::Duration;

use crate::CacheStats;

/// A bounded key-value cache with a replacement policy and optional time-to-live.
///
/// Implemented by the single-owner policies [`LruCache`](crate::LruCache),
/// [`LfuCache`](crate::LfuCache), [`FifoCache`](crate::FifoCache) and
/// [`S3FifoCache`](crate::S3FifoCache); [`ConcurrentCache`](crate::ConcurrentCache) shards any of
/// them behind locks. Every operation is O(1) (amortised for expiry).
///
/// # Semantics shared by every implementation
/// - **Capacity** is a total weight; without a [`Weigher`](crate::Weigher) every entry weighs 1, so
///   capacity is an entry count. Inserting past capacity first drops expired entries, then evicts
///   by the policy until the new entry fits.
/// - **Expiry**: an entry inserted with a time-to-live (its own, or the cache default) expires at
///   `inserted_at + ttl` on the cache's [`Clock`](crate::Clock), whose
///   [`recent_nanos`](crate::Clock::recent_nanos) reading both sets and checks deadlines: exact
///   for the default [`SystemClock`](crate::SystemClock), within about a millisecond either way
///   for a [`CoarseClock`](crate::CoarseClock).
///   Expired entries are dropped lazily when looked up and proactively (on the same time) on
///   every write (`insert*`, `remove`) and by [`purge_expired`](Cache::purge_expired), so they
///   never hold capacity past the next write. Replacing a value restarts its TTL.
/// - **Removal listener**: every entry that leaves the cache is reported once with its
///   [`RemovalCause`](crate::RemovalCause), including replaced values and explicit removals,
///   before the value is dropped or returned.
/// - **Oversized entries**: an entry that alone weighs more than the capacity is not stored; the
///   listener sees it with `RemovalCause::Rejected`, any previous value under that key is removed
///   (`Replaced`), and `stats().rejections` counts it.
/// - `peek`, `contains` and `iter` neither update the policy nor count in stats; they still never
///   show an expired entry.
pub trait Cache<K, V> {
    /// Iterator over live `(key, value)` pairs; the order is the policy's own (documented per type).
    type Iter<'a>: Iterator<Item = (&'a K, &'a V)>
    where
        Self: 'a,
        K: 'a,
        V: 'a;

    /// Looks `key` up, counting a hit or miss and updating the policy (recency, frequency).
    fn get<Q>(&mut self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized;

    /// Like [`get`](Cache::get), with mutable access to the value (its weight is not re-measured).
    fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized;

    /// Looks `key` up without touching the policy or the stats.
    fn peek<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized;

    /// Whether a live entry for `key` is present (no policy update, not counted).
    fn contains<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.peek(key).is_some()
    }

    /// Inserts with the cache's default time-to-live (none unless configured). Returns the value
    /// previously stored under `key`, if it was live.
    fn insert(&mut self, key: K, value: V) -> Option<V>;

    /// Inserts like [`insert`](Cache::insert) unless the entry alone weighs more than the
    /// capacity: then nothing changes (a value already under `key` stays) and the key and value
    /// come back in [`Rejected`](crate::Rejected) (counted in `stats().rejections`, not reported
    /// to the removal listener: the caller has them).
    ///
    /// # Errors
    /// [`Rejected`](crate::Rejected) holding the key and value.
    fn try_insert(&mut self, key: K, value: V) -> Result<Option<V>, crate::Rejected<K, V>>;

    /// Returns the live value for `key`, or inserts `make()` under `key` with the default
    /// time-to-live and returns that: one lookup, counted as a hit or a miss like
    /// [`get`](Cache::get), and `make` runs only on a miss. Returns `None` only when the new
    /// value was not kept: heavier than the whole capacity under the
    /// [`Weigher`](crate::Weigher) (reported to the removal listener as `Rejected`).
    ///
    /// This is the single-owner form of read-through caching; a
    /// [`ConcurrentCache`](crate::ConcurrentCache) has
    /// [`get_or_load`](crate::ConcurrentCache::get_or_load), which also runs concurrent misses'
    /// loads once.
    ///
    /// # Examples
    ///
    /// ```
    /// use tierkit_cache::{Cache, LruCache};
    ///
    /// let mut squares = LruCache::new(100)?;
    /// let mut computed = 0;
    /// for n in [3u64, 4, 3] {
    ///     let square = squares.get_or_insert_with(n, || {
    ///         computed += 1;
    ///         n * n
    ///     });
    ///     assert_eq!(square, Some(&(n * n)));
    /// }
    /// assert_eq!(computed, 2); // 3 was computed once
    /// assert_eq!((squares.stats().hits, squares.stats().misses), (1, 2));
    /// # Ok::<(), tierkit_cache::Error>(())
    /// ```
    fn get_or_insert_with<F>(&mut self, key: K, make: F) -> Option<&V>
    where
        F: FnOnce() -> V;

    /// Inserts with its own time-to-live, overriding the default. A zero `ttl` stores nothing (the
    /// entry would be expired at once) and removes any previous value. Returns the previous live
    /// value.
    fn insert_with_ttl(&mut self, key: K, value: V, ttl: Duration) -> Option<V>;

    /// Removes `key`, returning its value if it was live.
    fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized;

    /// Entries held, counting any that expired since the last write and are not yet purged.
    fn len(&self) -> usize;

    /// Whether [`len`](Cache::len) is zero.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Total weight held (equals `len()` without a weigher).
    fn weight(&self) -> u64;

    /// The maximum total weight.
    fn capacity(&self) -> u64;

    /// Removes every entry (each reported to the listener as `Removed`).
    fn clear(&mut self);

    /// Drops every expired entry now; returns how many.
    fn purge_expired(&mut self) -> usize;

    /// Iterates over live entries without updating the policy.
    fn iter(&self) -> Self::Iter<'_>;

    /// The counters since the cache was built.
    fn stats(&self) -> CacheStats;
}
