//! The engine's writes: inserts (with eviction and in-place recycling), removals, expiry purges
//! and `clear`. Every removal goes to the buffer or is handed back to the caller; none is
//! reported here (see the module docs of `engine`).

use std::borrow::Borrow;
use std::hash::{BuildHasher, Hash};

use super::{Engine, Idle, Policy};
use crate::RemovalCause;
use crate::expiry::NO_SLOT;
use crate::removal::Removal;
use crate::rules::Prepared;
use crate::slab::{NEVER, NIL, Node};

impl<K, V, S, P> Engine<K, V, S, P> {
    pub(crate) fn record(&mut self, cause: RemovalCause) {
        let s = &mut self.stats;
        match cause {
            RemovalCause::Evicted => s.evictions += 1,
            RemovalCause::Expired => s.expirations += 1,
            RemovalCause::Removed => s.removals += 1,
            RemovalCause::Replaced => s.updates += 1,
            RemovalCause::Rejected => s.rejections += 1,
        }
    }

    /// Buffers a removal to report, or drops it now when nobody will hear it.
    #[inline]
    fn discard(&mut self, removal: Removal<K, V>) {
        if self.collect {
            self.removed.push(removal);
        }
    }

    /// Records the idle bookkeeping of entry `idx`.
    #[inline]
    fn set_idle(&mut self, idx: u32, idle: Idle) {
        if self.tracks_idle {
            let i = idx as usize;
            if i >= self.idle.len() {
                self.idle.resize(i + 1, Idle::NONE);
            }
            self.idle[i] = idle;
        }
    }
}

impl<K, V, S, P> Engine<K, V, S, P>
where
    K: Hash + Eq + 'static,
    V: 'static,
    S: BuildHasher,
    P: Policy,
{
    /// A single-owner `insert`: prepares the entry (weigher, expiry), inserts it and reports
    /// what left; returns the previous live value.
    pub(crate) fn insert(&mut self, key: K, value: V, ttl: crate::rules::Ttl) -> Option<V> {
        let prepared = self.rules.prepare(&key, &value, ttl);
        let hash = self.hash(&key);
        let (target, _) = self.insert_at(hash, key, value, prepared);
        self.finish(target)
    }

    /// `get_or_insert_with`: the live entry for `key`, counted and touched like a `get`, or else a
    /// miss and `make()` inserted with the default time-to-live. `None` when the new value was
    /// not kept (heavier than the capacity).
    pub(crate) fn get_or_insert_with<F>(&mut self, key: K, make: F) -> Option<&mut Node<K, V>>
    where
        F: FnOnce() -> V,
    {
        let hash = self.hash(&key);
        let idx = match self.lookup_idx(hash, &key) {
            Some(idx) => idx,
            None => {
                self.flush();
                let value = make();
                let prepared = self.rules.prepare(&key, &value, crate::rules::Ttl::Default);
                let (target, idx) = self.insert_at(hash, key, value, prepared);
                self.finish(target);
                idx
            }
        };
        self.flush();
        (idx != NIL).then(|| self.slab.node_mut(idx))
    }

    /// Counts an insert refused before it touched anything (`try_insert` of a value heavier
    /// than the capacity).
    pub(crate) fn count_rejection(&mut self) {
        self.record(RemovalCause::Rejected);
    }

    /// Inserts `key` (whose hash is `hash`) as `prepared`. See [`Cache`](crate::Cache) for the
    /// rules. Returns the replaced value (as a removal with the incoming key, to report and hand
    /// back) and the slab index now holding the value, or [`NIL`] when it was not kept. Other
    /// removals (evictions, expiries, the rejected value) go to the buffer.
    pub(crate) fn insert_at(
        &mut self,
        hash: u64,
        key: K,
        value: V,
        prepared: Prepared,
    ) -> (Option<Removal<K, V>>, u32) {
        let Prepared { weight, ttl, tti } = prepared;
        // The time only when something can expire: an entry to schedule, or scheduled ones to
        // drop. Without any deadline in play the write reads no clock.
        let now = if ttl.is_some() || tti.is_some() || !self.wheel.is_empty() {
            let now = self.now();
            self.purge(now);
            now
        } else {
            0
        };
        let existing = self.find(hash, &key);

        let rejected = if ttl == Some(0) || tti == Some(0) {
            // Stored and expired at once: the old value is replaced, the new one expires.
            Some(RemovalCause::Expired)
        } else if weight > self.capacity {
            Some(RemovalCause::Rejected)
        } else {
            None
        };
        if let Some(cause) = rejected {
            self.target_at = self.removed.len();
            let old = existing.map(|i| self.take_entry(i, hash, RemovalCause::Replaced));
            self.record(cause);
            self.discard(Removal::new(key, value, cause));
            return (old, NIL);
        }
        let bound = ttl.map_or(NEVER, |t| now.checked_add(t).unwrap_or(NEVER));
        let idle = tti.unwrap_or(NEVER);
        let deadline = if idle == NEVER {
            bound
        } else {
            bound.min(now.saturating_add(idle))
        };
        let idle = Idle { bound, idle };

        if let Some(idx) = existing {
            let (old_value, old_weight) = {
                let node = self.slab.node_mut(idx);
                let old_weight = std::mem::replace(&mut node.weight, weight);
                (std::mem::replace(&mut node.value, value), old_weight)
            };
            // The entry's own weight is re-added once the others made room for it.
            self.weight -= old_weight;
            if self.slab.node(idx).tslot != NO_SLOT {
                self.wheel.unschedule(&mut self.slab, idx);
            }
            self.slab.node_mut(idx).deadline = deadline;
            if deadline != NEVER {
                self.wheel.schedule(&mut self.slab, idx);
            }
            self.set_idle(idx, idle);
            self.target_at = self.removed.len();
            self.policy.on_replace(&mut self.slab, idx, old_weight);
            self.record(RemovalCause::Replaced);
            self.make_room(weight, idx);
            self.weight += weight;
            let replaced = Removal::new(key, old_value, RemovalCause::Replaced);
            return (Some(replaced), idx);
        }

        // A full cache of unit weights evicts exactly one entry: its slot takes the new one in
        // place (no node moves, no free-list round trip).
        if self.rules.weigher.is_none()
            && self.slab.len() >= self.max_entries
            && let Some(victim) = self.policy.victim(&mut self.slab, NIL)
        {
            self.recycle(victim, hash, key, value, deadline);
            self.set_idle(victim, idle);
            return (None, victim);
        }
        self.make_room(weight, NIL);
        match self.slab.insert(Node::new(key, value, deadline, weight)) {
            Ok(idx) => {
                self.table
                    .insert_unique(hash, idx, |&i| self.hasher.hash_one(&self.slab.node(i).key));
                if deadline != NEVER {
                    self.wheel.schedule(&mut self.slab, idx);
                }
                self.set_idle(idx, idle);
                self.policy.on_insert(&mut self.slab, idx, hash);
                self.weight += weight;
                self.stats.inserts += 1;
                (None, idx)
            }
            // Unreachable: `make_room` keeps the entry count below the index range.
            Err(node) => {
                self.record(RemovalCause::Rejected);
                self.discard(Removal::new(node.key, node.value, RemovalCause::Rejected));
                (None, NIL)
            }
        }
    }

    /// Evicts by the policy until `incoming` more weight (and, for a new entry, one more entry)
    /// fits, never evicting `protect`.
    fn make_room(&mut self, incoming: u64, protect: u32) {
        let new_entry = protect == NIL;
        // `weight <= capacity` holds here (the incoming entry is not counted yet).
        while incoming > self.capacity - self.weight
            || (new_entry && self.slab.len() >= self.max_entries)
        {
            let Some(victim) = self.policy.victim(&mut self.slab, protect) else {
                break;
            };
            let hash = self.hash(&self.slab.node(victim).key);
            self.drop_entry(victim, hash, RemovalCause::Evicted);
        }
    }

    /// `remove`: takes the live entry for `key` (whose hash is `hash`) out, as a removal for the
    /// caller to report and hand back.
    pub(crate) fn remove_hashed<Q>(&mut self, hash: u64, key: &Q) -> Option<Removal<K, V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if !self.wheel.is_empty() {
            let now = self.now();
            self.purge(now);
        }
        let idx = self.find(hash, key)?;
        self.target_at = self.removed.len();
        Some(self.take_entry(idx, hash, RemovalCause::Removed))
    }

    /// Drops every expired entry now.
    pub(crate) fn purge_expired(&mut self) -> usize {
        if self.wheel.is_empty() {
            return 0;
        }
        let now = self.now();
        self.purge(now)
    }

    fn purge(&mut self, now: u64) -> usize {
        let mut purged = 0;
        while let Some(idx) = self.wheel.pop_expired(&mut self.slab, now) {
            let hash = self.hash(&self.slab.node(idx).key);
            self.drop_entry(idx, hash, RemovalCause::Expired);
            purged += 1;
        }
        purged
    }

    /// `clear`: every entry leaves as `Removed` (as the trait documents), in slab order.
    pub(crate) fn clear(&mut self) {
        self.table.clear();
        self.wheel.clear();
        self.policy.clear();
        self.idle.clear();
        self.weight = 0;
        let removed = self.slab.len() as u64;
        self.stats.removals += removed;
        if self.collect {
            let buffer = &mut self.removed;
            self.slab.drain(|node| {
                buffer.push(Removal::new(node.key, node.value, RemovalCause::Removed));
            });
        } else {
            self.slab.drain(drop);
        }
    }

    /// Evicts `victim` and stores the new entry (unit weight, key hash `hash`) in its slot.
    fn recycle(&mut self, victim: u32, hash: u64, key: K, value: V, deadline: u64) {
        let victim_hash = self.hash(&self.slab.node(victim).key);
        self.detach(victim, victim_hash, true);
        let (old_key, old_value) = self.slab.recycle(victim, key, value, deadline);
        self.table.insert_unique(hash, victim, |&i| {
            self.hasher.hash_one(&self.slab.node(i).key)
        });
        if deadline != NEVER {
            self.wheel.schedule(&mut self.slab, victim);
        }
        self.policy.on_insert(&mut self.slab, victim, hash);
        // One unit of weight left, one came in.
        self.stats.inserts += 1;
        self.record(RemovalCause::Evicted);
        self.discard(Removal::new(old_key, old_value, RemovalCause::Evicted));
    }

    /// Takes entry `idx` (key hash `hash`) out of the wheel, the policy and the index table,
    /// leaving its node in the slab.
    #[inline]
    fn detach(&mut self, idx: u32, hash: u64, evicted: bool) {
        if self.slab.node(idx).tslot != NO_SLOT {
            self.wheel.unschedule(&mut self.slab, idx);
        }
        self.policy.on_remove(&mut self.slab, idx, evicted, hash);
        if let Ok(entry) = self.table.find_entry(hash, |&i| i == idx) {
            entry.remove();
        }
    }

    /// Unlinks entry `idx` (key hash `hash`) from everything and counts it; returns it.
    fn take_entry(&mut self, idx: u32, hash: u64, cause: RemovalCause) -> Removal<K, V> {
        self.detach(idx, hash, cause == RemovalCause::Evicted);
        let Node {
            key, value, weight, ..
        } = self.slab.remove(idx);
        self.weight -= weight;
        self.record(cause);
        Removal::new(key, value, cause)
    }

    /// [`take_entry`](Self::take_entry), buffering the removal.
    pub(super) fn drop_entry(&mut self, idx: u32, hash: u64, cause: RemovalCause) {
        let removal = self.take_entry(idx, hash, cause);
        self.discard(removal);
    }
}
