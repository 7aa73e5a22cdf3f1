//! [`TinyLfuCache`]: W-TinyLFU with a hill-climbed window, the crate's default policy.

mod climber;
mod policy;
mod sketch;

use crate::SipHashBuilder;
use crate::engine::{Engine, cache_type};
use policy::TinyLfu;

/// A cache with the **W-TinyLFU** policy and an adaptive window, as in Caffeine: the policy
/// this crate recommends by default, because no other one stays near the best on every
/// workload (see the crate README's hit-ratio table).
///
/// - A **frequency sketch** estimates how often every key was requested recently, resident or
///   not: a count-min sketch of 4-bit counters, four per key in one 64-byte block, one 8-byte
///   word per entry (rounded up to a power of two), every count halved after 20 requests per
///   entry so that old popularity fades (Einziger, Friedman and Manes, *"TinyLFU: A Highly
///   Efficient Cache Admission Policy"*, ACM TOS 2017).
/// - New entries enter a small LRU **window** (1% of the capacity to start). When the cache is
///   full, the window's least recent entry (the candidate) competes with the main space's
///   least recent probation entry (the victim): the one the sketch counts less often is
///   evicted, so one-off keys and scans do not flush a popular working set. A candidate at
///   least 6 times as frequent that does not beat its victim still gets in once in 128 times,
///   so a victim made to look hot cannot lock newcomers out.
/// - The **main space** is a segmented LRU: a hit in its probation segment promotes the entry
///   to the protected segment (80% of the main space), whose least recent entries fall back
///   to probation.
/// - A **hill climber** resizes the window: every request per entry (at least 20,000) it
///   compares the hit rate with the previous sample's and keeps moving the window's size in the
///   direction that helped (steps of 6.25% of the capacity, decaying, halved at every reversal;
///   a change within the sample's own noise moves nothing), so recency-heavy traffic gets a
///   large window (LRU-like) and frequency-heavy traffic a small one (Caffeine's "adaptive"
///   policy). When the whole popular set changes at once (the hit rate drops by 10 points or
///   more while requests for keys the sketch never counted surge), the sketch forgets every
///   count, and if the next sample confirms the change the window takes the protected
///   segment's share, so the new keys get in as fast as under LRU.
///
/// `get`, `get_mut` and replacing a value count as requests of the key and reorder it; inserting a
/// new key counts as one request. Iteration visits the protected segment, the probation
/// segment, then the window, each from most to least recent. Every operation is O(1)
/// amortised (the sketch's halving walks its table once per 20 requests per entry; a window
/// resize moves at most 1,000 entries). Memory: one sketch word per entry besides the entry
/// itself, no record of evicted keys beyond the sketch.
///
/// In a [`ConcurrentCache`](crate::ConcurrentCache), whose lookups share the lock, a hit only
/// counts in the entry (an atomic byte); the counts reach the sketch, and the entry its new
/// place, the next time the entry is handled exclusively (an eviction scan reaching it, a
/// replacement, its removal): see
/// [policies under a shared lock](crate::ConcurrentCache#policies-under-a-shared-lock).
///
/// See [`Cache`](crate::Cache) for the semantics every cache shares.
///
/// # Examples
///
/// ```
/// use tierkit_cache::{Cache, TinyLfuCache};
///
/// let mut cache = TinyLfuCache::new(100)?;
/// for _ in 0..3 {
///     for key in 0..50 {
///         if cache.get(&key).is_none() {
///             cache.insert(key, "popular");
///         }
///     }
/// }
/// for key in 1_000..2_000 {
///     cache.insert(key, "one-off"); // a scan ten times the capacity
/// }
/// // The scan's keys were each seen once: they lost every admission contest.
/// assert_eq!((0..50).filter(|k| cache.contains(k)).count(), 50);
/// # Ok::<(), tierkit_cache::Error>(())
/// ```
pub struct TinyLfuCache<K, V, S = SipHashBuilder> {
    inner: Engine<K, V, S, TinyLfu>,
}

cache_type!(TinyLfuCache, "W-TinyLFU cache");
