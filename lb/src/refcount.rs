//! The reference counts of one backend's allocation (`shared.rs`): handles ([`Member`](crate::Member)) and
//! leases (`LeaseRef`) are counted by hand in one state word instead of with an `Arc`.
//!
//! # Why
//!
//! A lease must keep its backend alive (it is `'static`, moves between threads, outlives
//! `remove`) and must count one request in flight. With an `Arc` that is two counters and four
//! atomic read-modify-writes per pick and drop (clone, in flight +1, in flight -1, drop), plus
//! one more for the pick counter; an uncontended RMW costs ~5 ns on the machines we measure, which
//! was most of a pick. Here the in-flight count *is* the leases' share of the reference count,
//! and the pick counter rides in the same word: a pick is one `fetch_add`, a lease drop one
//! `fetch_sub`.
//!
//! # The protocol
//!
//! `RefCounts::state` is one `u64`:
//!
//! | bits | field |
//! |---|---|
//! | 0..32 | in flight: leases alive (refused at [`MAX_IN_FLIGHT`], so it never carries out) |
//! | 32 | `OWNED`: at least one handle is alive |
//! | 33 | `DRAINING` |
//! | 34..64 | picks modulo 2^30 (extended to 64 bits by `pick_halves`, see [`RefCounts::picks`]) |
//!
//! - Handles ([`Member`](crate::Member): the membership list, snapshots, `Drain`, `Balancer::members`) are
//!   counted in `handles` exactly like an `Arc`'s strong count; together they own the single
//!   `OWNED` bit, which the drop of the last handle clears.
//! - A lease is created only from a live handle (the pick borrows the snapshot, which holds
//!   handles), so `OWNED` is set while its `fetch_add` runs; it owns one unit of in flight.
//! - The allocation is freed by whichever release takes the pair (in flight, `OWNED`) to (0,
//!   clear): the last lease drop when no handle is left, or the last handle drop when no lease is
//!   left. A handle cannot be made from a lease, so once `handles` reaches zero it stays zero.
//! - Nothing touches the allocation after its own decrement: a lease drop learns from the value
//!   its `fetch_sub` returned whether it was the last lease of a draining backend and then wakes
//!   drain waiters through a process-wide signal (`drain.rs`), not through the member.
//!
//! Orderings follow `std::sync::Arc`: increments are `Relaxed` (the caller already holds a
//! reference), decrements `Release`, and the freeing side issues an `Acquire` fence so every
//! other holder's accesses happen before the free.
//!
//! Checked by the loom models at the end of this file (`--cfg tierkit_loom`), by unit tests
//! (which also run under Miri: `cargo +nightly miri test -p tierkit-lb --lib shared`), and by a
//! multi-thread stress test with membership churn and cross-thread lease drops
//! (`tests/integration/membership.rs`).

use std::fmt;

use crate::sync::{AtomicU64, AtomicUsize, Ordering, fence};

const IN_FLIGHT_MASK: u64 = (1 << 32) - 1;
/// A pick that finds this many leases already alive on its backend is refused
/// ([`NoBackend::Saturated`](crate::NoBackend::Saturated)); only leaked leases
/// (`mem::forget`) get there. Concurrent picks overshoot it by at most one each, far below the
/// 2^32 at which the field would carry into `OWNED`.
pub(crate) const MAX_IN_FLIGHT: u64 = 1 << 31;
const OWNED: u64 = 1 << 32;
const DRAINING: u64 = 1 << 33;
const PICK_SHIFT: u32 = 34;
const PICK: u64 = 1 << PICK_SHIFT;
/// The pick field (30 bits) is extended by counting its half periods (2^29 picks each).
const HALF_BITS: u32 = 64 - PICK_SHIFT - 1;
const HALF_MASK: u64 = (1 << HALF_BITS) - 1;

/// Why a lease was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// [`MAX_IN_FLIGHT`] leases are alive.
    Saturated,
    /// The backend started draining after the picker's snapshot was published: the snapshot
    /// that excludes it is published now (and visible to the caller); pick again.
    Draining,
}

/// What a lease drop must do after its decrement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Released {
    /// Other references remain.
    Alive,
    /// It was the last lease of a draining backend that still has handles: wake drain waiters.
    Drained,
    /// It was the last reference: free the allocation.
    Free,
}

/// The reference counts and the pick counter of one backend (see the module docs).
pub(crate) struct RefCounts {
    state: AtomicU64,
    /// Half periods of the 30-bit pick field completed and recorded.
    pick_halves: AtomicU64,
    /// Live handles; `OWNED` is set while this is above zero.
    handles: AtomicUsize,
}

impl RefCounts {
    /// One handle, no lease, no pick.
    pub(crate) fn new() -> Self {
        Self {
            state: AtomicU64::new(OWNED),
            pick_halves: AtomicU64::new(0),
            handles: AtomicUsize::new(1),
        }
    }

    /// Counts a pick and takes one lease. Refused (nothing taken; the pick stays counted, so it
    /// shows as cancelled) if [`MAX_IN_FLIGHT`] leases are alive or the backend is draining. The
    /// caller holds a handle.
    #[inline]
    pub(crate) fn acquire_lease(&self) -> Result<(), Refused> {
        let old = self.state.fetch_add(PICK | 1, Ordering::Relaxed);
        // `MAX_IN_FLIGHT` is bit 31: in flight never exceeds 2^32 - 1, so the bit tests `>=`.
        if old & (DRAINING | MAX_IN_FLIGHT) != 0 || (old >> PICK_SHIFT) & HALF_MASK == HALF_MASK {
            return self.acquire_lease_slow(old);
        }
        Ok(())
    }

    #[cold]
    fn acquire_lease_slow(&self, old: u64) -> Result<(), Refused> {
        if (old >> PICK_SHIFT) & HALF_MASK == HALF_MASK {
            // This pick crossed a half period of the pick field.
            self.pick_halves.fetch_add(1, Ordering::Release);
        }
        let refused = if old & DRAINING != 0 {
            Refused::Draining
        } else if old & IN_FLIGHT_MASK >= MAX_IN_FLIGHT {
            Refused::Saturated
        } else {
            return Ok(());
        };
        // Give the unit back. The caller holds a handle, so this never frees; it may be the last
        // lease of a draining backend (another picker's refused one), which drain waiters hear.
        if self.release_lease() == Released::Drained {
            crate::drain::signal_drained();
        }
        // Synchronise with `set_draining` (whose value the `fetch_add` read): the snapshot that
        // `drain` published before it is visible to the caller's retry.
        fence(Ordering::Acquire);
        Err(refused)
    }

    /// Ends one lease. The caller must not touch the allocation afterwards except as told.
    #[inline]
    pub(crate) fn release_lease(&self) -> Released {
        let old = self.state.fetch_sub(1, Ordering::Release);
        // Common case: other leases remain, or the last one of an owned, non-draining backend.
        if old & IN_FLIGHT_MASK != 1 || old & (OWNED | DRAINING) == OWNED {
            return Released::Alive;
        }
        if old & OWNED == 0 {
            fence(Ordering::Acquire);
            return Released::Free;
        }
        Released::Drained
    }

    /// Adds a handle (the caller holds one).
    #[inline]
    pub(crate) fn clone_handle(&self) {
        let old = self.handles.fetch_add(1, Ordering::Relaxed);
        // Like `Arc`: only ~2^63 leaked clones get here; continuing could free too early.
        if old > isize::MAX as usize {
            std::process::abort();
        }
    }

    /// Drops a handle; `true` if the caller must free the allocation.
    #[inline]
    pub(crate) fn release_handle(&self) -> bool {
        if self.handles.fetch_sub(1, Ordering::Release) != 1 {
            return false;
        }
        fence(Ordering::Acquire);
        let old = self.state.fetch_sub(OWNED, Ordering::AcqRel);
        old & IN_FLIGHT_MASK == 0
    }

    /// Sets or clears the draining flag; returns the leases alive at that moment. Set it only
    /// after publishing a snapshot without the backend: from then on every lease taken on it is
    /// refused (`Refused::Draining`), so a drain that sees zero in flight stays complete.
    pub(crate) fn set_draining(&self, on: bool) -> u64 {
        let old = if on {
            self.state.fetch_or(DRAINING, Ordering::AcqRel)
        } else {
            self.state.fetch_and(!DRAINING, Ordering::AcqRel)
        };
        old & IN_FLIGHT_MASK
    }

    /// Whether the draining flag is set.
    #[inline]
    pub(crate) fn is_draining(&self) -> bool {
        self.state.load(Ordering::Acquire) & DRAINING != 0
    }

    /// Leases alive.
    #[inline]
    pub(crate) fn in_flight(&self) -> u64 {
        self.state.load(Ordering::Acquire) & IN_FLIGHT_MASK
    }

    /// Picks counted so far (64-bit, wrapping only after 2^64).
    ///
    /// The state word keeps the low 30 bits; every pick that crosses a half period of that field
    /// (2^29 picks) records it in `pick_halves` right after its `fetch_add`. The field's top bit
    /// tells the parity of the half periods it holds, so a reader that loads `pick_halves` first
    /// and finds it one behind (the crossing pick has not recorded it yet) corrects for that.
    /// Exact unless a crossing pick stalls between its two steps for another 2^29 picks of the
    /// same backend.
    pub(crate) fn picks(&self) -> u64 {
        let halves = self.pick_halves.load(Ordering::Acquire);
        let field = self.state.load(Ordering::Relaxed) >> PICK_SHIFT;
        let top = field >> HALF_BITS;
        let halves = if halves & 1 == top {
            halves
        } else {
            halves.wrapping_add(1)
        };
        halves
            .wrapping_shl(HALF_BITS)
            .wrapping_add(field & HALF_MASK)
    }

    #[cfg(all(test, not(tierkit_loom)))]
    fn with_picks(picks: u64) -> Self {
        let s = Self::new();
        s.state.store(
            OWNED | ((picks & (HALF_MASK | 1 << HALF_BITS)) << PICK_SHIFT),
            Ordering::Relaxed,
        );
        s.pick_halves.store(picks >> HALF_BITS, Ordering::Relaxed);
        s
    }
}

impl fmt::Debug for RefCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefCounts")
            .field("in_flight", &self.in_flight())
            .field("draining", &self.is_draining())
            .field("picks", &self.picks())
            .field("handles", &self.handles.load(Ordering::Relaxed))
            .finish()
    }
}

#[cfg(all(test, not(tierkit_loom)))]
mod tests {
    use super::*;

    #[test]
    fn picks_extend_past_the_field() {
        for picks in [
            0,
            1,
            HALF_MASK,
            HALF_MASK + 1,
            (1 << (HALF_BITS + 1)) - 1,
            1 << (HALF_BITS + 1),
            u64::from(u32::MAX) * 7 + 3,
        ] {
            let r = RefCounts::with_picks(picks);
            assert_eq!(r.picks(), picks, "start {picks}");
            // Through the next crossings, one pick at a time near them.
            for k in 1..=3u64 {
                assert!(r.acquire_lease().is_ok());
                assert_eq!(r.picks(), picks + k);
                assert_eq!(r.release_lease(), Released::Alive);
                assert_eq!(r.in_flight(), 0);
            }
        }
        // A crossing pick that has not recorded its half period yet is corrected for.
        let r = RefCounts::with_picks(HALF_MASK);
        r.state.fetch_add(PICK, Ordering::Relaxed);
        assert_eq!(r.picks(), HALF_MASK + 1);
        let r = RefCounts::with_picks((1 << (HALF_BITS + 1)) - 1);
        r.state.fetch_add(PICK, Ordering::Relaxed);
        assert_eq!(r.picks(), 1 << (HALF_BITS + 1));
    }

    #[test]
    fn saturated_backends_refuse_leases() {
        let r = RefCounts::new();
        r.state.fetch_add(MAX_IN_FLIGHT - 1, Ordering::Relaxed);
        assert!(r.acquire_lease().is_ok());
        assert_eq!(r.acquire_lease(), Err(Refused::Saturated));
        assert_eq!(r.in_flight(), MAX_IN_FLIGHT);
        assert_eq!(r.picks(), 2);
        assert_eq!(r.release_lease(), Released::Alive);
    }

    #[test]
    fn the_last_reference_frees_whichever_it_is() {
        // Last lease after the last handle.
        let r = RefCounts::new();
        assert!(r.acquire_lease().is_ok());
        assert!(!r.release_handle());
        assert_eq!(r.release_lease(), Released::Free);
        // Last handle after the last lease.
        let r = RefCounts::new();
        assert!(r.acquire_lease().is_ok());
        assert_eq!(r.release_lease(), Released::Alive);
        assert!(r.release_handle());
        // Draining: new leases are refused; the last lease wakes waiters while a handle lives,
        // frees otherwise.
        let r = RefCounts::new();
        assert!(r.acquire_lease().is_ok());
        assert!(r.acquire_lease().is_ok());
        assert_eq!(r.set_draining(true), 2);
        assert_eq!(r.acquire_lease(), Err(Refused::Draining));
        assert_eq!(r.in_flight(), 2);
        assert_eq!(r.release_lease(), Released::Alive);
        assert!(!r.release_handle());
        assert_eq!(r.release_lease(), Released::Free);
        let r = RefCounts::new();
        assert!(r.acquire_lease().is_ok());
        r.set_draining(true);
        assert_eq!(r.release_lease(), Released::Drained);
        assert_eq!(r.acquire_lease(), Err(Refused::Draining));
        assert_eq!(r.picks(), 2);
        assert!(r.release_handle());
    }
}

/// Model checks with loom: `RUSTFLAGS="--cfg tierkit_loom" cargo test -p tierkit-lb --lib
/// --release loom`.
#[cfg(all(test, tierkit_loom))]
mod loom_tests {
    use super::*;

    use loom::sync::Arc;
    use loom::sync::atomic::AtomicBool;

    /// A lease and the last handle dropped concurrently (with a pick racing them on a third
    /// reference): exactly one side frees, and only after the other is done with the state.
    #[test]
    fn loom_last_lease_and_last_handle_free_once() {
        loom::model(|| {
            let refs = Arc::new(RefCounts::new());
            let freed = Arc::new(AtomicBool::new(false));
            assert!(refs.acquire_lease().is_ok());
            // A second handle, dropped by a thread that first takes and drops a lease.
            refs.clone_handle();
            let (r1, f1) = (refs.clone(), freed.clone());
            let leaser = loom::thread::spawn(move || {
                if r1.release_lease() == Released::Free {
                    assert!(!f1.swap(true, Ordering::Relaxed), "freed twice");
                }
            });
            let (r2, f2) = (refs.clone(), freed.clone());
            let handle = loom::thread::spawn(move || {
                assert!(r2.acquire_lease().is_ok());
                assert!(!f2.load(Ordering::Relaxed), "lease taken after the free");
                if r2.release_lease() == Released::Free {
                    assert!(!f2.swap(true, Ordering::Relaxed), "freed twice");
                }
                if r2.release_handle() {
                    assert!(!f2.swap(true, Ordering::Relaxed), "freed twice");
                }
            });
            if refs.release_handle() {
                assert!(!freed.swap(true, Ordering::Relaxed), "freed twice");
            }
            leaser.join().unwrap();
            handle.join().unwrap();
            assert!(freed.load(Ordering::Relaxed), "never freed");
        });
    }

    /// Draining races the last lease: either the drain sees no lease in flight, or the lease
    /// drop is told to wake the waiters. A waiter is never left without one of the two.
    #[test]
    fn loom_drain_never_misses_the_last_lease() {
        loom::model(|| {
            let refs = Arc::new(RefCounts::new());
            assert!(refs.acquire_lease().is_ok());
            let r1 = refs.clone();
            let lease = loom::thread::spawn(move || r1.release_lease());
            let seen = refs.set_draining(true);
            let released = lease.join().unwrap();
            assert!(seen == 0 || released == Released::Drained);
            assert_eq!(refs.in_flight(), 0);
        });
    }

    /// A pick races `drain`'s flag: a lease it gets was counted by the drain; a lease refused
    /// leaves nothing in flight. So a drain that saw zero stays complete.
    #[test]
    fn loom_pick_racing_drain_is_counted_or_refused() {
        loom::model(|| {
            let refs = Arc::new(RefCounts::new());
            let r1 = refs.clone();
            let picker = loom::thread::spawn(move || r1.acquire_lease());
            let seen = refs.set_draining(true);
            let got = picker.join().unwrap();
            match got {
                Ok(()) => assert_eq!(seen, 1),
                Err(refused) => {
                    assert_eq!(refused, Refused::Draining);
                    assert_eq!(refs.in_flight(), 0);
                }
            }
        });
    }

    /// A pick crossing a half period of the pick field races a stats read: the reader sees the
    /// count from before or after the pick, never 2^29 off.
    #[test]
    fn loom_pick_count_crossing_reads_exact() {
        loom::model(|| {
            let start = HALF_MASK;
            let refs = Arc::new(RefCounts::new());
            refs.state.fetch_add(start << PICK_SHIFT, Ordering::Relaxed);
            let r1 = refs.clone();
            let picker = loom::thread::spawn(move || {
                assert!(r1.acquire_lease().is_ok());
                assert_eq!(r1.release_lease(), Released::Alive);
            });
            let seen = refs.picks();
            assert!(seen == start || seen == start + 1, "read {seen}");
            picker.join().unwrap();
            assert_eq!(refs.picks(), start + 1);
        });
    }
}
