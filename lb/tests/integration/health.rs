//! Passive outlier detection, recovery, slow start and the panic threshold, on a mock clock.

use std::time::Duration;

use tierkit_lb::{
    Backend, BackendId, Balancer, Context, Error, Health, ManualClock, NoBackend, OutlierDetection,
    PowerOfTwoChoices, RoundRobin, SlowStart, WeightedRoundRobin,
};

fn fail_n(lb: &Balancer<u64, RoundRobin>, target: u64, n: usize) {
    let mut failed = 0;
    while failed < n {
        let l = lb.pick(&Context::new()).unwrap();
        if *l == target {
            l.failure();
            failed += 1;
        } else {
            l.success(Duration::from_millis(1));
        }
    }
}

#[test]
fn consecutive_failures_eject_then_time_brings_it_back() {
    let clock = ManualClock::new();
    let lb = Balancer::builder(RoundRobin::new())
        .backends((0..4u64).map(|i| Backend::new(i, i)))
        .clock(clock.clone())
        .outlier_detection(
            OutlierDetection::new()
                .consecutive_failures(3)
                .base_ejection(Duration::from_secs(10))
                .max_ejection(Duration::from_secs(25))
                .max_ejected_percent(50),
        )
        .build()
        .unwrap();
    // Two failures, then a success: the streak resets, no ejection.
    fail_n(&lb, 2, 2);
    let l = loop {
        let l = lb.pick(&Context::new()).unwrap();
        if *l == 2 {
            break l;
        }
    };
    l.success(Duration::from_millis(1));
    assert_eq!(lb.stats().backends[2].health, Health::Healthy);
    fail_n(&lb, 2, 3);
    let s = lb.stats();
    assert_eq!(s.backends[2].health, Health::Ejected);
    // Published by the failure that ejected it (finding 1: never by a pick).
    assert!(!lb.is_eligible(BackendId(2)));
    assert!(lb.is_eligible(BackendId(1)));
    assert_eq!(s.backends[2].ejections, 1);
    for _ in 0..100 {
        assert_ne!(*lb.pick(&Context::new()).unwrap(), 2);
    }
    // 10 s later a refresh publishes it back.
    clock.advance(Duration::from_secs(10));
    lb.refresh_if_stale(); // time-driven changes: the refresher, or this call
    let back = (0..8).any(|_| *lb.pick(&Context::new()).unwrap() == 2);
    assert!(back);
    assert_eq!(lb.stats().backends[2].health, Health::Healthy);
    // Second ejection lasts twice as long (20 s), the third is capped at 25 s.
    fail_n(&lb, 2, 3);
    clock.advance(Duration::from_secs(19));
    lb.refresh_if_stale(); // time-driven changes: the refresher, or this call
    assert!((0..8).all(|_| *lb.pick(&Context::new()).unwrap() != 2));
    clock.advance(Duration::from_secs(1));
    lb.refresh_if_stale(); // time-driven changes: the refresher, or this call
    assert!((0..8).any(|_| *lb.pick(&Context::new()).unwrap() == 2));
    fail_n(&lb, 2, 3);
    clock.advance(Duration::from_secs(25));
    lb.refresh_if_stale(); // time-driven changes: the refresher, or this call
    assert!((0..8).any(|_| *lb.pick(&Context::new()).unwrap() == 2));
    assert_eq!(lb.stats().backends[2].ejections, 3);
}

#[test]
fn max_ejected_percent_limits_ejections() {
    let lb = Balancer::builder(RoundRobin::new())
        .backends((0..10u64).map(|i| Backend::new(i, i)))
        .clock(ManualClock::new())
        .outlier_detection(
            OutlierDetection::new()
                .consecutive_failures(1)
                .max_ejected_percent(20),
        )
        .build()
        .unwrap();
    for _ in 0..100 {
        lb.pick(&Context::new()).unwrap().failure();
    }
    let ejected = lb
        .stats()
        .backends
        .iter()
        .filter(|b| b.health == Health::Ejected)
        .count();
    assert_eq!(ejected, 2);
}

#[test]
fn panic_threshold_balances_over_all_when_too_few_are_healthy() {
    let lb = Balancer::builder(RoundRobin::new())
        .backends((0..4u64).map(|i| Backend::new(i, i)))
        .panic_threshold(50)
        .build()
        .unwrap();
    lb.set_healthy(BackendId(0), false).unwrap();
    lb.set_healthy(BackendId(1), false).unwrap();
    // 2 of 4 healthy = 50%: not below the threshold, sick ones excluded.
    assert!((0..20).all(|_| *lb.pick(&Context::new()).unwrap() >= 2));
    assert!(!lb.stats().panic_mode);
    lb.set_healthy(BackendId(2), false).unwrap();
    // 1 of 4 healthy: panic, everything serves.
    let seen: std::collections::HashSet<u64> = (0..20)
        .map(|_| *lb.pick(&Context::new()).unwrap())
        .collect();
    assert_eq!(seen.len(), 4);
    assert!(lb.stats().panic_mode);
    // Without a panic threshold: only the healthy one; with none healthy, a clear error.
    let strict = Balancer::builder(RoundRobin::new())
        .backends((0..2u64).map(|i| Backend::new(i, i)))
        .panic_threshold(0)
        .build()
        .unwrap();
    strict.set_healthy(BackendId(0), false).unwrap();
    assert!((0..10).all(|_| *strict.pick(&Context::new()).unwrap() == 1));
    strict.set_healthy(BackendId(1), false).unwrap();
    assert_eq!(
        strict.pick(&Context::new()).unwrap_err(),
        NoBackend::AllUnhealthy
    );
}

#[test]
fn slow_start_ramps_a_new_backend() {
    let clock = ManualClock::new();
    let lb = Balancer::builder(WeightedRoundRobin::new())
        .backends((0..3u64).map(|i| Backend::new(i, i)))
        .clock(clock.clone())
        .slow_start(SlowStart::new(Duration::from_secs(100)).min_percent(10))
        .build()
        .unwrap();
    lb.add(Backend::new(3u64, 3)).unwrap();
    let share = |lb: &Balancer<u64, WeightedRoundRobin>| {
        (0..3_100)
            .filter(|_| *lb.pick(&Context::new()).unwrap() == 3)
            .count() as f64
            / 3_100.0
    };
    let at0 = share(&lb);
    assert!((0.02..0.05).contains(&at0), "start {at0}"); // 0.1 / 3.1
    clock.advance(Duration::from_secs(50));
    lb.refresh_if_stale(); // time-driven changes: the refresher, or this call
    let at50 = share(&lb);
    assert!((0.12..0.2).contains(&at50), "half-way {at50}"); // 0.5 / 3.5
    clock.advance(Duration::from_secs(51));
    lb.refresh_if_stale(); // time-driven changes: the refresher, or this call
    let at100 = share(&lb);
    assert!((0.24..0.26).contains(&at100), "done {at100}");
    assert!((lb.stats().backends[3].effective_weight - 1.0).abs() < 1e-9);
}

#[test]
fn slow_start_aggression_shapes_the_ramp() {
    let clock = ManualClock::new();
    let lb = Balancer::builder(WeightedRoundRobin::new())
        .backends((0..3u64).map(|i| Backend::new(i, i)))
        .clock(clock.clone())
        .slow_start(SlowStart::new(Duration::from_secs(100)).aggression(0.5))
        .build()
        .unwrap();
    lb.add(Backend::new(3u64, 3)).unwrap();
    let weight = |lb: &Balancer<u64, WeightedRoundRobin>| {
        drop(lb.pick(&Context::new()).unwrap());
        lb.stats().backends[3].effective_weight
    };
    assert!((weight(&lb) - 0.1).abs() < 0.011, "the minimum first");
    clock.advance(Duration::from_secs(50));
    lb.refresh_if_stale(); // time-driven changes: the refresher, or this call
    assert!(
        (weight(&lb) - 0.25).abs() < 0.011,
        "quadratic: 0.5^2 half-way"
    );
    clock.advance(Duration::from_secs(40));
    lb.refresh_if_stale(); // time-driven changes: the refresher, or this call
    // 0.9^2 = 0.81, quantized down to the 5% step (finding 1: a ramp publishes at most 20
    // snapshots and keeps the weights' common divisor).
    assert!((weight(&lb) - 0.80).abs() < 1e-9, "0.9^2, quantized");
    clock.advance(Duration::from_secs(11));
    lb.refresh_if_stale(); // time-driven changes: the refresher, or this call
    assert!((weight(&lb) - 1.0).abs() < 1e-9);
    for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        let err = Balancer::builder(WeightedRoundRobin::new())
            .backend(Backend::new(0u64, 0))
            .slow_start(SlowStart::new(Duration::from_secs(1)).aggression(bad))
            .build()
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::InvalidConfig {
                    name: "aggression",
                    ..
                }
            ),
            "{bad}"
        );
    }
}

#[test]
fn recovered_backend_slow_starts_too() {
    let clock = ManualClock::new();
    let lb = Balancer::builder(PowerOfTwoChoices::new())
        .backends((0..2u64).map(|i| Backend::new(i, i)))
        .clock(clock.clone())
        .slow_start(SlowStart::new(Duration::from_secs(10)))
        .build()
        .unwrap();
    assert!(
        (lb.stats().backends[0].effective_weight - 1.0).abs() < 1e-9,
        "initial members don't ramp"
    );
    lb.set_healthy(BackendId(0), false).unwrap();
    lb.set_healthy(BackendId(0), true).unwrap();
    assert!(lb.stats().backends[0].effective_weight < 0.2);
    clock.advance(Duration::from_secs(11));
    lb.refresh_if_stale(); // time-driven changes: the refresher, or this call
    drop(lb.pick(&Context::new()).unwrap());
    assert!((lb.stats().backends[0].effective_weight - 1.0).abs() < 1e-9);
}
