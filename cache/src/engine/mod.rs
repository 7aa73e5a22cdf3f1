//! The plumbing every policy shares: slab storage, the index table, weights, expiry, the removal
//! buffer and the stats. A policy only orders the entries (see [`Policy`]).
//!
//! The index is a `hashbrown::HashTable<u32>` of slab indices that hashes *through the slab*, so a
//! key is stored once. Time is the builder's clock in nanoseconds, always its
//! [`Clock::recent_nanos`] reading (exact for most clocks), so deadlines and the checks against
//! them share one time line; lookups read it only when the entry found has a deadline, writes only
//! when a deadline is in play.
//!
//! **No user code under a lock.** The engine never calls a listener or drops a removed value in
//! the middle of an operation: removals go to a buffer, and the operation reports them once its
//! bookkeeping is complete ([`Engine::flush`]). A shard of a
//! [`ConcurrentCache`](crate::ConcurrentCache) is *deferred*: it never reports at all, and the
//! concurrent cache takes the buffer out under the lock and reports after releasing it. Weights
//! and expiry policies run before an operation changes anything ([`EntryRules::prepare`]).
//!
//! Files: this one (the engine, lookups), `write.rs` (inserts, removals, expiry), `iter.rs`,
//! `hashed.rs` (what `ConcurrentCache` needs, and the macro that makes a public cache type).

use std::borrow::Borrow;
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use hashbrown::HashTable;

use crate::expiry::{NO_SLOT, Wheel};
use crate::removal::{Drained, Removal};
use crate::rules::EntryRules;
use crate::slab::{MAX_ENTRIES, NEVER, Node, Slab};
use crate::{CacheBuilder, CacheStats, Clock, Error, RemovalListener};

mod hashed;
mod iter;
mod write;

pub(crate) use hashed::cache_type;
pub(crate) use hashed::{Hashed, SharedGet};
pub use iter::Iter;

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

/// The idle bookkeeping of one entry (kept only by caches that may have idle entries).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Idle {
    /// The time-to-live deadline, which reads never extend (`NEVER`: none).
    bound: u64,
    /// The time-to-idle in nanoseconds (`NEVER`: none).
    idle: u64,
}

impl Idle {
    const NONE: Self = Self {
        bound: NEVER,
        idle: NEVER,
    };
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
    /// The weigher, the expiry policy and the default lifetimes.
    pub(crate) rules: EntryRules<K, V>,
    /// Per slab index, when some entry may have a time-to-idle (else empty).
    idle: Vec<Idle>,
    tracks_idle: bool,
    listener: Option<Arc<dyn RemovalListener<K, V>>>,
    /// Removals of the operation in progress, reported when it is done.
    removed: Vec<Removal<K, V>>,
    /// How many of `removed` happened before the operation's own removal (the value it hands
    /// back), so listeners hear them in order.
    pub(crate) target_at: usize,
    /// Whether removals are buffered at all (a listener to hear them, or a deferred shard whose
    /// values must drop outside its lock); otherwise they drop where they happen.
    collect: bool,
    /// A shard of a `ConcurrentCache`: never report; the owner takes the buffer.
    deferred: bool,
    clock: Arc<dyn Clock>,
    /// The clock's lookup reading when it is a `CoarseClock`, loaded without a virtual call.
    recent: Option<&'static AtomicU64>,
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

impl<K: 'static, V: 'static, S, P> Engine<K, V, S, P> {
    /// Reports the buffered removals (single-owner caches; a deferred shard keeps them for its
    /// owner). A listener that panics leaves the rest unreported and dropped.
    #[inline]
    pub(crate) fn flush(&mut self) {
        if !self.removed.is_empty() && !self.deferred {
            let listener = self.listener.as_deref();
            for r in self.removed.drain(..) {
                r.report(listener);
            }
        }
    }

    /// Reports the buffered removals with `target` (the removal the operation returns) in its
    /// place, and hands its value back. A deferred shard reports nothing: its owner takes the
    /// buffer ([`take_removed`](Self::take_removed)) and reports after its lock.
    #[inline]
    pub(crate) fn finish(&mut self, target: Option<Removal<K, V>>) -> Option<V> {
        if self.deferred {
            return target.map(|t| t.value);
        }
        if target.is_none() && self.removed.is_empty() {
            return None;
        }
        let drained = self.take_removed();
        drained.report(target, self.listener.as_deref())
    }
}

impl<K, V, S, P> Engine<K, V, S, P> {
    /// Takes the buffered removals out, with the position of the operation's own removal.
    #[inline]
    pub(crate) fn take_removed(&mut self) -> Drained<K, V> {
        let before = std::mem::take(&mut self.target_at);
        Drained::take(&mut self.removed, before)
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
        let weighted = builder.rules.weigher.is_some();
        let max_entries = if weighted {
            MAX_ENTRIES
        } else if capacity > MAX_ENTRIES {
            return Err(Error::CapacityTooLarge {
                requested: capacity,
                max: MAX_ENTRIES,
            });
        } else {
            capacity
        };
        let prealloc = if weighted {
            0
        } else {
            capacity.min(PREALLOC_LIMIT)
        };
        let prealloc = usize::try_from(prealloc).unwrap_or(0);
        let tracks_idle = builder.rules.tracks_idle();
        Ok(Self {
            slab: Slab::with_capacity(prealloc),
            table: HashTable::with_capacity(prealloc),
            hasher: builder.hasher.clone(),
            policy: P::new(capacity, prealloc),
            wheel: Wheel::new(),
            weight: 0,
            capacity,
            max_entries: usize::try_from(max_entries).unwrap_or(usize::MAX),
            rules: builder.rules.clone(),
            idle: if tracks_idle {
                Vec::with_capacity(prealloc)
            } else {
                Vec::new()
            },
            tracks_idle,
            collect: builder.listener.is_some() || builder.deferred,
            listener: builder.listener.clone(),
            removed: Vec::new(),
            target_at: 0,
            deferred: builder.deferred,
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

    /// Whether entry `idx` has a time-to-idle (its hits must restart it, exclusively).
    #[inline]
    fn idles(&self, idx: u32) -> bool {
        self.tracks_idle && self.idle[idx as usize].idle != NEVER
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
        Iter::new(&self.slab, cur, then, now)
    }

    /// Restarts the idle period of entry `idx` (just read at `now`): its deadline becomes the
    /// earlier of its time-to-live bound and `now + time-to-idle`.
    fn touch_idle(&mut self, idx: u32) {
        let Idle { bound, idle } = self.idle[idx as usize];
        let deadline = bound.min(self.now().saturating_add(idle));
        if self.slab.node(idx).deadline == deadline {
            return;
        }
        if self.slab.node(idx).tslot != NO_SLOT {
            self.wheel.unschedule(&mut self.slab, idx);
        }
        self.slab.node_mut(idx).deadline = deadline;
        if deadline != NEVER {
            self.wheel.schedule(&mut self.slab, idx);
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
    /// expired entry is dropped on the way (into the removal buffer: the caller flushes).
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
            self.drop_entry(idx, hash, crate::RemovalCause::Expired);
            self.stats.misses += 1;
            return None;
        }
        self.stats.hits += 1;
        self.policy.on_access(&mut self.slab, idx);
        if self.idles(idx) {
            self.touch_idle(idx);
        }
        Some(idx)
    }

    /// A single-owner `get`: [`lookup_hashed`](Self::lookup_hashed), then the removals (an
    /// expired entry) reported.
    #[inline]
    pub(crate) fn lookup<Q>(&mut self, key: &Q) -> Option<&mut Node<K, V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let idx = self.lookup_idx(self.hash(key), key);
        self.flush();
        Some(self.slab.node_mut(idx?))
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
        if !self.live_for_lookup(node.deadline)
            || self.idles(idx)
            || !self.policy.on_shared_access(node)
        {
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
}
