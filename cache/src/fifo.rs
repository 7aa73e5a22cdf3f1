//! [`FifoCache`]: evicts the oldest entry.

use crate::SipHashBuilder;
use crate::engine::{Engine, Policy, cache_type};
use crate::lru::back_except;
use crate::slab::{List, NIL, Node, Slab};

/// A cache that evicts entries in **insertion order** (first in, first out).
///
/// Lookups never reorder entries, and replacing the value of a present key keeps its place in
/// the queue (only a new key joins at the back; its time-to-live does restart). Iteration runs
/// from the newest to the oldest entry (the next victim comes last). Every operation is O(1).
/// See [`Cache`](crate::Cache) for the semantics every cache shares.
///
/// # Examples
///
/// ```
/// use tierkit_cache::{Cache, FifoCache};
///
/// let mut cache = FifoCache::new(2)?;
/// cache.insert("a", 1);
/// cache.insert("b", 2);
/// assert_eq!(cache.get(&"a"), Some(&1)); // a hit does not save "a"...
/// cache.insert("c", 3); // ...the oldest entry goes first
/// assert!(!cache.contains(&"a"));
/// let order: Vec<_> = cache.iter().map(|(k, _)| *k).collect();
/// assert_eq!(order, ["c", "b"]);
/// # Ok::<(), tierkit_cache::Error>(())
/// ```
pub struct FifoCache<K, V, S = SipHashBuilder> {
    inner: Engine<K, V, S, Fifo>,
}

cache_type!(FifoCache, "FIFO cache");

/// One queue: front = newest, back = oldest (the next victim).
pub(crate) struct Fifo {
    list: List,
}

impl Policy for Fifo {
    fn new(_capacity: u64, _prealloc: usize) -> Self {
        Self { list: List::EMPTY }
    }

    fn on_insert<K, V>(&mut self, slab: &mut Slab<K, V>, idx: u32, _hash: u64) {
        slab.push_front(&mut self.list, idx);
    }

    #[inline]
    fn on_access<K, V>(&mut self, _slab: &mut Slab<K, V>, _idx: u32) {}

    #[inline]
    fn on_shared_access<K, V>(&self, _node: &Node<K, V>) -> bool {
        true
    }

    fn on_replace<K, V>(&mut self, _slab: &mut Slab<K, V>, _idx: u32, _old_weight: u64) {}

    fn on_remove<K, V>(&mut self, slab: &mut Slab<K, V>, idx: u32, _evicted: bool, _hash: u64) {
        slab.unlink(&mut self.list, idx);
    }

    fn victim<K, V>(&mut self, slab: &mut Slab<K, V>, protect: u32) -> Option<u32> {
        back_except(slab, &self.list, protect)
    }

    fn clear(&mut self) {
        self.list = List::EMPTY;
    }

    fn iter_start(&self) -> (u32, u32) {
        (self.list.head, NIL)
    }
}
