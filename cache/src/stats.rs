//! Counters every cache keeps: [`CacheStats`].

/// A snapshot of a cache's counters since it was built (or since `reset_stats`).
///
/// `peek`, `contains` and iteration are not counted: they do not count as accesses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// Lookups (`get`, `get_mut`, loader calls) that found a live entry.
    pub hits: u64,
    /// Lookups that found nothing, or only an expired entry.
    pub misses: u64,
    /// Successful inserts of a new key.
    pub inserts: u64,
    /// Inserts that replaced the value of a key already present.
    pub updates: u64,
    /// Entries evicted by the policy to make room.
    pub evictions: u64,
    /// Entries removed because their time-to-live ran out.
    pub expirations: u64,
    /// Entries removed explicitly (`remove`, `clear`, invalidation).
    pub removals: u64,
    /// Inserts refused because the entry alone weighs more than the capacity.
    pub rejections: u64,
}

impl CacheStats {
    /// `hits / (hits + misses)`, or 0.0 before the first lookup.
    #[must_use]
    pub fn hit_ratio(&self) -> f64 {
        let lookups = self.hits + self.misses;
        if lookups == 0 {
            0.0
        } else {
            #[allow(clippy::cast_precision_loss)]
            let r = self.hits as f64 / lookups as f64;
            r
        }
    }

    /// Adds `other`'s counters to these (used to sum shards).
    pub fn merge(&mut self, other: &CacheStats) {
        self.hits += other.hits;
        self.misses += other.misses;
        self.inserts += other.inserts;
        self.updates += other.updates;
        self.evictions += other.evictions;
        self.expirations += other.expirations;
        self.removals += other.removals;
        self.rejections += other.rejections;
    }
}
