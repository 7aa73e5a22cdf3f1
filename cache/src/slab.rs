//! Index-based entry storage: a slab of nodes (a `Vec` plus a free list threaded through the
//! vacant slots) and intrusive doubly linked lists over `u32` slab indices.
//!
//! Every entry of every policy lives in one [`Node`]: the key and value (stored once; the index
//! table hashes through the slab), the timer-wheel links `tprev`/`tnext`/`tslot`, the expiry
//! deadline, the weight, one policy-specific `meta` word and the `refs` counter a hit may bump
//! under a shared lock. The policy-list links `prev`/`next` live apart, in a dense array of
//! [`Links`] indexed like the slots: moving an entry in a list touches its neighbours' 8-byte
//! links (an array of 80 KB for 10,000 entries, which stays in the CPU's L2 cache) instead of
//! their whole nodes. For `u64` keys and values a node (and its slot) takes 48 bytes, its links 8.

use std::sync::atomic::AtomicU8;

/// The "no index" sentinel of every link.
pub(crate) const NIL: u32 = u32::MAX;

/// The deadline of an entry that never expires.
pub(crate) const NEVER: u64 = u64::MAX;

/// The most entries a slab can hold: indices `0..MAX_ENTRIES`, with [`NIL`] reserved.
pub(crate) const MAX_ENTRIES: u64 = u32::MAX as u64;

/// One cache entry and its bookkeeping (its list links are in [`Slab::links`]).
///
/// `repr(C)` keeps what a hit reads (key, value, deadline, `refs`) together at the front, so a
/// hit touches one cache line of the node whatever the key and value types; for `u64` keys and
/// values the fields pack without padding.
#[repr(C)]
pub(crate) struct Node<K, V> {
    pub(crate) key: K,
    pub(crate) value: V,
    /// The clock's nanosecond reading at which the entry expires, or [`NEVER`].
    pub(crate) deadline: u64,
    /// Hits recorded without exclusive access (S3-FIFO: its 0..=3 frequency; LRU in a
    /// `ConcurrentCache`: 1 = referenced since it last moved to the front). Exclusive code uses
    /// `get_mut`, which compiles to a plain byte access.
    pub(crate) refs: AtomicU8,
    /// Always [`Occupied::Yes`]: the byte's 255 unused values give [`Slot`] a niche for its
    /// discriminant, so a slot is no larger than its node (the byte sits in what would be
    /// padding).
    occupied: Occupied,
    /// Timer wheel slot, or [`NO_SLOT`](crate::expiry::NO_SLOT) when not scheduled.
    pub(crate) tslot: u16,
    /// Policy-specific word (LFU: frequency bucket; S3-FIFO: which queue).
    pub(crate) meta: u32,
    /// The weight taken at insert.
    pub(crate) weight: u64,
    /// Timer wheel links.
    pub(crate) tprev: u32,
    pub(crate) tnext: u32,
}

impl<K, V> Node<K, V> {
    /// A fresh, unlinked node.
    pub(crate) fn new(key: K, value: V, deadline: u64, weight: u64) -> Self {
        Self {
            key,
            value,
            deadline,
            weight,
            tprev: NIL,
            tnext: NIL,
            meta: 0,
            tslot: crate::expiry::NO_SLOT,
            refs: AtomicU8::new(0),
            occupied: Occupied::Yes,
        }
    }

    /// Whether the entry is still live at `now` (the clock's reading in nanoseconds).
    #[inline]
    pub(crate) fn is_live(&self, now: u64) -> bool {
        self.deadline > now
    }
}

/// The one value of [`Node::occupied`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Occupied {
    Yes = 1,
}

enum Slot<K, V> {
    Occupied(Node<K, V>),
    Vacant { next_free: u32 },
}

/// The policy-list links of one slot: `prev` is towards the list's head (front).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Links {
    pub(crate) prev: u32,
    pub(crate) next: u32,
}

impl Links {
    const UNLINKED: Self = Self {
        prev: NIL,
        next: NIL,
    };
}

/// A `Vec` of slots with a free list; indices are stable while an entry lives.
pub(crate) struct Slab<K, V> {
    slots: Vec<Slot<K, V>>,
    /// `links[i]` belongs to `slots[i]` (both always have the same length).
    links: Vec<Links>,
    free_head: u32,
    len: usize,
}

impl<K, V> Slab<K, V> {
    /// An empty slab with room for `capacity` nodes reserved up front.
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        Self {
            slots: Vec::with_capacity(capacity),
            links: Vec::with_capacity(capacity),
            free_head: NIL,
            len: 0,
        }
    }

    /// Occupied slots.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Stores `node`, returning its index, or gives it back when every index is in use.
    pub(crate) fn insert(&mut self, node: Node<K, V>) -> Result<u32, Node<K, V>> {
        if self.free_head != NIL {
            let idx = self.free_head;
            let slot = &mut self.slots[idx as usize];
            if let Slot::Vacant { next_free } = *slot {
                self.free_head = next_free;
            }
            *slot = Slot::Occupied(node);
            self.links[idx as usize] = Links::UNLINKED;
            self.len += 1;
            return Ok(idx);
        }
        match u32::try_from(self.slots.len()) {
            Ok(idx) if idx != NIL => {
                self.slots.push(Slot::Occupied(node));
                self.links.push(Links::UNLINKED);
                self.len += 1;
                Ok(idx)
            }
            _ => Err(node),
        }
    }

    /// Puts a new entry in the occupied, unlinked slot `idx` (in every list and the wheel, it
    /// must be detached) and returns the old key and value.
    pub(crate) fn recycle(&mut self, idx: u32, key: K, value: V, deadline: u64) -> (K, V) {
        self.links[idx as usize] = Links::UNLINKED;
        let node = self.node_mut(idx);
        debug_assert_eq!(node.tslot, crate::expiry::NO_SLOT);
        node.deadline = deadline;
        node.weight = 1;
        node.meta = 0;
        *node.refs.get_mut() = 0;
        (
            std::mem::replace(&mut node.key, key),
            std::mem::replace(&mut node.value, value),
        )
    }

    /// Takes the node at `idx` out, making its slot vacant.
    pub(crate) fn remove(&mut self, idx: u32) -> Node<K, V> {
        let slot = std::mem::replace(
            &mut self.slots[idx as usize],
            Slot::Vacant {
                next_free: self.free_head,
            },
        );
        match slot {
            Slot::Occupied(node) => {
                self.free_head = idx;
                self.len -= 1;
                node
            }
            Slot::Vacant { .. } => unreachable!("invariant: removed slab index is occupied"),
        }
    }

    /// The node at a linked index.
    #[inline]
    pub(crate) fn node(&self, idx: u32) -> &Node<K, V> {
        match &self.slots[idx as usize] {
            Slot::Occupied(node) => node,
            Slot::Vacant { .. } => unreachable!("invariant: linked slab index is occupied"),
        }
    }

    /// The node at a linked index, mutably.
    #[inline]
    pub(crate) fn node_mut(&mut self, idx: u32) -> &mut Node<K, V> {
        match &mut self.slots[idx as usize] {
            Slot::Occupied(node) => node,
            Slot::Vacant { .. } => unreachable!("invariant: linked slab index is occupied"),
        }
    }

    /// Empties the slab (keeping its allocation), handing every node to `f`. If `f` panics the
    /// remaining nodes are dropped and the slab is still left empty.
    pub(crate) fn drain(&mut self, mut f: impl FnMut(Node<K, V>)) {
        self.free_head = NIL;
        self.len = 0;
        self.links.clear();
        for slot in self.slots.drain(..) {
            if let Slot::Occupied(node) = slot {
                f(node);
            }
        }
    }

    // ----- intrusive list operations (policy links `prev`/`next`) -----

    /// The list links of a linked index.
    #[inline]
    pub(crate) fn links(&self, idx: u32) -> Links {
        self.links[idx as usize]
    }

    /// The next index towards the list's back (tail), or `NIL`.
    #[inline]
    pub(crate) fn next(&self, idx: u32) -> u32 {
        self.links[idx as usize].next
    }

    /// The previous index towards the list's front (head), or `NIL`.
    #[inline]
    pub(crate) fn prev(&self, idx: u32) -> u32 {
        self.links[idx as usize].prev
    }

    #[inline]
    fn set_next(&mut self, idx: u32, next: u32) {
        self.links[idx as usize].next = next;
    }

    #[inline]
    fn set_prev(&mut self, idx: u32, prev: u32) {
        self.links[idx as usize].prev = prev;
    }

    /// Links unlinked `idx` at the front of `list`.
    #[inline]
    pub(crate) fn push_front(&mut self, list: &mut List, idx: u32) {
        let old = list.head;
        self.links[idx as usize] = Links {
            prev: NIL,
            next: old,
        };
        if old == NIL {
            list.tail = idx;
        } else {
            self.set_prev(old, idx);
        }
        list.head = idx;
    }

    /// Links unlinked `idx` at the back of `list`.
    #[inline]
    pub(crate) fn push_back(&mut self, list: &mut List, idx: u32) {
        let old = list.tail;
        self.links[idx as usize] = Links {
            prev: old,
            next: NIL,
        };
        if old == NIL {
            list.head = idx;
        } else {
            self.set_next(old, idx);
        }
        list.tail = idx;
    }

    /// Links unlinked `idx` just before `at`, a member of `list`.
    pub(crate) fn insert_before(&mut self, list: &mut List, at: u32, idx: u32) {
        let before = self.prev(at);
        self.links[idx as usize] = Links {
            prev: before,
            next: at,
        };
        self.set_prev(at, idx);
        if before == NIL {
            list.head = idx;
        } else {
            self.set_next(before, idx);
        }
    }

    /// Unlinks member `idx` from `list`.
    #[inline]
    pub(crate) fn unlink(&mut self, list: &mut List, idx: u32) {
        let Links { prev, next } =
            std::mem::replace(&mut self.links[idx as usize], Links::UNLINKED);
        if prev == NIL {
            list.head = next;
        } else {
            self.set_next(prev, next);
        }
        if next == NIL {
            list.tail = prev;
        } else {
            self.set_prev(next, prev);
        }
    }

    /// Moves member `idx` to the front of `list`.
    #[inline]
    pub(crate) fn move_to_front(&mut self, list: &mut List, idx: u32) {
        if list.head != idx {
            self.unlink(list, idx);
            self.push_front(list, idx);
        }
    }
}

/// The two ends of an intrusive list threaded through [`Node::prev`]/[`Node::next`]: `head` is the
/// front, `tail` the back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct List {
    pub(crate) head: u32,
    pub(crate) tail: u32,
}

impl List {
    /// An empty list.
    pub(crate) const EMPTY: Self = Self {
        head: NIL,
        tail: NIL,
    };

    /// Whether the list has no member.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.head == NIL
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(slab: &Slab<u32, ()>, list: &List) -> Vec<u32> {
        let mut out = Vec::new();
        let mut i = list.head;
        while i != NIL {
            out.push(slab.node(i).key);
            i = slab.next(i);
        }
        // The back links agree with the forward ones.
        let mut back = Vec::new();
        let mut i = list.tail;
        while i != NIL {
            back.push(slab.node(i).key);
            i = slab.prev(i);
        }
        back.reverse();
        assert_eq!(out, back);
        out
    }

    #[test]
    fn node_stays_compact() {
        assert_eq!(size_of::<Node<u64, u64>>(), 48);
        // The discriminant lives in the node's niche.
        assert_eq!(size_of::<Slot<u64, u64>>(), 48);
        assert_eq!(
            size_of::<Slot<String, u64>>(),
            size_of::<Node<String, u64>>()
        );
        assert_eq!(size_of::<Links>(), 8);
    }

    #[test]
    fn lists_and_free_slots() {
        let mut slab = Slab::with_capacity(4);
        let mut list = List::EMPTY;
        let ids: Vec<u32> = (0..4)
            .map(|k| slab.insert(Node::new(k, (), NEVER, 1)).ok().expect("room"))
            .collect();
        for &i in &ids {
            slab.push_back(&mut list, i);
        }
        assert_eq!(collect(&slab, &list), [0, 1, 2, 3]);
        slab.move_to_front(&mut list, ids[2]);
        assert_eq!(collect(&slab, &list), [2, 0, 1, 3]);
        slab.unlink(&mut list, ids[3]);
        slab.unlink(&mut list, ids[2]);
        assert_eq!(collect(&slab, &list), [0, 1]);
        slab.insert_before(&mut list, ids[0], ids[3]);
        slab.insert_before(&mut list, ids[1], ids[2]);
        assert_eq!(collect(&slab, &list), [3, 0, 2, 1]);
        for &i in &ids {
            slab.unlink(&mut list, i);
        }
        assert!(list.is_empty());
        assert_eq!(slab.remove(ids[1]).key, 1);
        assert_eq!(slab.len(), 3);
        // The freed slot is reused first.
        assert_eq!(slab.insert(Node::new(9, (), NEVER, 1)).ok(), Some(ids[1]));
        let mut seen = Vec::new();
        slab.drain(|n| seen.push(n.key));
        seen.sort_unstable();
        assert_eq!(seen, [0, 2, 3, 9]);
        assert_eq!(slab.len(), 0);
    }
}
