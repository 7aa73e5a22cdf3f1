//! The standard scenarios and the situations of the default-policy table.

use std::time::Duration;

use super::{Scenario, Server, ServiceTime};
use crate::{OutlierDetection, SlowStart};

const fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A: 10 equal backends (exponential, 10 ms) at 70% load. Every sensible policy is stable here;
/// the load-aware ones cut the tail by avoiding momentarily long queues.
pub fn equal_pool() -> Scenario {
    Scenario::new("A: equal pool")
        .describe("10 equal backends (exp. 10 ms) at 70% load")
        .servers((0..10).map(|_| Server::exponential(ms(10))))
}

/// B: 8 backends of 10 ms and 2 of 20 ms at 70% of the total capacity (900 req/s offered
/// 630). Blind even splits overload the slow pair (1.4x their capacity).
pub fn mixed_speeds() -> Scenario {
    Scenario::new("B: mixed speeds")
        .describe("8 x 10 ms + 2 x 20 ms at 70% of total capacity")
        .servers((0..8).map(|_| Server::exponential(ms(10))))
        .servers((0..2).map(|i| Server::exponential(ms(20)).name(format!("slow{i}"))))
        .notable(8)
}

/// C: 9 backends of 10 ms and one sick one of 100 ms, at 70% of capacity. The sick backend can
/// take 10 req/s; an even split offers it 63.
pub fn sick_backend() -> Scenario {
    Scenario::new("C: one sick backend")
        .describe("9 x 10 ms + 1 x 100 ms at 70% of capacity")
        .servers((0..9).map(|_| Server::exponential(ms(10))))
        .server(Server::exponential(ms(100)).name("sick"))
        .notable(9)
}

/// D: 10 backends of 10 ms, one of which fails fast (an error after 1 ms), at 70% of the
/// nominal capacity, without outlier detection (the policy alone): an idle-looking backend is
/// a black hole for load-only policies.
pub fn failing_backend() -> Scenario {
    Scenario::new("D: failing backend")
        .describe("10 x 10 ms, one fails fast (error after 1 ms), no outlier detection")
        .servers((0..9).map(|_| Server::exponential(ms(10))))
        .server(
            Server::exponential(ms(10))
                .fails_fast(ms(1))
                .name("failing"),
        )
        .notable(9)
}

/// E: 9 backends of 10 ms at 700 req/s (78% of their capacity); at 10 s a tenth joins cold (10x
/// slower, warming linearly over 10 s). With `slow_start`, the balancer ramps the newcomer's
/// weight over 10 s (from 10%), which weighted and load-aware policies (WRR, P2C, least latency)
/// honour; unweighted ones (round robin, random, least connections) ignore it. The window
/// 10-30 s (the join, the warm-up and its aftermath) is reported separately.
pub fn cold_join(slow_start: bool) -> Scenario {
    let s = Scenario::new(if slow_start {
        "E: cold join, slow start on"
    } else {
        "E: cold join, slow start off"
    })
    .describe("9 x 10 ms at 700 req/s; at 10 s a cold backend joins (10x slower, warms over 10 s)")
    .servers((0..9).map(|_| Server::exponential(ms(10))))
    .server(
        Server::exponential(ms(10))
            .cold(10.0, Duration::from_secs(10))
            .joins_at(Duration::from_secs(10))
            .name("new"),
    )
    // 700 req/s: 70% of the capacity of the full pool of 10.
    .load(0.7 * 10.0 / 9.0)
    .notable(9)
    .window(Duration::from_secs(10), Duration::from_secs(30));
    if slow_start {
        s.slow_start(SlowStart::new(Duration::from_secs(10)))
    } else {
        s
    }
}

/// E with a shaped ramp: [`cold_join`] with slow start on, its weight following
/// `(elapsed / window)^(1 / aggression)` ([`SlowStart::aggression`]) instead of a straight line.
/// An aggression below 1 holds the newcomer back while it is slowest: with 0.25 (quartic) its
/// offered share stays under its warming capacity all the way (a linear ramp overtakes it by
/// the middle of the window).
pub fn cold_join_shaped(aggression: f64) -> Scenario {
    let mut s =
        cold_join(true).slow_start(SlowStart::new(Duration::from_secs(10)).aggression(aggression));
    s.name = format!("E: cold join, slow start aggression {aggression}");
    s
}

/// F: 10 backends of 10 ms at 70% load; one fails fast from 5 s to 10 s, with outlier
/// detection (5 consecutive failures eject for 2 s, then 4 s, ...). The window 15-25 s shows
/// whether the recovered backend gets its share back.
pub fn outage_recovery() -> Scenario {
    Scenario::new("F: outage and recovery")
        .describe(
            "10 x 10 ms; one fails fast from 5 s to 10 s; outlier detection (5 failures, 2 s)",
        )
        .servers((0..9).map(|_| Server::exponential(ms(10))))
        .server(
            Server::exponential(ms(10))
                .fails_during(Duration::from_secs(5), Duration::from_secs(10))
                .name("flaky"),
        )
        .outlier_detection(
            OutlierDetection::new()
                .consecutive_failures(5)
                .base_ejection(Duration::from_secs(2)),
        )
        .notable(9)
        .window(Duration::from_secs(15), Duration::from_secs(25))
}

/// Every standard scenario, in order: A, B, C, D, E without and with slow start (linear, then
/// quartic: aggression 0.25), F.
pub fn standard() -> Vec<Scenario> {
    vec![
        equal_pool(),
        mixed_speeds(),
        sick_backend(),
        failing_backend(),
        cold_join(false),
        cold_join(true),
        cold_join_shaped(0.25),
        outage_recovery(),
    ]
}

// ---------------------------------------------------------------------------------------------
// The situations of the default-policy table (issue 17): the recommended policy must reach a
// p99 within 1.2x of the full-information policy in each, stay stable, and keep errors at or
// under 0.2% with a fast-failing backend.

/// (a) One of four backends 20x slower (3 x 10 ms + 1 x 200 ms) at 70% of the total capacity.
pub fn one_of_four_slow() -> Scenario {
    Scenario::new("(a) one of four slow")
        .describe("3 x 10 ms + 1 x 200 ms at 70% of capacity")
        .servers((0..3).map(|_| Server::exponential(ms(10))))
        .server(Server::exponential(ms(200)).name("slow"))
        .notable(3)
}

/// (b) Two of four backends 20x slower (2 x 10 ms + 2 x 200 ms) at 70%: two random choices
/// both land on a slow one a sixth of the time.
pub fn two_of_four_slow() -> Scenario {
    Scenario::new("(b) two of four slow")
        .describe("2 x 10 ms + 2 x 200 ms at 70% of capacity")
        .servers((0..2).map(|_| Server::exponential(ms(10))))
        .servers((0..2).map(|i| Server::exponential(ms(200)).name(format!("slow{i}"))))
        .notable(2)
}

/// (c) Ten backends with a heavy-tailed mixture of service times (95% of mean 5 ms, 5% of mean
/// 100 ms) at 70%: a long request blocks its backend's queue.
pub fn heavy_tail() -> Scenario {
    let mix = ServiceTime::Mixture {
        common: ms(5),
        rare: ms(100),
        rare_fraction: 0.05,
    };
    Scenario::new("(c) heavy-tailed mixture")
        .describe("10 x (95% exp. 5 ms, 5% exp. 100 ms) at 70%")
        .servers((0..10).map(|_| Server::with_service(mix)))
}

/// (d) Ten backends of 10 ms, one of which flaps: 20x slower every other 2 s.
pub fn flapping() -> Scenario {
    Scenario::new("(d) flapping backend")
        .describe("9 x 10 ms + 1 flapping 10 ms <-> 200 ms every 2 s, at 70%")
        .servers((0..9).map(|_| Server::exponential(ms(10))))
        .server(
            Server::exponential(ms(10))
                .flaps(Duration::from_secs(2), 20.0)
                .name("flappy"),
        )
        .notable(9)
}

/// (g) 1,000 backends: 990 of 10 ms and 10 sick ones of 100 ms, at 70%.
pub fn thousand() -> Scenario {
    Scenario::new("(g) 1,000 backends")
        .describe("990 x 10 ms + 10 x 100 ms at 70%")
        .servers((0..990).map(|_| Server::exponential(ms(10))))
        .servers((0..10).map(|i| Server::exponential(ms(100)).name(format!("sick{i}"))))
}

/// The seven situations (a)-(g), in order: [`one_of_four_slow`], [`two_of_four_slow`],
/// [`heavy_tail`], [`flapping`], (e) [`failing_backend`], (f) [`sick_backend`], [`thousand`].
pub fn situations() -> Vec<Scenario> {
    vec![
        one_of_four_slow(),
        two_of_four_slow(),
        heavy_tail(),
        flapping(),
        failing_backend().rename("(e) fails fast"),
        sick_backend().rename("(f) one sick of ten"),
        thousand(),
    ]
}
