//! The slowest single pick (p100) of every tierkit-lb policy while the pool churns: slow-start
//! ramps, ejections and health flips under way, snapshots republished all the time.
//!
//! ```text
//! cargo run --release --example lb_p100              # 1,000,000 picks per policy
//! cargo run --release --example lb_p100 -- --quick   # 100,000 (CI smoke)
//! chrt -f 50 target/release/examples/lb_p100          # as the README's table: SCHED_FIFO, so
//!                                                     # other processes cannot preempt it
//! ```
//!
//! Per policy: a `Balancer` on the default clock over 100 backends (smooth WRR also over 1000),
//! with outlier detection (3 failures eject for 20 ms, growing), slow start (200 ms windows) and
//! the background refresher on. One thread picks and times each pick alone
//! (`Instant::now()` before and after `Balancer::pick`; the lease is reported or dropped outside
//! the timed region: 1 in 50 is reported failed, which ejects backends on the failure path). A
//! second thread churns the pool meanwhile: every 200 µs it flips a backend's health, and every
//! 2 ms it removes a backend and adds it back (it joins slow-starting). Every such change, and
//! every slow-start step, publishes a new snapshot (O(n) and the policy's `prepare`: a Maglev
//! table, a hash ring, a WRR cycle), none of them on the picking thread.
//!
//! The `timer floor` row times an empty region the same way: its max is what the machine
//! (preemption, interrupts, the other thread on 2 cores) adds to any single measurement. The
//! picking thread sleeps 1 ms every 10,000 picks, outside the timed regions, so that the
//! kernel's throttling of real-time threads (950 ms per second by default) never lands inside
//! a pick when the example runs under SCHED_FIFO.

// Small counts and nanosecond figures for a printed table: the casts cannot truncate.
#![allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tierkit::lb::{
    Backend, BackendId, Balancer, ConsistentHash, Context, LeastConnections, LeastLatency,
    Locality, OutlierDetection, Policy, PowerOfTwoChoices, Random, RoundRobin, SlowStart, Sticky,
    Tier, WeightedLeastConnections, WeightedRandom, WeightedRoundRobin,
};

/// Timed picks between two 1 ms sleeps of the picking thread (a few ms of work at most).
const PAUSE_EVERY: u64 = 10_000;

struct Row {
    name: String,
    n: usize,
    picks: u64,
    p50: u64,
    p99: u64,
    p9999: u64,
    max: u64,
    over_20us: u64,
    publishes: u64,
}

fn quantile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    #[allow(clippy::cast_sign_loss)]
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn summarize(name: String, n: usize, mut times: Vec<u64>, publishes: u64) -> Row {
    let over_20us = times.iter().filter(|&&t| t > 20_000).count() as u64;
    times.sort_unstable();
    Row {
        name,
        n,
        picks: times.len() as u64,
        p50: quantile(&times, 0.5),
        p99: quantile(&times, 0.99),
        p9999: quantile(&times, 0.9999),
        max: times.last().copied().unwrap_or(0),
        over_20us,
        publishes,
    }
}

fn weights(n: usize) -> Vec<u32> {
    // Varied weights 1..=10, deterministic (a SplitMix64 step per backend).
    (0..n as u64)
        .map(|i| {
            let mut z = (i + 7).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            1 + ((z ^ (z >> 31)) % 10) as u32
        })
        .collect()
}

fn run<P: Policy<u64>>(name: &str, policy: P, n: usize, picks: u64) -> Row {
    let w = weights(n);
    let lb = Balancer::builder()
        .policy(policy)
        .backends((0..n as u64).map(|i| {
            Backend::new(i, i)
                .weight(w[i as usize])
                .zone(if i.is_multiple_of(2) { "a" } else { "b" })
        }))
        .outlier_detection(
            OutlierDetection::new()
                .consecutive_failures(3)
                .base_ejection(Duration::from_millis(20))
                .max_ejection(Duration::from_millis(200))
                .max_ejected_percent(20),
        )
        .slow_start(SlowStart::new(Duration::from_millis(200)))
        .panic_threshold(0)
        .build()
        .expect("valid pool");
    let hashes: Vec<u64> = (0..4096u64).map(|k| lb.hash_key(&k)).collect();
    let stop = AtomicBool::new(false);
    let churns = AtomicU64::new(0);
    let version0 = lb.stats().version;
    let mut times = Vec::with_capacity(usize::try_from(picks).unwrap_or(0));
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut k = 0u64;
            let mut next_membership = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                k += 1;
                let id = BackendId(k * 7919 % n as u64);
                let _ = lb.set_healthy(id, k.is_multiple_of(2));
                if Instant::now() >= next_membership {
                    let victim = BackendId((k * 104_729 + 1) % n as u64);
                    if lb.remove(victim).is_ok() {
                        let i = victim.0 as usize;
                        let _ = lb.add(
                            Backend::new(victim, victim.0)
                                .weight(w[i])
                                .zone(if i.is_multiple_of(2) { "a" } else { "b" }),
                        );
                    }
                    next_membership += Duration::from_millis(2);
                }
                churns.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_micros(200));
            }
        });
        for i in 0..picks {
            if i % PAUSE_EVERY == PAUSE_EVERY - 1 {
                // Under SCHED_FIFO the kernel throttles a real-time thread that runs for 950 ms
                // of a second (`sched_rt_runtime_us`): a throttled pick would measure the
                // throttle. A short sleep every few milliseconds keeps the thread under it.
                std::thread::sleep(Duration::from_millis(1));
            }
            let ctx = Context::new().with_hash(hashes[(i & 4095) as usize]);
            let t0 = Instant::now();
            let lease = lb.pick(black_box(&ctx));
            let dt = t0.elapsed();
            times.push(u64::try_from(dt.as_nanos()).unwrap_or(u64::MAX));
            if let Ok(l) = lease {
                if i % 50 == 0 {
                    l.failure();
                } else if i % 3 == 0 {
                    l.success(Duration::from_micros(300 + i % 500));
                }
            }
        }
        stop.store(true, Ordering::Relaxed);
    });
    let publishes = lb.stats().version - version0;
    let _ = churns;
    summarize(name.to_owned(), n, times, publishes)
}

fn timer_floor(picks: u64) -> Row {
    let mut times = Vec::with_capacity(usize::try_from(picks).unwrap_or(0));
    let x = AtomicU64::new(0);
    for i in 0..picks {
        if i % PAUSE_EVERY == PAUSE_EVERY - 1 {
            std::thread::sleep(Duration::from_millis(1));
        }
        let t0 = Instant::now();
        black_box(x.fetch_add(1, Ordering::Relaxed));
        times.push(u64::try_from(t0.elapsed().as_nanos()).unwrap_or(u64::MAX));
    }
    summarize("timer floor (empty region)".to_owned(), 0, times, 0)
}

fn fmt_ns(ns: u64) -> String {
    if ns >= 1_000_000 {
        format!("{:.2} ms", ns as f64 / 1e6)
    } else if ns >= 1_000 {
        format!("{:.1} µs", ns as f64 / 1e3)
    } else {
        format!("{ns} ns")
    }
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let picks: u64 = if quick { 100_000 } else { 1_000_000 };
    println!(
        "tierkit-lb p100: {picks} timed picks per policy during slow-start ramps, ejections and \
         health flips (default clock, background refresher)\n"
    );
    let tier = || Tier::new().zone("a", 70).zone("b", 30);
    let rows = vec![
        timer_floor(picks),
        run("round_robin", RoundRobin::new(), 100, picks),
        run(
            "weighted_round_robin",
            WeightedRoundRobin::new(),
            100,
            picks,
        ),
        run(
            "weighted_round_robin",
            WeightedRoundRobin::new(),
            1000,
            picks,
        ),
        run("random", Random::new(), 100, picks),
        run("weighted_random", WeightedRandom::new(), 100, picks),
        run("least_connections", LeastConnections::new(), 100, picks),
        run(
            "weighted_least_connections",
            WeightedLeastConnections::new(),
            100,
            picks,
        ),
        run("p2c_least_request", PowerOfTwoChoices::new(), 100, picks),
        run("least_latency (default)", LeastLatency::new(), 100, picks),
        run("least_latency (default)", LeastLatency::new(), 1000, picks),
        run("consistent_hash ring", ConsistentHash::ring(), 100, picks),
        run(
            "consistent_hash maglev",
            ConsistentHash::maglev(),
            100,
            picks,
        ),
        run(
            "sticky (p2c)",
            Sticky::new(PowerOfTwoChoices::new()),
            100,
            picks,
        ),
        run(
            "locality (round robin)",
            Locality::new(RoundRobin::new()).tier(tier()),
            100,
            picks,
        ),
    ];
    println!(
        "{:<28} {:>5} {:>9} {:>8} {:>8} {:>9} {:>10} {:>8} {:>10}",
        "policy", "n", "picks", "p50", "p99", "p99.99", "max (p100)", ">20 µs", "publishes"
    );
    for r in &rows {
        println!(
            "{:<28} {:>5} {:>9} {:>8} {:>8} {:>9} {:>10} {:>8} {:>10}",
            r.name,
            r.n,
            r.picks,
            fmt_ns(r.p50),
            fmt_ns(r.p99),
            fmt_ns(r.p9999),
            fmt_ns(r.max),
            r.over_20us,
            r.publishes
        );
    }
}
