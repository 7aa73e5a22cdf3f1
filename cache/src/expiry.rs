//! The expiry queue: a hierarchical timer wheel with nanosecond resolution, threaded through the
//! slab's timer links, so scheduling and cancelling a deadline is O(1) and allocates nothing.
//!
//! Eleven levels of 64 slots cover the whole `u64` nanosecond range (level `L` slots span
//! `64^L` ns). An entry sits at the level of the highest bit in which its deadline differs from
//! the wheel's current time, in the slot given by its deadline's bits at that level. Advancing
//! the wheel visits the lowest non-empty level's first occupied slot (found with a bitmap): a
//! level-0 slot holds entries due at exactly that nanosecond, a higher slot is *cascaded* (its
//! entries re-filed at lower levels). An entry cascades at most ten times over its life, so
//! draining expired entries is amortised O(1) per entry and exact to the nanosecond: after
//! [`Wheel::pop_expired`] returns `None`, no scheduled entry has `deadline <= now`.

use crate::slab::{NEVER, NIL, Slab};

/// `tslot` of an entry that is not in the wheel.
pub(crate) const NO_SLOT: u16 = u16::MAX;

const SLOT_BITS: u32 = 6;
const SLOTS: usize = 1 << SLOT_BITS;
const LEVELS: usize = 11;

/// Deadlines of live entries, for proactive expiry.
pub(crate) struct Wheel {
    /// List heads, `LEVELS * SLOTS`, allocated when the first deadline is scheduled.
    heads: Vec<u32>,
    /// Per level, bit `s` is set when slot `s` is non-empty.
    occupied: [u64; LEVELS],
    /// The wheel's current time: every scheduled deadline was after it when filed.
    elapsed: u64,
    /// No scheduled deadline is before this (a lower bound, [`NEVER`] when nothing is
    /// scheduled), so a write that finds `now` below it skips the wheel entirely.
    horizon: u64,
    /// Scheduled entries.
    len: usize,
}

impl Wheel {
    pub(crate) fn new() -> Self {
        Self {
            heads: Vec::new(),
            occupied: [0; LEVELS],
            elapsed: 0,
            horizon: NEVER,
            len: 0,
        }
    }

    /// Scheduled entries.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether no entry is scheduled.
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Files `idx` (unscheduled, with a finite deadline) under its deadline.
    #[inline]
    pub(crate) fn schedule<K, V>(&mut self, slab: &mut Slab<K, V>, idx: u32) {
        debug_assert_ne!(slab.node(idx).deadline, NEVER);
        if self.heads.is_empty() {
            self.heads = vec![NIL; LEVELS * SLOTS];
        }
        self.len += 1;
        self.horizon = self.horizon.min(slab.node(idx).deadline);
        self.file(slab, idx);
    }

    /// Removes `idx` from the wheel if it is scheduled.
    #[inline]
    pub(crate) fn unschedule<K, V>(&mut self, slab: &mut Slab<K, V>, idx: u32) {
        let (slot, prev, next) = {
            let n = slab.node_mut(idx);
            let links = (n.tslot, n.tprev, n.tnext);
            n.tslot = NO_SLOT;
            n.tprev = NIL;
            n.tnext = NIL;
            links
        };
        if slot == NO_SLOT {
            return;
        }
        self.len -= 1;
        let slot = usize::from(slot);
        if prev == NIL {
            self.heads[slot] = next;
        } else {
            slab.node_mut(prev).tnext = next;
        }
        if next != NIL {
            slab.node_mut(next).tprev = prev;
        }
        if self.heads[slot] == NIL {
            self.occupied[slot / SLOTS] &= !(1u64 << (slot % SLOTS));
        }
    }

    /// Unschedules and returns one entry with `deadline <= now`, or `None` once there is none.
    #[inline]
    pub(crate) fn pop_expired<K, V>(&mut self, slab: &mut Slab<K, V>, now: u64) -> Option<u32> {
        if now < self.horizon {
            return None;
        }
        self.advance(slab, now)
    }

    /// [`pop_expired`](Self::pop_expired) past the horizon check: moves the wheel's time towards
    /// `now`, cascading, and pops one due entry; on `None` the horizon becomes the start of the
    /// earliest occupied slot (every deadline filed there is at or after it).
    fn advance<K, V>(&mut self, slab: &mut Slab<K, V>, now: u64) -> Option<u32> {
        loop {
            let Some((level, slot)) = self.next_occupied() else {
                self.elapsed = self.elapsed.max(now);
                self.horizon = NEVER;
                return None;
            };
            let start = slot_start(self.elapsed, level, slot);
            if start > now {
                self.elapsed = self.elapsed.max(now);
                self.horizon = start;
                return None;
            }
            self.elapsed = self.elapsed.max(start);
            let id = level * SLOTS + slot;
            if level == 0 {
                let idx = self.heads[id];
                self.unschedule(slab, idx);
                return Some(idx);
            }
            // Cascade: re-file the slot's entries relative to the new time.
            let mut idx = self.heads[id];
            self.heads[id] = NIL;
            self.occupied[level] &= !(1u64 << slot);
            while idx != NIL {
                let next = slab.node(idx).tnext;
                self.file(slab, idx);
                idx = next;
            }
        }
    }

    /// Forgets every entry (the caller discards the nodes).
    pub(crate) fn clear(&mut self) {
        self.heads.fill(NIL);
        self.occupied = [0; LEVELS];
        self.horizon = NEVER;
        self.len = 0;
    }

    fn next_occupied(&self) -> Option<(usize, usize)> {
        if self.len == 0 {
            return None;
        }
        self.occupied
            .iter()
            .enumerate()
            .find(|(_, bits)| **bits != 0)
            .map(|(level, bits)| (level, bits.trailing_zeros() as usize))
    }

    /// Links `idx` at the front of the slot its deadline belongs to now.
    #[inline]
    fn file<K, V>(&mut self, slab: &mut Slab<K, V>, idx: u32) {
        let deadline = slab.node(idx).deadline;
        let (level, slot) = if deadline <= self.elapsed {
            // Already due (only while cascading): the current level-0 slot pops it next.
            (0, low_bits(self.elapsed, 0))
        } else {
            let masked = (self.elapsed ^ deadline) | (SLOTS as u64 - 1);
            let significant = 63 - masked.leading_zeros();
            let level = (significant / SLOT_BITS) as usize;
            (level, low_bits(deadline, level))
        };
        let id = level * SLOTS + slot;
        let old = self.heads[id];
        {
            let n = slab.node_mut(idx);
            n.tprev = NIL;
            n.tnext = old;
            n.tslot = u16::try_from(id).unwrap_or(NO_SLOT);
        }
        if old != NIL {
            slab.node_mut(old).tprev = idx;
        }
        self.heads[id] = idx;
        self.occupied[level] |= 1u64 << slot;
    }
}

/// The slot index of `time` at `level`.
fn low_bits(time: u64, level: usize) -> usize {
    let shift = SLOT_BITS as usize * level;
    usize::try_from((time >> shift) & (SLOTS as u64 - 1)).unwrap_or(0)
}

/// The first nanosecond of `slot` at `level`, given the wheel's time `elapsed` (whose bits above
/// the level are shared by every deadline filed there).
fn slot_start(elapsed: u64, level: usize, slot: usize) -> u64 {
    let shift = SLOT_BITS as usize * level;
    let span_bits = shift + SLOT_BITS as usize;
    let upper = if span_bits >= 64 {
        0
    } else {
        elapsed & !((1u64 << span_bits) - 1)
    };
    upper | ((slot as u64) << shift)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slab::Node;

    /// A tiny deterministic generator (xorshift) so the test needs no dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    #[test]
    fn pops_exactly_the_due_entries() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let mut slab: Slab<u64, ()> = Slab::with_capacity(0);
        let mut wheel = Wheel::new();
        let mut now = 0u64;
        let mut live: Vec<(u32, u64)> = Vec::new();
        for round in 0..3000 {
            // Schedule a few deadlines at assorted distances (ns to years).
            for _ in 0..3 {
                let scale = rng.next() % 60;
                let dist = 1 + rng.next() % (1u64 << scale).max(1);
                let deadline = now.saturating_add(dist).min(NEVER - 1);
                let idx = slab
                    .insert(Node::new(round, (), deadline, 1))
                    .ok()
                    .expect("room");
                wheel.schedule(&mut slab, idx);
                live.push((idx, deadline));
            }
            // Cancel one now and then.
            if rng.next().is_multiple_of(4) && !live.is_empty() {
                let pos = usize::try_from(rng.next() % live.len() as u64).expect("small");
                let (idx, _) = live.swap_remove(pos);
                wheel.unschedule(&mut slab, idx);
                slab.remove(idx);
            }
            now = now
                .saturating_add(rng.next() % (1u64 << (rng.next() % 40)))
                .min(NEVER - 1);
            let mut popped = Vec::new();
            while let Some(idx) = wheel.pop_expired(&mut slab, now) {
                assert!(slab.node(idx).deadline <= now);
                assert_eq!(slab.node(idx).tslot, NO_SLOT);
                popped.push(idx);
                slab.remove(idx);
            }
            let mut due: Vec<u32> = live
                .iter()
                .filter(|(_, d)| *d <= now)
                .map(|(i, _)| *i)
                .collect();
            live.retain(|(_, d)| *d > now);
            popped.sort_unstable();
            due.sort_unstable();
            assert_eq!(popped, due, "round {round} at {now}");
            assert_eq!(wheel.len(), live.len());
        }
    }
}
