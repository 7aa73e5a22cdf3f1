//! Whole-cache operations of [`ConcurrentCache`]: sizes, `clear`, `purge_expired`, stats and
//! weakly consistent walks, one shard at a time.

use std::hash::{BuildHasher, Hash};
use std::sync::atomic::Ordering;

use crate::{CachePolicy, CacheStats, ConcurrentCache};

impl<K, V, P, S> ConcurrentCache<K, V, P, S>
where
    K: Hash + Eq + 'static,
    V: 'static,
    S: BuildHasher + Clone,
    P: CachePolicy<K, V, S>,
{
    /// Entries held over all shards (a sum of per-shard counts taken one after another, so only
    /// approximate while other threads write).
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock.read().len()).sum()
    }

    /// Whether no shard holds an entry.
    pub fn is_empty(&self) -> bool {
        self.shards.iter().all(|s| s.lock.read().is_empty())
    }

    /// Total weight held over all shards (equals [`len`](Self::len) without a weigher).
    pub fn weight(&self) -> u64 {
        self.shards.iter().map(|s| s.lock.read().weight()).sum()
    }

    /// The effective total capacity: shards x per-shard capacity (see
    /// [Shards and capacity](Self#shards-and-capacity)).
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// The number of shards.
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// Removes every entry, one shard at a time (entries inserted meanwhile into an already
    /// cleared shard stay). Loads in flight will not store their results.
    pub fn clear(&self) {
        self.flights.supersede_all();
        for shard in self.shards.iter() {
            let drained = {
                let mut policy = shard.lock.write();
                policy.clear();
                policy.take_removed()
            };
            self.report(drained, None);
        }
    }

    /// Drops every expired entry now; returns how many.
    pub fn purge_expired(&self) -> usize {
        let mut purged = 0;
        for shard in self.shards.iter() {
            let drained = {
                let mut policy = shard.lock.write();
                purged += policy.purge_expired();
                policy.take_removed()
            };
            self.report(drained, None);
        }
        purged
    }

    /// The counters of all shards, summed ([`CacheStats::merge`]). Lookups made by
    /// [`get_or_load`](Self::get_or_load) count as hits and misses; with
    /// [`count_lookups(false)`](crate::CacheBuilder::count_lookups) no lookup is counted (hits and
    /// misses are zero).
    pub fn stats(&self) -> CacheStats {
        let mut total = CacheStats::default();
        for shard in self.shards.iter() {
            total.merge(&shard.lock.read().stats());
            total.hits += shard.hits.load(Ordering::Relaxed);
            total.misses += shard.misses.load(Ordering::Relaxed);
        }
        if !self.count_lookups {
            // Lookups that took the exclusive path were counted by the policy: drop them too.
            total.hits = 0;
            total.misses = 0;
        }
        total
    }

    /// Calls `f` on every live entry, shard by shard (no policy update, not counted). Each
    /// shard's entries are cloned under its shared lock and `f` runs after it is released, so
    /// `f` may call back into this cache.
    ///
    /// This is a weakly consistent walk, not an atomic snapshot: a write to a shard not yet (or
    /// already) visited may or may not be seen.
    pub fn for_each(&self, mut f: impl FnMut(&K, &V))
    where
        K: Clone,
        V: Clone,
    {
        let mut entries = Vec::new();
        for shard in self.shards.iter() {
            entries.extend(
                shard
                    .lock
                    .read()
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone())),
            );
            for (k, v) in entries.drain(..) {
                f(&k, &v);
            }
        }
    }

    /// Clones of every live entry, collected as by [`for_each`](Self::for_each) (weakly
    /// consistent; each shard is copied under its lock, in the policy's order).
    pub fn snapshot(&self) -> Vec<(K, V)>
    where
        K: Clone,
        V: Clone,
    {
        let mut out = Vec::new();
        for shard in self.shards.iter() {
            out.extend(
                shard
                    .lock
                    .read()
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone())),
            );
        }
        out
    }
}
