//! The W-TinyLFU policy behind [`TinyLfuCache`](crate::TinyLfuCache): an LRU window, a
//! segmented LRU main space (probation and protected) and a frequency sketch deciding who
//! enters the main space; the hill climber sizes the window.
//!
//! Layout: the window is one slab list; the main space is a second list holding the protected
//! segment at its front and the probation segment behind it, `protected_tail` marking the
//! boundary, so demoting the protected space's least recent entry to the probation space's most
//! recent place moves the boundary, not the entry. A node's `meta` word holds its queue in the
//! low two bits and its key's 30-bit fingerprint above (see [`fingerprint`]).

use std::sync::atomic::Ordering;

use super::climber::Climber;
use super::sketch::{Sketch, fingerprint, mix64};
use crate::engine::Policy;
use crate::slab::{List, NIL, Node, Slab};

/// `meta & QUEUE` of an entry in the window.
const WINDOW: u32 = 0;
/// ... in the main space's probation segment.
const PROBATION: u32 = 1;
/// ... in the main space's protected segment.
const PROTECTED: u32 = 2;
const QUEUE: u32 = 3;

/// A candidate at least this frequent that is not more frequent than the victim is still
/// admitted once in 128 times (Caffeine's `ADMIT_HASHDOS_THRESHOLD`): an attacker who makes a
/// victim look hot cannot keep every newcomer out.
const HASHDOS_THRESHOLD: u8 = 6;
/// Entries moved between spaces per window adjustment at most (Caffeine's
/// `QUEUE_TRANSFER_THRESHOLD`); the rest follows on later adjustments and inserts.
const TRANSFER_LIMIT: usize = 1_000;
/// Hits a shared-lock lookup records in `refs` before they reach the sketch (its counters
/// saturate at 15 anyway).
const MAX_REFS: u8 = 15;
/// Sketch size when nothing is reserved (a cache with a weigher): it grows with the entries.
const MIN_NOMINAL: usize = 64;

/// The policy's state (see the module docs).
pub(crate) struct TinyLfu {
    window: List,
    /// Protected segment (front) then probation segment (back).
    main: List,
    /// The protected segment's last (least recent) entry, or `NIL` when it is empty.
    protected_tail: u32,
    window_weight: u128,
    probation_weight: u128,
    protected_weight: u128,
    window_max: u128,
    protected_max: u128,
    sketch: Sketch,
    climber: Climber,
    /// State of the stream deciding the 1-in-128 admissions.
    rng: u64,
}

#[inline]
fn queue<K, V>(slab: &Slab<K, V>, idx: u32) -> u32 {
    slab.node(idx).meta & QUEUE
}

#[inline]
fn fp<K, V>(slab: &Slab<K, V>, idx: u32) -> u32 {
    slab.node(idx).meta >> 2
}

#[inline]
fn set_queue<K, V>(slab: &mut Slab<K, V>, idx: u32, q: u32) {
    let meta = &mut slab.node_mut(idx).meta;
    *meta = (*meta & !QUEUE) | q;
}

#[inline]
fn weight<K, V>(slab: &Slab<K, V>, idx: u32) -> u128 {
    u128::from(slab.node(idx).weight)
}

/// The list's back entry, or the one before it when the back is `protect`.
#[inline]
fn tail_except<K, V>(slab: &Slab<K, V>, tail: u32, protect: u32) -> u32 {
    if tail != NIL && tail == protect {
        slab.prev(tail)
    } else {
        tail
    }
}

impl TinyLfu {
    /// The window and protected targets for `capacity`: window 1% (at least 1), protected 80%
    /// of the rest, as Caffeine starts.
    fn targets(capacity: u128) -> (u128, u128) {
        let window = capacity - capacity * 99 / 100;
        let main = capacity - window;
        (window, main * 80 / 100)
    }

    /// Hits recorded under a shared lock since the entry was last handled exclusively: they
    /// reach the sketch and the climber now. Returns how many there were.
    fn flush<K, V>(&mut self, slab: &mut Slab<K, V>, idx: u32) -> u8 {
        let refs = std::mem::take(slab.node_mut(idx).refs.get_mut());
        if refs != 0 {
            self.sketch.increment(fp(slab, idx), u32::from(refs));
            self.climber.hit(u64::from(refs));
        }
        refs
    }

    fn push_window<K, V>(&mut self, slab: &mut Slab<K, V>, idx: u32) {
        set_queue(slab, idx, WINDOW);
        slab.push_front(&mut self.window, idx);
        self.window_weight += weight(slab, idx);
    }

    fn push_protected<K, V>(&mut self, slab: &mut Slab<K, V>, idx: u32) {
        set_queue(slab, idx, PROTECTED);
        slab.push_front(&mut self.main, idx);
        if self.protected_tail == NIL {
            self.protected_tail = idx;
        }
        self.protected_weight += weight(slab, idx);
    }

    /// Links `idx` as the probation segment's most recent entry (just behind the protected one).
    fn push_probation<K, V>(&mut self, slab: &mut Slab<K, V>, idx: u32) {
        set_queue(slab, idx, PROBATION);
        let after = if self.protected_tail == NIL {
            self.main.head
        } else {
            slab.next(self.protected_tail)
        };
        if after == NIL {
            slab.push_back(&mut self.main, idx);
        } else {
            slab.insert_before(&mut self.main, after, idx);
        }
        self.probation_weight += weight(slab, idx);
    }

    /// Unlinks `idx` from whichever queue holds it.
    fn unlink<K, V>(&mut self, slab: &mut Slab<K, V>, idx: u32) {
        let w = weight(slab, idx);
        match queue(slab, idx) {
            WINDOW => {
                slab.unlink(&mut self.window, idx);
                self.window_weight -= w;
            }
            PROTECTED => {
                if self.protected_tail == idx {
                    // The protected segment is the list's front run: its previous entry (if any)
                    // is protected too.
                    self.protected_tail = slab.prev(idx);
                }
                slab.unlink(&mut self.main, idx);
                self.protected_weight -= w;
            }
            _ => {
                slab.unlink(&mut self.main, idx);
                self.probation_weight -= w;
            }
        }
    }

    /// Demotes the protected segment's least recent entries to probation while it is over its
    /// target (at most `limit` of them): the boundary moves, the entries stay in place.
    fn demote<K, V>(&mut self, slab: &mut Slab<K, V>, limit: usize) {
        let mut moved = 0;
        while self.protected_weight > self.protected_max
            && self.protected_tail != NIL
            && moved < limit
        {
            let t = self.protected_tail;
            self.protected_tail = slab.prev(t);
            set_queue(slab, t, PROBATION);
            let w = weight(slab, t);
            self.protected_weight -= w;
            self.probation_weight += w;
            moved += 1;
        }
    }

    /// A hit (or a value replacement) on `idx`: the window's LRU order, or promotion to (or the
    /// front of) the protected segment.
    fn reorder<K, V>(&mut self, slab: &mut Slab<K, V>, idx: u32) {
        match queue(slab, idx) {
            WINDOW => slab.move_to_front(&mut self.window, idx),
            PROBATION => {
                self.unlink(slab, idx);
                self.push_protected(slab, idx);
                self.demote(slab, TRANSFER_LIMIT);
            }
            _ => {
                if self.main.head != idx {
                    self.unlink(slab, idx);
                    self.push_protected(slab, idx);
                }
            }
        }
    }

    /// Moves the window's least recent entries to probation while the window is over its target
    /// (at most `limit`), never `keep`.
    fn shrink_window<K, V>(&mut self, slab: &mut Slab<K, V>, keep: u32, limit: usize) {
        let mut moved = 0;
        while self.window_weight > self.window_max && moved < limit {
            let t = self.window.tail;
            if t == NIL || t == keep {
                break;
            }
            self.unlink(slab, t);
            self.push_probation(slab, t);
            moved += 1;
        }
    }

    /// Whether the window's candidate (fingerprint `candidate`) should replace the main space's
    /// victim: TinyLFU's admission test.
    fn admit(&mut self, candidate: u32, victim: u32) -> bool {
        let c = self.sketch.frequency(candidate);
        let v = self.sketch.frequency(victim);
        if c > v {
            return true;
        }
        if c < HASHDOS_THRESHOLD {
            return false;
        }
        // Unpredictable to whoever chooses keys as long as the hasher is keyed (the default),
        // since the candidate's fingerprint comes from its keyed hash; repeatable otherwise.
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix64(self.rng ^ u64::from(candidate)) & 127 == 0
    }

    /// Runs the hill climber once a sample is complete, resizing the window.
    fn climb<K, V>(&mut self, slab: &mut Slab<K, V>) {
        let entries = u64::try_from(self.sketch.nominal()).unwrap_or(u64::MAX);
        let Some(adjustment) = self.climber.adjustment(entries, self.sketch.period()) else {
            return;
        };
        if adjustment.forget {
            self.sketch.clear();
        }
        let amount = if adjustment.recency {
            // The whole protected segment goes to the window (its transfer limit still applies).
            i128::try_from(self.protected_max).unwrap_or(i128::MAX)
        } else {
            adjustment.window
        };
        if amount > 0 {
            let quota = amount.unsigned_abs().min(self.protected_max);
            self.protected_max -= quota;
            self.window_max += quota;
            self.demote(slab, TRANSFER_LIMIT);
            // Fill the larger window from the main space's least recent entries.
            let mut moved = 0;
            while moved < TRANSFER_LIMIT {
                let t = self.main.tail;
                if t == NIL || self.window_weight + weight(slab, t) > self.window_max {
                    break;
                }
                self.unlink(slab, t);
                self.push_window(slab, t);
                moved += 1;
            }
        } else if amount < 0 {
            let quota = amount.unsigned_abs().min(self.window_max.saturating_sub(1));
            self.window_max -= quota;
            self.protected_max += quota;
            self.shrink_window(slab, NIL, TRANSFER_LIMIT);
        }
    }
}

impl Policy for TinyLfu {
    fn new(capacity: u64, prealloc: usize) -> Self {
        let (window_max, protected_max) = Self::targets(u128::from(capacity));
        let nominal = if prealloc == 0 { MIN_NOMINAL } else { prealloc };
        Self {
            window: List::EMPTY,
            main: List::EMPTY,
            protected_tail: NIL,
            window_weight: 0,
            probation_weight: 0,
            protected_weight: 0,
            window_max,
            protected_max,
            sketch: Sketch::new(nominal),
            climber: Climber::new(capacity),
            rng: 0,
        }
    }

    fn on_insert<K, V>(&mut self, slab: &mut Slab<K, V>, idx: u32, hash: u64) {
        let fp = fingerprint(hash);
        slab.node_mut(idx).meta = fp << 2;
        self.sketch.ensure_capacity(slab.len());
        let unseen = self.sketch.increment_unseen(fp);
        self.climber.miss(unseen);
        self.push_window(slab, idx);
        self.shrink_window(slab, idx, TRANSFER_LIMIT);
        self.climb(slab);
    }

    #[inline]
    fn on_access<K, V>(&mut self, slab: &mut Slab<K, V>, idx: u32) {
        self.flush(slab, idx);
        self.sketch.increment(fp(slab, idx), 1);
        self.climber.hit(1);
        self.reorder(slab, idx);
        self.climb(slab);
    }

    /// A hit under a shared lock counts in the node's `refs` (a relaxed load and store, saturating
    /// at 15); the next exclusive look at the entry (an eviction scan, a replacement, its
    /// removal) hands the counts to the sketch and moves it as its hits would have.
    #[inline]
    fn on_shared_access<K, V>(&self, node: &Node<K, V>) -> bool {
        let refs = node.refs.load(Ordering::Relaxed);
        if refs < MAX_REFS {
            node.refs.store(refs + 1, Ordering::Relaxed);
        }
        true
    }

    fn on_replace<K, V>(&mut self, slab: &mut Slab<K, V>, idx: u32, old_weight: u64) {
        let (new, old) = (weight(slab, idx), u128::from(old_weight));
        let total = match queue(slab, idx) {
            WINDOW => &mut self.window_weight,
            PROBATION => &mut self.probation_weight,
            _ => &mut self.protected_weight,
        };
        *total = *total - old + new;
        self.on_access(slab, idx);
    }

    fn on_remove<K, V>(&mut self, slab: &mut Slab<K, V>, idx: u32, _evicted: bool, _hash: u64) {
        self.flush(slab, idx);
        self.unlink(slab, idx);
    }

    fn victim<K, V>(&mut self, slab: &mut Slab<K, V>, protect: u32) -> Option<u32> {
        loop {
            // Entries hit under a shared lock get the move their hits earned, then a new look.
            let candidate = tail_except(slab, self.window.tail, protect);
            if candidate != NIL && self.flush(slab, candidate) != 0 {
                slab.move_to_front(&mut self.window, candidate);
                continue;
            }
            let mut victim = tail_except(slab, self.main.tail, protect);
            if victim != NIL && queue(slab, victim) != PROBATION {
                victim = tail_except(slab, self.protected_tail, protect);
            }
            if victim != NIL && self.flush(slab, victim) != 0 {
                self.reorder(slab, victim);
                continue;
            }
            return match (candidate, victim) {
                (NIL, NIL) => None,
                (c, NIL) => Some(c),
                (NIL, v) => Some(v),
                (c, v) => {
                    if self.admit(fp(slab, c), fp(slab, v)) {
                        // The candidate wins its place in the main space; a full window hands it
                        // over now (as the incoming entry would push it out).
                        if self.window_weight >= self.window_max {
                            self.unlink(slab, c);
                            self.push_probation(slab, c);
                        }
                        Some(v)
                    } else {
                        Some(c)
                    }
                }
            };
        }
    }

    fn clear(&mut self) {
        self.window = List::EMPTY;
        self.main = List::EMPTY;
        self.protected_tail = NIL;
        self.window_weight = 0;
        self.probation_weight = 0;
        self.protected_weight = 0;
    }

    fn iter_start(&self) -> (u32, u32) {
        if self.main.is_empty() {
            (self.window.head, NIL)
        } else {
            (self.main.head, self.window.head)
        }
    }
}
