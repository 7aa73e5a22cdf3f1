//! The policy simulator (`tierkit_lb::sim`): determinism and the expected shapes of the standard
//! scenarios, on shorter runs than the `lb_sim` example. Runs are deterministic by seed, so the
//! shapes are asserted exactly as the issue states them.

use std::time::Duration;

use tierkit_lb::sim::{self, Report, Scenario, Server, Weighting};
use tierkit_lb::{
    Error, LeastConnections, LeastLatency, OutlierDetection, PowerOfTwoChoices, RoundRobin,
    WeightedRoundRobin,
};

const REQUESTS: u64 = 40_000;

fn short(s: Scenario) -> Scenario {
    s.requests(REQUESTS).seed(11)
}

fn find<'a>(reports: &'a [Report], policy: &str) -> &'a Report {
    reports
        .iter()
        .find(|r| r.policy == policy)
        .unwrap_or_else(|| panic!("no report for {policy}"))
}

fn share(r: &Report) -> f64 {
    r.notable_backend().unwrap().share
}

#[test]
fn runs_are_deterministic_by_seed() {
    let s = short(sim::sick_backend()).requests(10_000);
    let a = s.run(LeastLatency::new(), Weighting::Equal).unwrap();
    let b = s.run(LeastLatency::new(), Weighting::Equal).unwrap();
    assert_eq!(a, b);
    let c = s
        .clone()
        .seed(12)
        .run(LeastLatency::new(), Weighting::Equal)
        .unwrap();
    assert_ne!(a.p99, c.p99);
    assert_eq!(a.requests, 10_000);
    assert_eq!(a.successes + a.errors, 10_000);
}

#[test]
fn equal_pool_is_stable_under_every_policy() {
    let reports = short(sim::equal_pool()).compare().unwrap();
    let table = sim::table(&reports);
    for r in &reports {
        assert!(!r.unstable, "{r}\n{table}");
        assert_eq!(r.errors, 0, "{table}");
        assert!(r.max_share() < 0.12, "{table}");
        // Throughput equals the offered rate (700/s) within noise.
        assert!((r.throughput - 700.0).abs() < 20.0, "{table}");
    }
    // Knowing the queues beats not knowing them.
    let rr = find(&reports, "round_robin");
    let random = find(&reports, "random");
    let lc = find(&reports, "least_connections");
    assert!(lc.p99 < rr.p99 && rr.p99 < random.p99, "{table}");
}

#[test]
fn mixed_speeds_p2c_p99_is_under_a_third_of_round_robin() {
    let reports = short(sim::mixed_speeds()).compare().unwrap();
    let table = sim::table(&reports);
    let rr = find(&reports, "round_robin");
    let p2c = find(&reports, "p2c_least_request");
    assert!(
        p2c.p99.as_secs_f64() < 0.3 * rr.p99.as_secs_f64(),
        "{table}"
    );
    assert!(rr.unstable && !p2c.unstable, "{table}");
    // Capacity weights fix round robin: the slow pair gets half a fast backend's share.
    let wrr = find(&reports, "weighted_round_robin");
    assert!(!wrr.unstable, "{table}");
    assert!((share(wrr) - 1.0 / 18.0).abs() < 0.002, "{table}");
}

#[test]
fn sick_backend_least_latency_tracks_full_scan_and_blind_policies_melt() {
    let reports = short(sim::sick_backend()).compare().unwrap();
    let table = sim::table(&reports);
    let ll = find(&reports, "least_latency");
    let lc = find(&reports, "least_connections");
    assert!(ll.p99 <= lc.p99 * 2, "{table}");
    for blind in ["round_robin", "random"] {
        let r = find(&reports, blind);
        assert!(r.unstable, "{blind}\n{table}");
        assert!(r.notable_backend().unwrap().utilisation > 5.0, "{table}");
    }
    for aware in ["least_connections", "p2c_least_request", "least_latency"] {
        assert!(!find(&reports, aware).unstable, "{aware}\n{table}");
    }
    // Least latency sends the sick backend less than its 1% fair share of capacity.
    assert!(share(ll) < 0.01, "{table}");
}

#[test]
fn failing_backend_least_latency_sends_it_under_5_percent() {
    let reports = short(sim::failing_backend()).compare().unwrap();
    let table = sim::table(&reports);
    let ll = find(&reports, "least_latency");
    assert!(share(ll) < 0.05, "{table}");
    assert!(ll.errors < REQUESTS / 100, "{table}");
    // Load-only policies see an idle backend and feed it: the black hole.
    let lc = find(&reports, "least_connections");
    let p2c = find(&reports, "p2c_least_request");
    assert!(share(lc) > 0.1 && share(p2c) > 0.1, "{table}");
    assert_eq!(
        find(&reports, "round_robin").errors,
        REQUESTS / 10,
        "{table}"
    );
}

#[test]
fn failing_backend_outlier_detection_ejects_it() {
    let s = short(sim::failing_backend()).outlier_detection(
        OutlierDetection::new()
            .consecutive_failures(3)
            .base_ejection(Duration::from_secs(5)),
    );
    let r = s.run(PowerOfTwoChoices::new(), Weighting::Equal).unwrap();
    let failing = r.notable_backend().unwrap();
    assert!(failing.ejections >= 1, "{r}");
    assert!(failing.share < 0.01, "{r} share {}", failing.share);
}

#[test]
fn slow_start_protects_a_cold_backend() {
    let off = short(sim::cold_join(false)).compare().unwrap();
    let on = short(sim::cold_join(true)).compare().unwrap();
    let tables = format!("{}\n{}", sim::table(&off), sim::table(&on));
    let new_p99 = |r: &[Report], p: &str| find(r, p).notable_backend().unwrap().p99.unwrap();
    // Weighted and load-aware policies honour the ramp ...
    for p in ["p2c_least_request", "weighted_round_robin"] {
        assert!(new_p99(&on, p) * 2 < new_p99(&off, p), "{p}\n{tables}");
    }
    // Least latency protects it either way: it learns the newcomer is slow from its responses.
    for r in [&off, &on] {
        assert!(
            new_p99(r, "least_latency") < Duration::from_millis(200),
            "{tables}"
        );
    }
    // ... unweighted ones ignore it (identical runs).
    for p in ["round_robin", "random", "least_connections"] {
        let (a, b) = (find(&off, p), find(&on, p));
        assert_eq!(
            (a.p50, a.p99, a.p999, &a.backends),
            (b.p50, b.p99, b.p999, &b.backends),
            "{p}"
        );
    }
    // The newcomer joined and took traffic under every policy.
    for r in off.iter().chain(&on) {
        assert!(share(r) > 0.05, "{tables}");
    }
}

/// A quartic ramp (aggression 0.25) keeps smooth WRR's newcomer below its warming capacity,
/// where the linear ramp overtakes it half-way; load-aware policies stay protected.
#[test]
fn shaped_slow_start_protects_the_cold_backend_under_wrr() {
    let linear = short(sim::cold_join(true))
        .run(WeightedRoundRobin::new(), Weighting::Equal)
        .unwrap();
    let shaped = short(sim::cold_join_shaped(0.25))
        .run(WeightedRoundRobin::new(), Weighting::Equal)
        .unwrap();
    let new_p99 = |r: &Report| r.notable_backend().unwrap().p99.unwrap();
    assert!(
        new_p99(&shaped) * 4 < new_p99(&linear),
        "{linear}\n{shaped}"
    );
    assert!(new_p99(&shaped) < Duration::from_millis(500), "{shaped}");
    for r in short(sim::cold_join_shaped(0.25)).compare().unwrap() {
        assert!(share(&r) > 0.03, "{r}");
    }
}

#[test]
fn servers_leave_and_multi_worker_servers_share_by_capacity() {
    let ms = Duration::from_millis;
    let s = Scenario::new("leave")
        .server(Server::exponential(ms(10)).workers(4).name("big"))
        .servers((0..4).map(|_| Server::exponential(ms(10))))
        .server(
            Server::fixed(ms(5))
                .leaves_at(Duration::from_secs(5))
                .name("leaver"),
        )
        .load(0.6)
        .requests(20_000)
        .seed(3);
    let r = s.run(LeastConnections::new(), Weighting::Equal).unwrap();
    assert_eq!(r.successes, 20_000);
    assert!(!r.unstable, "{r}");
    let ratio = |r: &Report| r.backend("big").unwrap().share / r.backend("s1").unwrap().share;
    // Least connections sees the big server drain its queue faster ...
    assert!(ratio(&r) > 1.5, "{}", ratio(&r));
    // ... and capacity weights give it exactly 4 shares to 1.
    let w = s
        .run(WeightedRoundRobin::new(), Weighting::Capacity)
        .unwrap();
    assert!((ratio(&w) - 4.0).abs() < 0.05, "{}", ratio(&w));
    // The leaver served only during its 5 s of the ~17 s run.
    let leaver = r.backend("leaver").unwrap();
    assert!(leaver.picks > 0 && leaver.share < 0.3, "{}", leaver.share);
    assert!(r.duration > Duration::from_secs(10));
}

#[test]
fn invalid_scenarios_are_rejected() {
    let ms = Duration::from_millis;
    let bad = [
        Scenario::new("empty"),
        Scenario::new("late only").server(Server::exponential(ms(10)).joins_at(ms(5))),
        Scenario::new("zero load")
            .server(Server::exponential(ms(10)))
            .load(0.0),
        Scenario::new("nan load")
            .server(Server::exponential(ms(10)))
            .load(f64::NAN),
        Scenario::new("zero service").server(Server::fixed(Duration::ZERO)),
        Scenario::new("no requests")
            .server(Server::exponential(ms(10)))
            .requests(0),
    ];
    for s in bad {
        let e = s.run(RoundRobin::new(), Weighting::Equal).unwrap_err();
        assert!(
            matches!(e, Error::InvalidConfig { .. }),
            "{}: {e}",
            s.name()
        );
    }
}

#[test]
fn outage_recovery_ejects_then_restores_the_backend() {
    let reports = short(sim::outage_recovery()).compare().unwrap();
    let table = sim::table(&reports);
    for p in ["round_robin", "p2c_least_request", "weighted_round_robin"] {
        let flaky = find(&reports, p).notable_backend().unwrap();
        // Ejected (5 failures), back after 2 s, failing again, ejected for 4 s; then healthy.
        assert_eq!(flaky.ejections, 2, "{p}\n{table}");
        assert!(flaky.failures <= 10, "{p}\n{table}");
        let share = flaky.window_share.unwrap();
        assert!((share - 0.1).abs() < 0.01, "{p}: {share}\n{table}");
    }
    // Least latency avoids it after its first failures, before outlier detection needs to act.
    // (How fast it takes it back depends on the seed and the latency scale: see the ignored
    // test below.)
    let ll = find(&reports, "least_latency");
    let flaky = ll.notable_backend().unwrap();
    assert!(flaky.failures < 5 && flaky.ejections == 0, "{table}");
}

/// Least latency with millisecond backends: a backend that failed 4 requests in a 2 s outage
/// keeps its 1 s failure penalty for minutes (hyperbolic decay), so it gets no traffic long
/// after it recovered (0.00% of the requests 6-16 s after the outage; still 0.00% at 200-280 s
/// in a longer run). Round robin and P2C give it 10% again. Reported to the lead; un-ignore
/// when least latency forgets failures faster.
#[test]
fn least_latency_takes_back_a_fast_backend_after_a_short_outage() {
    let us = Duration::from_micros;
    let s = Scenario::new("fast outage")
        .servers((0..9).map(|_| Server::exponential(us(1000))))
        .server(
            Server::exponential(us(1000))
                .fails_during(Duration::from_secs(2), Duration::from_secs(4))
                .name("flaky"),
        )
        .notable(9)
        .window(Duration::from_secs(10), Duration::from_secs(20))
        .requests(200_000)
        .seed(3);
    let r = s.run(LeastLatency::new(), Weighting::Equal).unwrap();
    let share = r.notable_backend().unwrap().window_share.unwrap();
    assert!(share > 0.05, "{r}: flaky share {share}");
}

/// The recommended default (`LeastLatency::new()`) meets the issue-17 bounds in every
/// situation (a)-(g): p99 within 1.2x of the full-information policy, stable, errors <= 0.2%
/// with a fast-failing backend (seeded, so asserted; smaller than the README's run).
#[test]
fn default_policy_meets_the_bounds_in_every_situation() {
    let runs = sim::run_situations(20_000, 1).unwrap();
    println!("{}", sim::situation_table(&runs));
    for run in &runs {
        println!("{}\n{}", run.scenario.name(), sim::table(&run.reports));
    }
    for run in &runs {
        let ratio = sim::p99_ratio(run, 0);
        assert!(
            ratio <= sim::P99_BOUND,
            "{}: default p99 {:.2}x the reference",
            run.scenario.name(),
            ratio
        );
        assert!(
            sim::error_rate(&run.reports[0]) <= sim::ERROR_BOUND
                || !run.scenario.name().starts_with("(e)")
        );
    }
}
