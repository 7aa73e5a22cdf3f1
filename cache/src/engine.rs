//! The plumbing every policy shares: slab storage, the index table, weights, expiry, the removal
//! listener and the stats. A policy only orders the entries (see [`Policy`]).
//!
//! The index is a `hashbrown::HashTable<u32>` of slab indices that hashes *through the slab*, so a
//! key is stored once. Time is the builder's clock in nanoseconds, always its
//! [`Clock::recent_nanos`] reading (exact for most clocks), so deadlines and the checks against
//! them share one time line; lookups read it only when the entry found has a deadline, writes only
//! when a deadline is in play.
//!
//! Every keyed operation has a `*_hashed` form taking the key's hash, so a
//! [`ConcurrentCache`](crate::ConcurrentCache) hashes once for the shard and the table, and
//! [`Engine::get_shared`] looks up under a shared lock (see [`SharedGet`]).

use std::borrow::Borrow;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hashbrown::HashTable;

use crate::expiry::{NO_SLOT, Wheel};
use crate::slab::{MAX_ENTRIES, NEVER, NIL, Node, Slab};
use crate::{CacheBuilder, Error, CacheStats, Clock, RemovalCause, RemovalListener, Weigher};

/// Storage reserved up front (without a weigher): up to this many entries.
const PREALLOC_LIMIT: u64 = 1 << 16;

/// An eviction policy: it orders the entries through the slab's `prev`/`next` links and the
/// nodes' `meta` word and `refs` counter. The engine calls exactly one `on_*` hook per change of an entry.
pub(crate) trait Policy {
    /// A policy for a cache of `capacity` weight, with room for `prealloc` entries reserved.
    fn new(capacity: u64, prealloc: usize) -> Self;
    /// Links a new entry (`hash` is its key's hash).
    fn on_insert<K, V>(&mut self, slab: &mut Slab<K, V>, idx: u32, hash: u64);
    /// A `get`/`get_mut` hit.
    fn on_access<K, V>(&mut self, slab: &mut Slab<K, V>, idx: u32);
    /// A hit seen under a shared lock: record it through the node's atomic `refs` alone and
    /// return `true`, or return `false` when the hit needs exclusive access (the caller then
    /// repeats the lookup exclusively).
    fn on_shared_access<K, V>(&self, node: &Node<K, V>) -> bool;
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
    /// The default time-to-live in nanoseconds (saturated at `u64::MAX`).
    default_ttl: Option<u64>,
    pub(crate) weigher: Option<Arc<dyn Weigher<K, V>>>,
    listener: Option<Arc<dyn RemovalListener<K, V>>>,
    clock: Arc<dyn Clock>,
    /// The clock's lookup reading when it is a `CoarseClock`, loaded without a virtual call.
    recent: Option<&'static AtomicU64>,
    stats: CacheStats,
}

/// `ttl` in nanoseconds, saturated (past about 584 years: never expires).
fn ttl_nanos(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_nanos()).unwrap_or(u64::MAX)
}

/// The time-to-live of an insert.
#[derive(Debug, Clone, Copy)]
pub enum Ttl {
    /// The cache's default (none unless configured).
    Default,
    /// This one, overriding the default.
    For(Duration),
}

/// The outcome of [`Engine::get_shared`], a lookup under a shared lock.
#[derive(Debug)]
pub enum SharedGet<T> {
    /// A live entry; the hit was recorded by the policy (not counted in the stats: the caller
    /// counts it).
    Hit(T),
    /// No entry for the key (not counted).
    Miss,
    /// The lookup needs exclusive access: the entry expired (it must be dropped) or the policy
    /// cannot record the hit under a shared lock. Nothing was recorded.
    Exclusive,
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
            return Err(Error::CapacityTooLarge {
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
        Ok(Self {
            slab: Slab::with_capacity(prealloc),
            table: HashTable::with_capacity(prealloc),
            hasher: builder.hasher.clone(),
            policy: P::new(capacity, prealloc),
            wheel: Wheel::new(),
            weight: 0,
            capacity,
            max_entries: usize::try_from(max_entries).unwrap_or(usize::MAX),
            default_ttl: builder.default_ttl.map(ttl_nanos),
            weigher: builder.weigher.clone(),
            listener: builder.listener.clone(),
            clock: Arc::clone(&builder.clock),
            recent: builder.recent,
            stats: CacheStats::default(),
        })
    }

    /// The time for writes: the same reading as lookups (so a coarse clock shifts every
    /// decision alike), never [`NEVER`].
    #[inline]
    fn now(&self) -> u64 {
        self.recent().min(NEVER - 1)
    }

    /// The cache's time: [`Clock::recent_nanos`], exact for most clocks, a tick-old atomic load
    /// for a `CoarseClock`.
    #[inline]
    fn recent(&self) -> u64 {
        match self.recent {
            Some(reading) => reading.load(Ordering::Relaxed),
            None => self.clock.recent_nanos(),
        }
    }

    /// Whether an entry with `deadline` is still live for a lookup (no clock read without one).
    #[inline]
    fn live_for_lookup(&self, deadline: u64) -> bool {
        deadline == NEVER || deadline > self.recent()
    }

    /// Iterates over live entries in the policy's order.
    pub(crate) fn iter(&self) -> Iter<'_, K, V> {
        let (cur, then) = self.policy.iter_start();
        // Entries with a deadline are exactly the scheduled ones: without any, no clock read.
        let now = if self.wheel.is_empty() {
            0
        } else {
            self.recent()
        };
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
    pub(crate) fn hash<Q: Hash + ?Sized>(&self, key: &Q) -> u64 {
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

    /// `get`/`get_mut`: the live entry for `key` (whose hash is `hash`), counted and touched; an
    /// expired entry is dropped on the way.
    #[inline]
    pub(crate) fn lookup_hashed<Q>(&mut self, hash: u64, key: &Q) -> Option<&mut Node<K, V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let idx = self.lookup_idx(hash, key)?;
        Some(self.slab.node_mut(idx))
    }

    /// [`lookup_hashed`](Self::lookup_hashed), returning the entry's slab index. Always
    /// inlined: with plain `#[inline]` the `get` hit measured ~0.3 ns slower than the body
    /// written out in `lookup_hashed` (`-- lru/get_hit/tierkit_fast_coarse`, 4 interleaved runs).
    #[inline(always)]
    fn lookup_idx<Q>(&mut self, hash: u64, key: &Q) -> Option<u32>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let Some(idx) = self.find(hash, key) else {
            self.stats.misses += 1;
            return None;
        };
        if !self.live_for_lookup(self.slab.node(idx).deadline) {
            self.remove_entry(idx, hash, RemovalCause::Expired);
            self.stats.misses += 1;
            return None;
        }
        self.stats.hits += 1;
        self.policy.on_access(&mut self.slab, idx);
        Some(idx)
    }

    /// [`lookup_hashed`](Self::lookup_hashed), hashing `key`.
    #[inline]
    pub(crate) fn lookup<Q>(&mut self, key: &Q) -> Option<&mut Node<K, V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.lookup_hashed(self.hash(key), key)
    }

    /// A `get` through a shared reference (a `ConcurrentCache` read lock): see [`SharedGet`].
    #[inline]
    pub(crate) fn get_shared<Q>(&self, hash: u64, key: &Q) -> SharedGet<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let Some(idx) = self.find(hash, key) else {
            return SharedGet::Miss;
        };
        let node = self.slab.node(idx);
        if !self.live_for_lookup(node.deadline) || !self.policy.on_shared_access(node) {
            return SharedGet::Exclusive;
        }
        SharedGet::Hit(&node.value)
    }

    /// `peek`: the live entry for `key`, untouched and uncounted.
    #[inline]
    pub(crate) fn peek_hashed<Q>(&self, hash: u64, key: &Q) -> Option<&Node<K, V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let node = self.slab.node(self.find(hash, key)?);
        self.live_for_lookup(node.deadline).then_some(node)
    }

    /// [`peek_hashed`](Self::peek_hashed), hashing `key`.
    pub(crate) fn peek<Q>(&self, key: &Q) -> Option<&Node<K, V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.peek_hashed(self.hash(key), key)
    }

    /// Inserts with `ttl`, hashing the key.
    pub(crate) fn insert(&mut self, key: K, value: V, ttl: Ttl) -> Option<V> {
        let hash = self.hash(&key);
        self.insert_hashed(hash, key, value, ttl)
    }

    /// Inserts `key` (whose hash is `hash`) with `ttl`. See [`Cache`](crate::Cache) for the rules.
    #[inline]
    pub(crate) fn insert_hashed(&mut self, hash: u64, key: K, value: V, ttl: Ttl) -> Option<V> {
        self.insert_at(hash, key, value, ttl).0
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
            None => self.insert_at(hash, key, make(), Ttl::Default).1,
        };
        if idx == NIL {
            None
        } else {
            Some(self.slab.node_mut(idx))
        }
    }

    /// [`insert_hashed`](Self::insert_hashed), also returning the slab index now holding the
    /// value, or [`NIL`] when it was not kept.
    fn insert_at(&mut self, hash: u64, key: K, value: V, ttl: Ttl) -> (Option<V>, u32) {
        let ttl = match ttl {
            Ttl::Default => self.default_ttl,
            Ttl::For(ttl) => Some(ttl_nanos(ttl)),
        };
        // The time only when something can expire: an entry to schedule, or scheduled ones to
        // drop. Without any deadline in play the write reads no clock.
        let now = if ttl.is_some() || !self.wheel.is_empty() {
            let now = self.now();
            self.purge(now);
            now
        } else {
            0
        };
        let existing = self.find(hash, &key);

        let deadline = match ttl {
            None => NEVER,
            Some(0) => {
                // Stored and expired at once: the old value is replaced, the new one expires.
                let old = existing.map(|i| self.remove_entry(i, hash, RemovalCause::Replaced));
                self.record(RemovalCause::Expired);
                self.notify(&key, &value, RemovalCause::Expired);
                return (old.map(|n| n.value), NIL);
            }
            Some(ttl) => now.checked_add(ttl).unwrap_or(NEVER),
        };

        let weight = self.weigher.as_ref().map_or(1, |w| w.weigh(&key, &value));
        if weight > self.capacity {
            let old = existing.map(|i| self.remove_entry(i, hash, RemovalCause::Replaced));
            self.record(RemovalCause::Rejected);
            self.notify(&key, &value, RemovalCause::Rejected);
            return (old.map(|n| n.value), NIL);
        }

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
            self.policy.on_replace(&mut self.slab, idx, old_weight);
            self.record(RemovalCause::Replaced);
            self.notify(&self.slab.node(idx).key, &old_value, RemovalCause::Replaced);
            self.make_room(weight, idx);
            self.weight += weight;
            return (Some(old_value), idx);
        }

        // A full cache of unit weights evicts exactly one entry: its slot takes the new one in
        // place (no node moves, no free-list round trip).
        if self.weigher.is_none()
            && self.slab.len() >= self.max_entries
            && let Some(victim) = self.policy.victim(&mut self.slab, NIL)
        {
            self.recycle(victim, hash, key, value, deadline);
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
                self.policy.on_insert(&mut self.slab, idx, hash);
                self.weight += weight;
                self.stats.inserts += 1;
                (None, idx)
            }
            // Unreachable: `make_room` keeps the entry count below the index range.
            Err(node) => {
                self.record(RemovalCause::Rejected);
                self.notify(&node.key, &node.value, RemovalCause::Rejected);
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
            self.remove_entry(victim, hash, RemovalCause::Evicted);
        }
    }

    /// `remove`: takes the live entry for `key` (whose hash is `hash`) out.
    pub(crate) fn remove_hashed<Q>(&mut self, hash: u64, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if !self.wheel.is_empty() {
            let now = self.now();
            self.purge(now);
        }
        let idx = self.find(hash, key)?;
        Some(self.remove_entry(idx, hash, RemovalCause::Removed).value)
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
        self.notify(&old_key, &old_value, RemovalCause::Evicted);
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

    /// Unlinks entry `idx` (key hash `hash`) from everything, counts and reports it.
    fn remove_entry(&mut self, idx: u32, hash: u64, cause: RemovalCause) -> Node<K, V> {
        self.detach(idx, hash, cause == RemovalCause::Evicted);
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
            self.cur = self.slab.next(self.cur);
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

/// The operations [`ConcurrentCache`](crate::ConcurrentCache) needs beyond [`Cache`](crate::Cache):
/// keyed operations on a hash it computed once (for the shard and the table), and a lookup under a
/// shared lock. A supertrait of [`CachePolicy`](crate::CachePolicy) that no other crate can name,
/// so `CachePolicy` is sealed: a wrong hash would corrupt the index, so these must stay internal.
pub trait Hashed<K, V> {
    /// `get_mut` of `key`, whose hash is `hash`.
    fn get_hashed<Q>(&mut self, hash: u64, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized;
    /// `get` under a shared lock.
    fn get_shared<Q>(&self, hash: u64, key: &Q) -> SharedGet<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized;
    /// `peek` of `key`, whose hash is `hash`.
    fn peek_hashed<Q>(&self, hash: u64, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized;
    /// `insert` / `insert_with_ttl` of `key`, whose hash is `hash`.
    fn insert_hashed(&mut self, hash: u64, key: K, value: V, ttl: Ttl) -> Option<V>;
    /// `remove` of `key`, whose hash is `hash`.
    fn remove_hashed<Q>(&mut self, hash: u64, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized;
}

/// Implements [`Cache`](crate::Cache), [`CachePolicy`](crate::CachePolicy), [`Hashed`], `Debug`
/// and the `new`/`builder` constructors of a public cache type wrapping `Engine` in a field
/// `inner`.
macro_rules! cache_type {
    ($ty:ident, $name:literal) => {
        impl<K, V> $ty<K, V, ::std::hash::RandomState> {
            #[doc = concat!("An empty ", $name, " holding at most `capacity` entries.")]
            ///
            /// # Errors
            /// [`Error::ZeroCapacity`](crate::Error::ZeroCapacity) for zero and
            /// [`Error::CapacityTooLarge`](crate::Error::CapacityTooLarge) above
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
                self.inner.lookup(key).map(|node| &node.value)
            }

            #[inline]
            fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
            where
                K: ::std::borrow::Borrow<Q>,
                Q: ::std::hash::Hash + Eq + ?Sized,
            {
                self.inner.lookup(key).map(|node| &mut node.value)
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
                self.inner.insert(key, value, $crate::engine::Ttl::Default)
            }

            fn get_or_insert_with<F>(&mut self, key: K, make: F) -> Option<&V>
            where
                F: FnOnce() -> V,
            {
                self.inner
                    .get_or_insert_with(key, make)
                    .map(|node| &node.value)
            }

            fn insert_with_ttl(
                &mut self,
                key: K,
                value: V,
                ttl: ::std::time::Duration,
            ) -> Option<V> {
                self.inner.insert(key, value, $crate::engine::Ttl::For(ttl))
            }

            fn remove<Q>(&mut self, key: &Q) -> Option<V>
            where
                K: ::std::borrow::Borrow<Q>,
                Q: ::std::hash::Hash + Eq + ?Sized,
            {
                self.inner.remove_hashed(self.inner.hash(key), key)
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

        impl<K, V, S> $crate::engine::Hashed<K, V> for $ty<K, V, S>
        where
            K: ::std::hash::Hash + Eq + 'static,
            V: 'static,
            S: ::std::hash::BuildHasher,
        {
            #[inline]
            fn get_hashed<Q>(&mut self, hash: u64, key: &Q) -> Option<&mut V>
            where
                K: ::std::borrow::Borrow<Q>,
                Q: ::std::hash::Hash + Eq + ?Sized,
            {
                self.inner
                    .lookup_hashed(hash, key)
                    .map(|node| &mut node.value)
            }

            #[inline]
            fn get_shared<Q>(&self, hash: u64, key: &Q) -> $crate::engine::SharedGet<&V>
            where
                K: ::std::borrow::Borrow<Q>,
                Q: ::std::hash::Hash + Eq + ?Sized,
            {
                self.inner.get_shared(hash, key)
            }

            #[inline]
            fn peek_hashed<Q>(&self, hash: u64, key: &Q) -> Option<&V>
            where
                K: ::std::borrow::Borrow<Q>,
                Q: ::std::hash::Hash + Eq + ?Sized,
            {
                self.inner.peek_hashed(hash, key).map(|node| &node.value)
            }

            fn insert_hashed(
                &mut self,
                hash: u64,
                key: K,
                value: V,
                ttl: $crate::engine::Ttl,
            ) -> Option<V> {
                self.inner.insert_hashed(hash, key, value, ttl)
            }

            fn remove_hashed<Q>(&mut self, hash: u64, key: &Q) -> Option<V>
            where
                K: ::std::borrow::Borrow<Q>,
                Q: ::std::hash::Hash + Eq + ?Sized,
            {
                self.inner.remove_hashed(hash, key)
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
