//! Cache-aside invalidation for [`ConcurrentCache`]: by key, all, or by predicate.
//!
//! Every invalidation also *supersedes* the loads in flight that it may concern: they still
//! answer their callers, but do not cache a result that may predate the invalidation.

use std::borrow::Borrow;
use std::hash::{BuildHasher, Hash};

use crate::removal::Drained;
use crate::{CachePolicy, ConcurrentCache};

impl<K, V, P, S> ConcurrentCache<K, V, P, S>
where
    K: Hash + Eq + 'static,
    V: 'static,
    S: BuildHasher + Clone,
    P: CachePolicy<K, V, S>,
{
    /// Discards `key`'s entry (cache-aside invalidation after the source of truth changed). A
    /// load of `key` in flight, which may have read the old data, will not store its result, and
    /// later [`get_or_load`](Self::get_or_load) calls start a fresh load.
    pub fn invalidate<Q>(&self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        drop(self.remove(key));
    }

    /// Discards every entry, shard by shard (like [`clear`](Self::clear)); loads in flight will
    /// not store their results.
    pub fn invalidate_all(&self) {
        self.clear();
    }

    /// Discards every entry for which `predicate(key, value)` is true; returns how many.
    ///
    /// Shards are swept one at a time: the shard's entries are cloned under its shared lock,
    /// `predicate` runs with no lock held (so it may be slow, or call back into this cache),
    /// then the matching keys are removed under the exclusive lock and reported to the removal
    /// listener after it is released. A key written between the check and the removal is
    /// removed too (the sweep is weakly consistent, like the cache's other multi-shard
    /// operations). Every load in flight is superseded (its key and value are not known yet, so
    /// the predicate cannot be asked): it still answers its callers but does not store its
    /// result.
    pub fn invalidate_if(&self, mut predicate: impl FnMut(&K, &V) -> bool) -> usize
    where
        K: Clone,
        V: Clone,
    {
        self.flights.supersede_all();
        let mut removed = 0;
        let mut entries = Vec::new();
        let mut doomed = Vec::new();
        for shard in self.shards.iter() {
            entries.extend(
                shard
                    .lock
                    .read()
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone())),
            );
            doomed.extend(
                entries
                    .drain(..)
                    .filter(|(k, v)| predicate(k, v))
                    .map(|(k, _)| k),
            );
            if doomed.is_empty() {
                continue;
            }
            let (targets, drained) = {
                let mut policy = shard.lock.write();
                let targets: Vec<_> = doomed
                    .drain(..)
                    .filter_map(|key| {
                        let hash = self.hash(&key);
                        policy.remove_hashed(hash, &key)
                    })
                    .collect();
                (targets, policy.take_removed())
            };
            removed += targets.len();
            // Expired entries the removals purged on the way, then the removed ones.
            self.report(drained, None);
            for target in targets {
                self.report(Drained::None, Some(target));
            }
        }
        removed
    }
}
