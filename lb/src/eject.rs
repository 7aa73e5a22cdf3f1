//! The ejection protocol between the threads that report failures (`Lease::failure`), the
//! threads that publish snapshots (mutating calls, the background refresher) and the health
//! checks, on three words: a backend's health byte, its ejection deadline and the balancer's
//! count of ejected backends.
//!
//! - **Slots first.** An ejector reserves one of the `allowed` ejection slots with a
//!   compare-and-swap loop on the count ([`reserve_slot`]), so concurrent failures on many
//!   backends never eject more than `max_ejected_percent` of the pool; a reservation that does
//!   not end in an ejection is returned.
//! - **Deadline before health.** [`eject`] claims the backend with `HEALTHY -> EJECTING` (a
//!   private state readers treat as healthy; only one ejector wins), stores the deadline, then
//!   publishes `EJECTING -> EJECTED` with `Release`. A publisher reads the health with `Acquire`
//!   and the deadline after it ([`read`]), so whenever it sees `EJECTED` it sees this
//!   ejection's deadline, never the previous one (which would end the ejection at once).
//! - **One owner per slot.** Whoever moves the health away from `EJECTED` (the end of the
//!   ejection in a publish, `set_healthy`, a health check, `remove`) returns the slot; a swap or
//!   compare-and-swap decides who, so the count never drifts.
//!
//! Checked by the loom models at the end of this file (`--cfg tierkit_loom`), and by a stress
//! test (`tests/integration/health.rs`) with many threads failing on many backends at once.

use crate::sync::{AtomicU8, AtomicU64, AtomicUsize, Ordering};

/// Serving.
pub(crate) const HEALTH_HEALTHY: u8 = 0;
/// Failing active checks.
pub(crate) const HEALTH_UNHEALTHY: u8 = 1;
/// Ejected by outlier detection until the deadline.
pub(crate) const HEALTH_EJECTED: u8 = 2;
/// Being ejected: claimed by one ejector, deadline not yet stored. Read as healthy.
pub(crate) const HEALTH_EJECTING: u8 = 3;

/// Takes one ejection slot if fewer than `allowed` are taken.
pub(crate) fn reserve_slot(ejected: &AtomicUsize, allowed: usize) -> bool {
    ejected
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < allowed).then_some(n + 1)
        })
        .is_ok()
}

/// Returns a slot.
pub(crate) fn release_slot(ejected: &AtomicUsize) {
    let _ = ejected.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
}

/// Ejects a healthy backend until `deadline` (the caller holds a slot, which it must return if
/// this fails). The deadline is stored before the health says `EJECTED`.
pub(crate) fn eject(health: &AtomicU8, until: &AtomicU64, deadline: u64) -> bool {
    if health
        .compare_exchange(
            HEALTH_HEALTHY,
            HEALTH_EJECTING,
            Ordering::AcqRel,
            Ordering::Relaxed,
        )
        .is_err()
    {
        return false;
    }
    until.store(deadline, Ordering::Relaxed);
    // `Release`: a reader that sees `EJECTED` sees the deadline above.
    health
        .compare_exchange(
            HEALTH_EJECTING,
            HEALTH_EJECTED,
            Ordering::AcqRel,
            Ordering::Relaxed,
        )
        .is_ok()
}

/// The health as a publisher reads it, with the ejection deadline when ejected.
pub(crate) fn read(health: &AtomicU8, until: &AtomicU64) -> (u8, u64) {
    let h = health.load(Ordering::Acquire);
    match h {
        HEALTH_EJECTED => (h, until.load(Ordering::Relaxed)),
        HEALTH_EJECTING => (HEALTH_HEALTHY, 0),
        _ => (h, 0),
    }
}

/// Ends an ejection whose deadline passed: `EJECTED -> HEALTHY`. True if this call did it (the
/// caller returns the slot).
pub(crate) fn end_ejection(health: &AtomicU8) -> bool {
    health
        .compare_exchange(
            HEALTH_EJECTED,
            HEALTH_HEALTHY,
            Ordering::AcqRel,
            Ordering::Relaxed,
        )
        .is_ok()
}

/// Model checks with loom: `RUSTFLAGS="--cfg tierkit_loom" cargo test -p tierkit-lb --lib
/// --release loom_eject`.
#[cfg(all(test, tierkit_loom))]
mod loom_tests {
    use super::*;

    use loom::sync::Arc;

    const NOW: u64 = 10;
    const DEADLINE: u64 = 20;

    /// The finding-2 race: a publish running while a backend is ejected never ends the
    /// ejection early (it sees `EJECTED` only with the new deadline, never the previous
    /// ejection's). With the old order (health first, then the deadline) this fails.
    #[test]
    fn loom_eject_publish_never_cancels_an_ejection() {
        loom::model(|| {
            let health = Arc::new(AtomicU8::new(HEALTH_HEALTHY));
            // The previous ejection's deadline, long past.
            let until = Arc::new(AtomicU64::new(1));
            let ejected = Arc::new(AtomicUsize::new(0));
            let (h, u, e) = (health.clone(), until.clone(), ejected.clone());
            let ejector = loom::thread::spawn(move || {
                assert!(reserve_slot(&e, 1));
                assert!(eject(&h, &u, DEADLINE));
            });
            // A publish at NOW.
            let (seen, deadline) = read(&health, &until);
            let mut ended = false;
            if seen == HEALTH_EJECTED {
                assert_eq!(deadline, DEADLINE, "publish read a stale deadline");
                if NOW >= deadline && end_ejection(&health) {
                    ended = true;
                }
            }
            ejector.join().unwrap();
            assert!(!ended, "ejection cancelled early");
            assert_eq!(health.load(Ordering::Relaxed), HEALTH_EJECTED);
        });
    }

    /// Concurrent failures on two backends with one slot: exactly one is ejected and the count
    /// says one; a racing `set_healthy` returns the slot exactly once.
    #[test]
    fn loom_eject_never_exceeds_max_ejected() {
        loom::model(|| {
            let ejected = Arc::new(AtomicUsize::new(0));
            let backends: Vec<_> = (0..2)
                .map(|_| Arc::new((AtomicU8::new(HEALTH_HEALTHY), AtomicU64::new(0))))
                .collect();
            let handles: Vec<_> = backends
                .iter()
                .map(|b| {
                    let (b, e) = (b.clone(), ejected.clone());
                    loom::thread::spawn(move || {
                        if reserve_slot(&e, 1) && !eject(&b.0, &b.1, DEADLINE) {
                            release_slot(&e);
                        }
                    })
                })
                .collect();
            for h in handles {
                h.join().unwrap();
            }
            let out = backends
                .iter()
                .filter(|b| b.0.load(Ordering::Relaxed) == HEALTH_EJECTED)
                .count();
            assert_eq!(out, 1);
            assert_eq!(ejected.load(Ordering::Relaxed), 1);
        });
    }

    /// An ejection racing a manual `set_healthy(true)` (a swap to healthy that returns the slot
    /// when it replaced `EJECTED`): the slot count matches the final state.
    #[test]
    fn loom_eject_racing_set_healthy_keeps_count() {
        loom::model(|| {
            let ejected = Arc::new(AtomicUsize::new(0));
            let health = Arc::new(AtomicU8::new(HEALTH_HEALTHY));
            let until = Arc::new(AtomicU64::new(0));
            let (e, h, u) = (ejected.clone(), health.clone(), until.clone());
            let ejector = loom::thread::spawn(move || {
                if reserve_slot(&e, 1) && !eject(&h, &u, DEADLINE) {
                    release_slot(&e);
                }
            });
            if health.swap(HEALTH_HEALTHY, Ordering::AcqRel) == HEALTH_EJECTED {
                release_slot(&ejected);
            }
            ejector.join().unwrap();
            let now_ejected = health.load(Ordering::Relaxed) == HEALTH_EJECTED;
            assert_eq!(ejected.load(Ordering::Relaxed), usize::from(now_ejected));
        });
    }
}
