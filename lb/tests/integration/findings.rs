//! Regression tests for the findings of issue 17 (each failed before its fix).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tierkit_lb::{
    Backend, BackendId, Balancer, ConsistentHash, Context, Error, Health, ManualClock,
    OutlierDetection, Random, RoundRobin, SlowStart, Sticky, WeightedRoundRobin,
    release_thread_snapshots,
};
use tierkit_testkit::allocations_by_this_thread;

/// Finding 1: a pick never publishes; a stale snapshot waits for the refresher (here, the
/// explicit `refresh_if_stale`). Before: `pick` ran `publish` (allocation, `prepare`).
#[test]
fn finding1_picks_never_rebuild_the_snapshot() {
    let clock = ManualClock::new();
    let lb = Balancer::builder()
        .policy(WeightedRoundRobin::new())
        .backends((0..4u64).map(|i| Backend::new(i, i)))
        .clock(clock.clone())
        .slow_start(SlowStart::new(Duration::from_secs(20)))
        .background_refresh(false)
        .build()
        .unwrap();
    lb.add(Backend::new(4u64, 4)).unwrap();
    let version = lb.stats().version;
    clock.advance(Duration::from_secs(5));
    let before = allocations_by_this_thread();
    for _ in 0..1000 {
        drop(lb.pick(&Context::new()).unwrap());
    }
    assert_eq!(allocations_by_this_thread() - before, 0, "a pick allocated");
    assert_eq!(lb.stats().version, version, "a pick republished");
    lb.refresh_if_stale();
    assert!(lb.stats().version > version);
}

/// Finding 1: slow-start weights are quantized (5% steps, so a ramp keeps a common divisor)
/// and consistent hashing ignores the ramp (its ring does not grow up to 100x, and keys do not
/// move at every step).
#[test]
fn finding1_slow_start_does_not_reshape_hash_placements() {
    let clock = ManualClock::new();
    let lb = Balancer::builder()
        .policy(ConsistentHash::ring())
        .backends((0..4u64).map(|i| Backend::new(i, i)))
        .clock(clock.clone())
        .slow_start(SlowStart::new(Duration::from_secs(30)))
        .background_refresh(false)
        .build()
        .unwrap();
    lb.add(Backend::new(4u64, 4)).unwrap();
    let hashes: Vec<u64> = (0..2000u64).map(|k| lb.hash_key(&k)).collect();
    let place = |lb: &Balancer<u64, ConsistentHash>| -> Vec<u64> {
        hashes
            .iter()
            .map(|&h| *lb.pick(&Context::new().with_hash(h)).unwrap())
            .collect()
    };
    let at_join = place(&lb);
    for s in [3, 7, 11, 13, 17, 29] {
        clock.advance(Duration::from_secs(s) / 3);
        lb.refresh_if_stale();
        assert_eq!(place(&lb), at_join, "keys moved during the ramp");
    }
    // Effective weights move in 5% steps.
    let wrr = Balancer::builder()
        .policy(WeightedRoundRobin::new())
        .backend(Backend::new(0u64, 0))
        .clock(clock.clone())
        .slow_start(SlowStart::new(Duration::from_secs(7)))
        .background_refresh(false)
        .build()
        .unwrap();
    wrr.add(Backend::new(1u64, 1)).unwrap();
    for _ in 0..30 {
        clock.advance(Duration::from_millis(233));
        wrr.refresh_if_stale();
        let w = wrr.stats().backends[1].effective_weight * 20.0;
        assert!((w - w.round()).abs() < 1e-9, "weight {w}/20 not on a step");
    }
}

/// Finding 2: concurrent failures on many backends never eject more than
/// `max_ejected_percent` (the check-then-act could exceed it), and the count returns to zero.
#[test]
fn finding2_concurrent_failures_respect_max_ejected_percent() {
    for round in 0..20 {
        let lb = Balancer::builder()
            .policy(RoundRobin::new())
            .backends((0..20u64).map(|i| Backend::new(i, i)))
            .clock(ManualClock::new())
            .panic_threshold(0)
            .outlier_detection(
                OutlierDetection::new()
                    .consecutive_failures(1)
                    .max_ejected_percent(10),
            )
            .build()
            .unwrap();
        let done = AtomicBool::new(false);
        let peak = AtomicUsize::new(0);
        std::thread::scope(|s| {
            let pickers: Vec<_> = (0..4)
                .map(|t| {
                    let lb = &lb;
                    s.spawn(move || {
                        for i in 0..400 {
                            if let Ok(l) = lb.pick(&Context::new()) {
                                if (i + t + round) % 3 == 0 {
                                    l.success(Duration::from_millis(1));
                                } else {
                                    l.failure();
                                }
                            }
                        }
                    })
                })
                .collect();
            s.spawn(|| {
                while !done.load(Ordering::Relaxed) {
                    let out = lb
                        .members()
                        .iter()
                        .filter(|m| m.health() == Health::Ejected)
                        .count();
                    peak.fetch_max(out, Ordering::Relaxed);
                    std::thread::yield_now();
                }
            });
            for p in pickers {
                p.join().unwrap();
            }
            done.store(true, Ordering::Relaxed);
        });
        let out = lb
            .members()
            .iter()
            .filter(|m| m.health() == Health::Ejected)
            .count();
        assert!(out <= 2, "round {round}: {out} ejected, at most 2 allowed");
        assert!(peak.load(Ordering::Relaxed) <= 2, "round {round}: peak");
        // Ending every ejection returns every slot: a new one is possible again.
        for i in 0..20u64 {
            lb.set_healthy(BackendId(i), true).unwrap();
        }
        assert!(lb.members().iter().all(|m| m.health() == Health::Healthy));
    }
}

/// Finding 3 (child side): prints this process's first 12 random picks when asked to.
#[test]
fn finding3_print_random_picks() {
    if std::env::var_os("TIERKIT_LB_PRINT_PICKS").is_none() {
        return;
    }
    let lb = Balancer::builder()
        .policy(Random::new())
        .backends((0..100u64).map(|i| Backend::new(i, i)))
        .build()
        .unwrap();
    let picks: Vec<String> = (0..12)
        .map(|_| lb.pick(&Context::new()).unwrap().to_string())
        .collect();
    println!("PICKS {}", picks.join(","));
}

/// Finding 3: two processes pick different random sequences (the thread generator was seeded
/// from a constant, so every process made the same first picks).
#[test]
fn finding3_two_processes_pick_differently() {
    let run = || {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "findings::finding3_print_random_picks",
                "--nocapture",
            ])
            .env("TIERKIT_LB_PRINT_PICKS", "1")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.lines()
            .find_map(|l| l.strip_prefix("PICKS ").map(str::to_owned))
            .unwrap_or_else(|| panic!("child printed no picks: {text}"))
    };
    let (a, b) = (run(), run());
    assert_ne!(a, b, "two processes made the same 12 random picks");
}

/// Finding 4: the sticky table is bounded by its capacity, and binding unseen keys once it is
/// full allocates nothing.
#[test]
fn finding4_sticky_is_bounded_and_allocation_free_for_new_keys() {
    let sticky = Sticky::bounded(RoundRobin::new(), 64, Duration::from_secs(60)).unwrap();
    let lb = Balancer::builder()
        .policy(sticky)
        .backends((0..8u64).map(|i| Backend::new(i, i)))
        .build()
        .unwrap();
    for k in 0..1_000u64 {
        drop(lb.pick(&Context::new().with_hash(lb.hash_key(&k))).unwrap());
    }
    assert!(lb.policy().bound_keys() <= 64);
    let before = allocations_by_this_thread();
    for k in 1_000..11_000u64 {
        drop(lb.pick(&Context::new().with_hash(lb.hash_key(&k))).unwrap());
    }
    assert_eq!(
        allocations_by_this_thread() - before,
        0,
        "new keys allocated"
    );
    assert!(lb.policy().bound_keys() <= 64);
    // Still sticky for a key seen recently.
    let h = lb.hash_key(&10_999u64);
    let first = lb.pick(&Context::new().with_hash(h)).unwrap().id();
    assert!((0..20).all(|_| lb.pick(&Context::new().with_hash(h)).unwrap().id() == first));
    assert!(Sticky::bounded(RoundRobin::new(), 0, Duration::from_secs(1)).is_err());
}

/// Finding 4: a key idle longer than `idle` (by the time of the latest response) is forgotten.
#[test]
fn finding4_sticky_forgets_idle_keys() {
    let clock = ManualClock::new();
    let sticky = Sticky::bounded(RoundRobin::new(), 1024, Duration::from_secs(10)).unwrap();
    let lb = Balancer::builder()
        .policy(sticky)
        .backends((0..4u64).map(|i| Backend::new(i, i)))
        .clock(clock.clone())
        .build()
        .unwrap();
    let h = lb.hash_key("session");
    let first = lb.pick(&Context::new().with_hash(h)).unwrap();
    let bound = first.id();
    first.success(Duration::from_millis(1));
    assert_eq!(lb.policy().binding(h), Some(bound));
    clock.advance(Duration::from_secs(11));
    // A response from another request moves the balancer's notion of "now".
    lb.pick(&Context::new())
        .unwrap()
        .success(Duration::from_millis(1));
    // This thread's round robin went 0, 1: the idle key is placed afresh on 2 (it stayed on 0
    // when keys were never forgotten), and bound there.
    assert_eq!(bound, BackendId(0));
    let again = lb.pick(&Context::new().with_hash(h)).unwrap().id();
    assert_eq!(again, BackendId(2));
    assert_eq!(lb.policy().binding(h), Some(again));
}

struct Tracked(Arc<AtomicUsize>);
impl Drop for Tracked {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Finding 5: a removed backend's value is released after the remove and one pick on each
/// thread that cached it (from any balancer; the background refresher then frees it), and a
/// dropped balancer's at the next pick.
#[test]
fn finding5_removed_backends_are_released() {
    let dropped = Arc::new(AtomicUsize::new(0));
    let lb = Balancer::builder()
        .policy(RoundRobin::new())
        .backend(Backend::new(0u64, Tracked(dropped.clone())))
        .backend(Backend::new(1u64, Tracked(Arc::new(AtomicUsize::new(0)))))
        .build()
        .unwrap();
    let other = Balancer::builder()
        .policy(RoundRobin::new())
        .backend(Backend::new(0u64, 0u64))
        .build()
        .unwrap();
    std::thread::scope(|s| {
        let (to_picker, picker_rx) = std::sync::mpsc::channel::<u8>();
        let (to_main, main_rx) = std::sync::mpsc::channel::<()>();
        let (lb, other) = (&lb, &other);
        s.spawn(move || {
            drop(lb.pick(&Context::new()).unwrap()); // caches the snapshot holding backend 0
            to_main.send(()).unwrap();
            while let Ok(cmd) = picker_rx.recv() {
                match cmd {
                    0 => drop(other.pick(&Context::new()).unwrap()),
                    _ => release_thread_snapshots(),
                }
                to_main.send(()).unwrap();
            }
        });
        main_rx.recv().unwrap();
        lb.remove(BackendId(0)).unwrap();
        // Still cached by the picker thread (and maybe this one).
        release_thread_snapshots();
        to_picker.send(0).unwrap(); // one pick on another balancer
        main_rx.recv().unwrap();
        // No thread caches the old snapshot now; the retired list frees it on the refresher
        // thread (woken by the picker's release) or on this explicit `refresh`, whichever comes
        // first: the two may race, so wait for the drop with a deadline instead of asserting
        // on one instant.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while dropped.load(Ordering::SeqCst) != 1 {
            assert!(
                std::time::Instant::now() < deadline,
                "value kept alive by a thread cache"
            );
            lb.refresh();
            std::thread::yield_now();
        }
        assert_eq!(dropped.load(Ordering::SeqCst), 1);
        drop(to_picker);
    });
    // A dropped balancer's snapshot is released the same way.
    let dropped = Arc::new(AtomicUsize::new(0));
    let lb = Balancer::builder()
        .policy(RoundRobin::new())
        .backend(Backend::new(0u64, Tracked(dropped.clone())))
        .build()
        .unwrap();
    drop(lb.pick(&Context::new()).unwrap());
    drop(lb);
    drop(other.pick(&Context::new()).unwrap());
    assert_eq!(dropped.load(Ordering::SeqCst), 1);
}

/// Finding 6: no silent coercion (a zero failure threshold was turned into 1), the error names
/// the value, and `wait_timeout(Duration::MAX)` does not overflow `Instant`.
#[test]
fn finding6_invalid_values_are_named_and_no_instant_overflow() {
    let err = Balancer::builder()
        .policy(RoundRobin::new())
        .backend(Backend::new(0u64, 0))
        .outlier_detection(OutlierDetection::new().consecutive_failures(0))
        .build()
        .unwrap_err();
    match &err {
        Error::InvalidConfig { name, value, .. } => {
            assert_eq!((*name, value.as_str()), ("consecutive_failures", "0"));
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("consecutive_failures 0"), "{err}");
    for bad in [
        OutlierDetection::new().max_ejected_percent(101),
        OutlierDetection::new().consecutive_failures(0),
    ] {
        assert!(
            Balancer::builder()
                .policy(RoundRobin::new())
                .backend(Backend::new(0u64, 0))
                .outlier_detection(bad)
                .build()
                .is_err()
        );
    }
    assert!(
        Balancer::builder()
            .policy(RoundRobin::new())
            .backend(Backend::new(0u64, 0))
            .slow_start(SlowStart::new(Duration::from_secs(1)).min_percent(0))
            .build()
            .is_err()
    );
    let lb = Balancer::builder()
        .policy(RoundRobin::new())
        .backends((0..2u64).map(|i| Backend::new(i, i)))
        .build()
        .unwrap();
    let drain = lb.drain(BackendId(0)).unwrap();
    assert!(drain.wait_timeout(Duration::MAX));
    let lease = lb.pick(&Context::new()).unwrap();
    let busy = lb.drain(lease.id()).unwrap();
    assert!(!busy.wait_timeout(Duration::ZERO));
    drop(lease);
    assert!(busy.wait_timeout(Duration::MAX));
}
