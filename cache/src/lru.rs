//! [`LruCache`]: evicts the least recently used entry.

use std::sync::atomic::Ordering;

use crate::SipHashBuilder;
use crate::engine::{Engine, Policy, cache_type};
use crate::slab::{List, NIL, Node, Slab};

/// A cache that evicts the **least recently used** entry first.
///
/// `get`, `get_mut` and replacing a value make an entry the most recently used; `peek`,
/// `contains` and `iter` do not. This order is exact; in a
/// [`ConcurrentCache`](crate::ConcurrentCache), whose lookups share the lock, it is approximated
/// (see [Policies under a shared lock](crate::ConcurrentCache#policies-under-a-shared-lock)). Iteration runs from the most to the least recently used entry
/// (the next victim comes last). Every operation is O(1): entries live in a slab threaded by one
/// doubly linked recency list, found through a hash table of slab indices. See
/// [`Cache`](crate::Cache) for the semantics every cache shares (weights, time-to-live,
/// removal listener, stats).
///
/// # Examples
///
/// ```
/// use tierkit_cache::{Cache, LruCache};
///
/// let mut cache = LruCache::new(2)?;
/// cache.insert("a", 1);
/// cache.insert("b", 2);
/// assert_eq!(cache.get(&"a"), Some(&1)); // "a" is now the most recently used
/// cache.insert("c", 3); // evicts "b", the least recently used
/// assert!(!cache.contains(&"b"));
/// let order: Vec<_> = cache.iter().map(|(k, _)| *k).collect();
/// assert_eq!(order, ["c", "a"]);
/// # Ok::<(), tierkit_cache::Error>(())
/// ```
pub struct LruCache<K, V, S = SipHashBuilder> {
    inner: Engine<K, V, S, Lru>,
}

cache_type!(LruCache, "LRU cache");

/// One recency list: front = most recently used, back = the next victim.
pub(crate) struct Lru {
    list: List,
}

impl Policy for Lru {
    fn new(_capacity: u64, _prealloc: usize) -> Self {
        Self { list: List::EMPTY }
    }

    fn on_insert<K, V>(&mut self, slab: &mut Slab<K, V>, idx: u32, _hash: u64) {
        slab.push_front(&mut self.list, idx);
    }

    /// Exact LRU. A mark left by a shared hit (which only a `ConcurrentCache` makes, and whose
    /// exclusive `get` only reaches expired entries) is left alone: reading it would cost the hit
    /// a second cache line of the node.
    #[inline]
    fn on_access<K, V>(&mut self, slab: &mut Slab<K, V>, idx: u32) {
        slab.move_to_front(&mut self.list, idx);
    }

    /// A hit under a shared lock cannot move the entry: it marks it (once), and the mark is
    /// honoured when the entry reaches the back of the list (see `victim`).
    #[inline]
    fn on_shared_access<K, V>(&self, node: &Node<K, V>) -> bool {
        if node.refs.load(Ordering::Relaxed) == 0 {
            node.refs.store(1, Ordering::Relaxed);
        }
        true
    }

    fn on_replace<K, V>(&mut self, slab: &mut Slab<K, V>, idx: u32, _old_weight: u64) {
        slab.move_to_front(&mut self.list, idx);
        unmark(slab, idx);
    }

    fn on_remove<K, V>(&mut self, slab: &mut Slab<K, V>, idx: u32, _evicted: bool, _hash: u64) {
        slab.unlink(&mut self.list, idx);
    }

    /// The back of the list; a back entry marked by a shared hit is moved to the front instead
    /// (unmarked), as its hit would have done. Without shared hits (a single-owner cache) no
    /// entry is ever marked and this is exact LRU.
    fn victim<K, V>(&mut self, slab: &mut Slab<K, V>, protect: u32) -> Option<u32> {
        loop {
            let idx = back_except(slab, &self.list, protect)?;
            let refs = slab.node_mut(idx).refs.get_mut();
            if *refs == 0 {
                return Some(idx);
            }
            *refs = 0;
            slab.move_to_front(&mut self.list, idx);
        }
    }

    fn clear(&mut self) {
        self.list = List::EMPTY;
    }

    fn iter_start(&self) -> (u32, u32) {
        (self.list.head, NIL)
    }
}

/// Clears a shared hit's mark (written only when set, so a plain hit does not dirty the node).
#[inline]
fn unmark<K, V>(slab: &mut Slab<K, V>, idx: u32) {
    let refs = slab.node_mut(idx).refs.get_mut();
    if *refs != 0 {
        *refs = 0;
    }
}

/// The back of `list`, or the one before it when the back is `protect`.
pub(crate) fn back_except<K, V>(slab: &Slab<K, V>, list: &List, protect: u32) -> Option<u32> {
    let mut idx = list.tail;
    if idx != NIL && idx == protect {
        idx = slab.prev(idx);
    }
    (idx != NIL).then_some(idx)
}
