//! The plumbing every policy shares: slab storage, the index table, weights, expiry, the removal
//! listener and the stats. A policy only orders the entries (see [`Policy`]).
//!
//! The index is a `hashbrown::HashTable<u32>` of slab indices that hashes *through the slab*, so a
//! key is stored once. Time is nanoseconds since the cache was built, read from the builder's
//! clock only when an entry has a deadline (or on a write).

use std::borrow::Borrow;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hashbrown::HashTable;

use crate::expiry::{NO_SLOT, Wheel};
use crate::slab::{MAX_ENTRIES, NEVER, NIL, Node, Slab};
use crate::{CacheBuilder, CacheError, CacheStats, Clock, RemovalCause, RemovalListener, Weigher};

/// Storage reserved up front (without a weigher): up to this many entries.
const PREALLOC_LIMIT: u64 = 1 << 16;

/// An eviction policy: it orders the entries through the nodes' `prev`/`next` links and `meta`
/// word. The engine calls exactly one `on_*` hook per change of an entry.
pub(crate) trait Policy {
    /// A policy for a cache of `capacity` weight, with room for `prealloc` entries reserved.
    fn new(capacity: u64, prealloc: usize) -> Self;
    /// Links a new entry (`hash` is its key's hash).
    fn on_insert<K, V>(&mut self, slab: &mut Slab<K, V>, idx: u32, hash: u64);
    /// A `get`/`get_mut` hit.
    fn on_access<K, V>(&mut self, slab: &mut Slab<K, V>, idx: u32);
    /// The entry's value (and weight, now in the node) was replaced; `old_weight` was its weight.
    fn on_replace<K, V>(&mut self, slab: &mut Slab<K, V>, idx: u32, old_weight: u64);
    /// Unlinks an entry that is leaving; `evicted` when the policy chose it as a victim.
    fn on_remove<K, V>(&mut self, slab: &mut Slab<K, V>, idx: u32, evicted: bool, hash: u64);
    /// The next entry to evict, never `protect`; `None` when only `protect` (or nothing) is left.
    /// May reorder entries on the way (second chances).
    fn victim<K, V>(&mut self, slab: &mut Slab<K, V>, protect: u32) -> Option<u32>;
    /// Forgets every entry (the engine discards the nodes).
    fn clear(&mut self);
    /// Where iteration starts, and the head of a second list it continues with (or `NIL`).
    fn iter_start(&self) -> (u32, u32);
}

/// The shared engine behind every single-owner cache type.
pub(crate) struct Engine<K, V, S, P> {
    pub(crate) slab: Slab<K, V>,
    table: HashTable<u32>,
    hasher: S,
    pub(crate) policy: P,
    wheel: Wheel,
    weight: u64,
    capacity: u64,
    /// Entry-count bound: the capacity without a weigher, the slab's index range with one.
    max_entries: usize,
    default_ttl: Option<Duration>,
    pub(crate) weigher: Option<Arc<dyn Weigher<K, V>>>,
    listener: Option<Arc<dyn RemovalListener<K, V>>>,
    clock: Arc<dyn Clock>,
    epoch: Instant,
    stats: CacheStats,
}

impl<K, V, S, P> Engine<K, V, S, P> {
    pub(crate) fn len(&self) -> usize {
        self.slab.len()
    }

    pub(crate) fn weight(&self) -> u64 {
        self.weight
    }

    pub(crate) fn capacity(&self) -> u64 {
        self.capacity
    }

    pub(crate) fn stats(&self) -> CacheStats {
        self.stats
    }
}

// `K, V: 'static` because listeners and weighers are `'static` trait objects over them.
impl<K: 'static, V: 'static, S, P: Policy> Engine<K, V, S, P> {
    /// Builds an empty engine from a builder.
    pub(crate) fn from_builder(builder: &CacheBuilder<K, V, S>) -> crate::Result<Self>
    where
        S: Clone,
    {
        builder.validate()?;
        let capacity = builder.capacity;
        let max_entries = if builder.weigher.is_some() {
            MAX_ENTRIES
        } else if capacity > MAX_ENTRIES {
            return Err(CacheError::CapacityTooLarge {
                requested: capacity,
                max: MAX_ENTRIES,
            });
        } else {
            capacity
        };
        let prealloc = if builder.weigher.is_some() {
            0
        } else {
            capacity.min(PREALLOC_LIMIT)
        };
        let prealloc = usize::try_from(prealloc).unwrap_or(0);
        let clock = Arc::clone(&builder.clock);
        Ok(Self {
            slab: Slab::with_capacity(prealloc),
            table: HashTable::with_capacity(prealloc),
            hasher: builder.hasher.clone(),
            policy: P::new(capacity, prealloc),
            wheel: Wheel::new(),
            weight: 0,
            capacity,
            max_entries: usize::try_from(max_entries).unwrap_or(usize::MAX),
            default_ttl: builder.default_ttl,
            weigher: builder.weigher.clone(),
            listener: builder.listener.clone(),
            epoch: clock.now(),
            clock,
            stats: CacheStats::default(),
        })
    }

    /// Nanoseconds since the cache was built (never [`NEVER`]).
    fn now(&self) -> u64 {
        let nanos = self
            .clock
            .now()
            .saturating_duration_since(self.epoch)
            .as_nanos();
        u64::try_from(nanos).unwrap_or(NEVER).min(NEVER - 1)
    }

    /// Iterates over live entries in the policy's order.
    pub(crate) fn iter(&self) -> Iter<'_, K, V> {
        let (cur, then) = self.policy.iter_start();
        // Entries with a deadline are exactly the scheduled ones: without any, no clock read.
        let now = if self.wheel.is_empty() { 0 } else { self.now() };
        Iter {
            slab: &self.slab,
            cur,
            then,
            now,
        }
    }

    fn record(&mut self, cause: RemovalCause) {
        let s = &mut self.stats;
        match cause {
            RemovalCause::Evicted => s.evictions += 1,
            RemovalCause::Expired => s.expirations += 1,
            RemovalCause::Removed => s.removals += 1,
            RemovalCause::Replaced => s.updates += 1,
            RemovalCause::Rejected => s.rejections += 1,
        }
    }

    pub(crate) fn notify(&self, key: &K, value: &V, cause: RemovalCause) {
        if let Some(listener) = &self.listener {
            listener.on_removal(key, value, cause);
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
    #[inline]
    fn hash<Q: Hash + ?Sized>(&self, key: &Q) -> u64 {
        self.hasher.hash_one(key)
    }

    /// The slab index of `key`'s entry, live or not.
    #[inline]
    fn find<Q>(&self, hash: u64, key: &Q) -> Option<u32>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.table
            .find(hash, |&i| self.slab.node(i).key.borrow() == key)
            .copied()
    }

    /// `get`/`get_mut`: the index of the live entry for `key`, counted and touched; an expired
    /// entry is dropped on the way.
    pub(crate) fn lookup<Q>(&mut self, key: &Q) -> Option<u32>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hash(key);
        let Some(idx) = self.find(hash, key) else {
            self.stats.misses += 1;
            return None;
        };
        let deadline = self.slab.node(idx).deadline;
        if deadline != NEVER && deadline <= self.now() {
            self.remove_entry(idx, hash, RemovalCause::Expired);
            self.stats.misses += 1;
            return None;
        }
        self.stats.hits += 1;
        self.policy.on_access(&mut self.slab, idx);
        Some(idx)
    }

    /// `peek`: the live entry for `key`, untouched and uncounted.
    pub(crate) fn peek<Q>(&self, key: &Q) -> Option<&Node<K, V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let idx = self.find(self.hash(key), key)?;
        let node = self.slab.node(idx);
        (node.deadline == NEVER || node.is_live(self.now())).then_some(node)
    }

    /// Inserts with the default time-to-live.
    pub(crate) fn insert(&mut self, key: K, value: V) -> Option<V> {
        self.insert_with(key, value, self.default_ttl)
    }

    /// Inserts with `ttl` (`None`: never expires). See [`Cache`](crate::Cache) for the rules.
    pub(crate) fn insert_with(&mut self, key: K, value: V, ttl: Option<Duration>) -> Option<V> {
        let now = self.now();
        self.purge(now);
        let hash = self.hash(&key);
        let existing = self.find(hash, &key);

        let deadline = match ttl {
            None => NEVER,
            Some(ttl) if ttl.is_zero() => {
                // Stored and expired at once: the old value is replaced, the new one expires.
                let old = existing.map(|i| self.remove_entry(i, hash, RemovalCause::Replaced));
                self.record(RemovalCause::Expired);
                self.notify(&key, &value, RemovalCause::Expired);
                return old.map(|n| n.value);
            }
            Some(ttl) => u64::try_from(ttl.as_nanos())
                .ok()
                .and_then(|t| now.checked_add(t))
                .unwrap_or(NEVER),
        };

        let weight = self.weigher.as_ref().map_or(1, |w| w.weigh(&key, &value));
        if weight > self.capacity {
            let old = existing.map(|i| self.remove_entry(i, hash, RemovalCause::Replaced));
            self.record(RemovalCause::Rejected);
            self.notify(&key, &value, RemovalCause::Rejected);
            return old.map(|n| n.value);
        }

        if let Some(idx) = existing {
            let (old_value, old_weight) = {
                let node = self.slab.node_mut(idx);
                let old_weight = std::mem::replace(&mut node.weight, weight);
                (std::mem::replace(&mut node.value, value), old_weight)
            };
            // The entry's own weight is re-added once the others made room for it.
            self.weight -= old_weight;
            self.wheel.unschedule(&mut self.slab, idx);
            self.slab.node_mut(idx).deadline = deadline;
            if deadline != NEVER {
                self.wheel.schedule(&mut self.slab, idx);
            }
            self.policy.on_replace(&mut self.slab, idx, old_weight);
            self.record(RemovalCause::Replaced);
            self.notify(&self.slab.node(idx).key, &old_value, RemovalCause::Replaced);
            self.make_room(weight, idx);
            self.weight += weight;
            return Some(old_value);
        }

        self.make_room(weight, NIL);
        match self.slab.insert(Node::new(key, value, deadline, weight)) {
            Ok(idx) => {
                self.table
                    .insert_unique(hash, idx, |&i| self.hasher.hash_one(&self.slab.node(i).key));
                if deadline != NEVER {
                    self.wheel.schedule(&mut self.slab, idx);
                }
                self.policy.on_insert(&mut self.slab, idx, hash);
                self.weight += weight;
                self.stats.inserts += 1;
            }
            // Unreachable: `make_room` keeps the entry count below the index range.
            Err(node) => {
                self.record(RemovalCause::Rejected);
                self.notify(&node.key, &node.value, RemovalCause::Rejected);
            }
        }
        None
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
            self.remove_entry(victim, hash, RemovalCause::Evicted);
        }
    }

    /// `remove`: takes the live entry for `key` out.
    pub(crate) fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let now = self.now();
        self.purge(now);
        let hash = self.hash(key);
        let idx = self.find(hash, key)?;
        Some(self.remove_entry(idx, hash, RemovalCause::Removed).value)
    }

    /// Drops every expired entry now.
    pub(crate) fn purge_expired(&mut self) -> usize {
        let now = self.now();
        self.purge(now)
    }

    fn purge(&mut self, now: u64) -> usize {
        let mut purged = 0;
        while let Some(idx) = self.wheel.pop_expired(&mut self.slab, now) {
            let hash = self.hash(&self.slab.node(idx).key);
            self.remove_entry(idx, hash, RemovalCause::Expired);
            purged += 1;
        }
        purged
    }

    /// `clear`: every entry leaves as `Removed` (as the trait documents), in slab order.
    pub(crate) fn clear(&mut self) {
        self.table.clear();
        self.wheel.clear();
        self.policy.clear();
        self.weight = 0;
        let removed = self.slab.len() as u64;
        self.stats.removals += removed;
        let listener = self.listener.as_deref();
        self.slab.drain(|node| {
            if let Some(listener) = listener {
                listener.on_removal(&node.key, &node.value, RemovalCause::Removed);
            }
        });
    }

    /// Unlinks entry `idx` (key hash `hash`) from everything, counts and reports it.
    fn remove_entry(&mut self, idx: u32, hash: u64, cause: RemovalCause) -> Node<K, V> {
        if self.slab.node(idx).tslot != NO_SLOT {
            self.wheel.unschedule(&mut self.slab, idx);
        }
        self.policy
            .on_remove(&mut self.slab, idx, cause == RemovalCause::Evicted, hash);
        if let Ok(entry) = self.table.find_entry(hash, |&i| i == idx) {
            entry.remove();
        }
        let node = self.slab.remove(idx);
        self.weight -= node.weight;
        self.record(cause);
        self.notify(&node.key, &node.value, cause);
        node
    }
}

/// Iterator over a cache's live entries, in the policy's order (see each cache type).
///
/// Returned by [`Cache::iter`](crate::Cache::iter) on every single-owner cache. Entries whose
/// time-to-live ran out are skipped.
pub struct Iter<'a, K, V> {
    slab: &'a Slab<K, V>,
    cur: u32,
    then: u32,
    now: u64,
}

impl<'a, K, V> Iterator for Iter<'a, K, V> {
    type Item = (&'a K, &'a V);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.cur == NIL {
                if self.then == NIL {
                    return None;
                }
                self.cur = std::mem::replace(&mut self.then, NIL);
                continue;
            }
            let node = self.slab.node(self.cur);
            self.cur = node.next;
            if node.is_live(self.now) {
                return Some((&node.key, &node.value));
            }
        }
    }
}

impl<K, V> std::iter::FusedIterator for Iter<'_, K, V> {}

impl<K, V> fmt::Debug for Iter<'_, K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Iter").finish_non_exhaustive()
    }
}

/// Implements [`Cache`](crate::Cache), [`CachePolicy`](crate::CachePolicy), `Debug` and the
/// `new`/`builder` constructors of a public cache type wrapping `Engine` in a field `inner`.
macro_rules! cache_type {
    ($ty:ident, $name:literal) => {
        impl<K, V> $ty<K, V, ::std::hash::RandomState> {
            #[doc = concat!("An empty ", $name, " holding at most `capacity` entries.")]
            ///
            /// # Errors
            /// [`CacheError::ZeroCapacity`](crate::CacheError::ZeroCapacity) for zero and
            /// [`CacheError::CapacityTooLarge`](crate::CacheError::CapacityTooLarge) above
            /// `u32::MAX` entries.
            pub fn new(capacity: u64) -> $crate::Result<Self>
            where
                K: ::std::hash::Hash + Eq + 'static,
                V: 'static,
            {
                $crate::CacheBuilder::new(capacity).build()
            }

            /// A [`CacheBuilder`](crate::CacheBuilder) for this cache type, to set a
            /// time-to-live, a weigher, a removal listener, a clock or a hasher.
            pub fn builder(capacity: u64) -> $crate::CacheBuilder<K, V> {
                $crate::CacheBuilder::new(capacity)
            }
        }

        impl<K, V, S> $crate::CachePolicy<K, V, S> for $ty<K, V, S>
        where
            K: ::std::hash::Hash + Eq + 'static,
            V: 'static,
            S: ::std::hash::BuildHasher + Clone,
        {
            fn from_builder(builder: &$crate::CacheBuilder<K, V, S>) -> $crate::Result<Self> {
                Ok(Self {
                    inner: $crate::engine::Engine::from_builder(builder)?,
                })
            }
        }

        impl<K, V, S> $crate::Cache<K, V> for $ty<K, V, S>
        where
            K: ::std::hash::Hash + Eq + 'static,
            V: 'static,
            S: ::std::hash::BuildHasher,
        {
            type Iter<'a>
                = $crate::Iter<'a, K, V>
            where
                Self: 'a,
                K: 'a,
                V: 'a;

            #[inline]
            fn get<Q>(&mut self, key: &Q) -> Option<&V>
            where
                K: ::std::borrow::Borrow<Q>,
                Q: ::std::hash::Hash + Eq + ?Sized,
            {
                let idx = self.inner.lookup(key)?;
                Some(&self.inner.slab.node(idx).value)
            }

            #[inline]
            fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
            where
                K: ::std::borrow::Borrow<Q>,
                Q: ::std::hash::Hash + Eq + ?Sized,
            {
                let idx = self.inner.lookup(key)?;
                Some(&mut self.inner.slab.node_mut(idx).value)
            }

            #[inline]
            fn peek<Q>(&self, key: &Q) -> Option<&V>
            where
                K: ::std::borrow::Borrow<Q>,
                Q: ::std::hash::Hash + Eq + ?Sized,
            {
                self.inner.peek(key).map(|node| &node.value)
            }

            fn insert(&mut self, key: K, value: V) -> Option<V> {
                self.inner.insert(key, value)
            }

            fn insert_with_ttl(
                &mut self,
                key: K,
                value: V,
                ttl: ::std::time::Duration,
            ) -> Option<V> {
                self.inner.insert_with(key, value, Some(ttl))
            }

            fn remove<Q>(&mut self, key: &Q) -> Option<V>
            where
                K: ::std::borrow::Borrow<Q>,
                Q: ::std::hash::Hash + Eq + ?Sized,
            {
                self.inner.remove(key)
            }

            fn len(&self) -> usize {
                self.inner.len()
            }

            fn weight(&self) -> u64 {
                self.inner.weight()
            }

            fn capacity(&self) -> u64 {
                self.inner.capacity()
            }

            fn clear(&mut self) {
                self.inner.clear();
            }

            fn purge_expired(&mut self) -> usize {
                self.inner.purge_expired()
            }

            fn iter(&self) -> Self::Iter<'_> {
                self.inner.iter()
            }

            fn stats(&self) -> $crate::CacheStats {
                self.inner.stats()
            }
        }

        impl<K, V, S> ::std::fmt::Debug for $ty<K, V, S> {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.debug_struct(stringify!($ty))
                    .field("len", &self.inner.len())
                    .field("weight", &self.inner.weight())
                    .field("capacity", &self.inner.capacity())
                    .finish_non_exhaustive()
            }
        }
    };
}

pub(crate) use cache_type;
