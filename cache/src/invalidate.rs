//! Cache-aside invalidation for [`ConcurrentCache`]: by key, all, or by predicate.
//!
//! Every invalidation also *supersedes* the loads in flight that it may concern: they still
//! answer their callers, but do not cache a result that may predate the invalidation.

use std::borrow::Borrow;
use std::hash::{BuildHasher, Hash};

use crate::{CachePolicy, ConcurrentCache};

impl<K, V, P, S> ConcurrentCache<K, V, P, S>
where
    K: Hash + Eq,
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
    /// Shards are swept one at a time, each under its lock; `predicate` runs under that lock, so
    /// keep it short and never call back into this cache. Every load in flight is superseded (its
    /// key and value are not known yet, so the predicate cannot be asked): it still answers its
    /// callers but does not store its result.
    pub fn invalidate_if(&self, mut predicate: impl FnMut(&K, &V) -> bool) -> usize
    where
        K: Clone,
    {
        self.flights.supersede_all();
        let mut removed = 0;
        let mut doomed = Vec::new();
        for shard in self.shards.iter() {
            let mut shard = shard.lock.write();
            doomed.extend(
                shard
                    .iter()
                    .filter(|(k, v)| predicate(k, v))
                    .map(|(k, _)| k.clone()),
            );
            for key in doomed.drain(..) {
                removed += usize::from(shard.remove(&key).is_some());
            }
        }
        removed
    }
}
