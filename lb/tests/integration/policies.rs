//! Distribution of every policy.

use std::collections::HashMap;

use proptest::prelude::*;
use tierkit_lb::{
    Backend, BackendId, Balancer, ConsistentHash, Context, LeastConnections, LeastLatency,
    Locality, NoBackend, Policy, PowerOfTwoChoices, Random, RoundRobin, Sticky, Tier,
    WeightedLeastConnections, WeightedRandom, WeightedRoundRobin, seed_thread_rng,
};

fn pool<P: Policy<u64>>(policy: P, weights: &[u32]) -> Balancer<u64, P> {
    Balancer::builder(policy)
        .backends(
            weights
                .iter()
                .enumerate()
                .map(|(i, &w)| Backend::new(i as u64, i as u64).weight(w)),
        )
        .build()
        .unwrap()
}

/// Picks `n` times, dropping each lease at once; returns picks per backend value.
fn counts<P: Policy<u64>>(lb: &Balancer<u64, P>, n: usize) -> HashMap<u64, usize> {
    let mut m = HashMap::new();
    for _ in 0..n {
        *m.entry(*lb.pick(&Context::new()).unwrap()).or_default() += 1;
    }
    m
}

/// Asserts each backend's share is within `tol` (relative) of its weight's share.
fn assert_weighted(counts: &HashMap<u64, usize>, weights: &[u32], tol: f64) {
    let total: usize = counts.values().sum();
    let wsum: u32 = weights.iter().sum();
    for (i, &w) in weights.iter().enumerate() {
        let expect = total as f64 * f64::from(w) / f64::from(wsum);
        let got = counts.get(&(i as u64)).copied().unwrap_or(0) as f64;
        assert!(
            (got - expect).abs() <= expect * tol,
            "backend {i}: got {got}, expected {expect:.0} ±{tol}"
        );
    }
}

#[test]
fn round_robin_is_exact() {
    let lb = pool(RoundRobin::new(), &[1; 7]);
    let c = counts(&lb, 7_000);
    assert!(c.values().all(|&v| v == 1_000), "{c:?}");
}

/// Each thread walks the rotation with its own cursor: every thread's picks are exact round
/// robin, threads start at different positions, and over all threads every backend's count is
/// within the number of threads of the others.
#[test]
fn round_robin_rotates_per_thread() {
    const THREADS: usize = 4;
    let lb = pool(RoundRobin::new(), &[1; 7]);
    let seqs: Vec<Vec<u64>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|_| {
                s.spawn(|| {
                    (0..1_000)
                        .map(|_| *lb.pick(&Context::new()).unwrap())
                        .collect::<Vec<u64>>()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut total: HashMap<u64, usize> = HashMap::new();
    for seq in &seqs {
        for w in seq.windows(2) {
            assert_eq!(w[1], (w[0] + 1) % 7, "{seq:?}");
        }
        for &v in seq {
            *total.entry(v).or_default() += 1;
        }
    }
    let mut starts: Vec<u64> = seqs.iter().map(|s| s[0]).collect();
    starts.sort_unstable();
    starts.dedup();
    assert_eq!(starts.len(), THREADS, "threads start apart");
    let (min, max) = (total.values().min().unwrap(), total.values().max().unwrap());
    assert!(max - min <= THREADS, "{total:?}");
}

/// Smooth WRR's guarantees hold for each thread's picks when several threads share a balancer.
#[test]
fn smooth_wrr_is_smooth_per_thread() {
    let weights = [5, 1, 1, 3, 2];
    let lb = pool(WeightedRoundRobin::new(), &weights);
    let cycle: usize = weights.iter().map(|&w| w as usize).sum();
    std::thread::scope(|s| {
        for _ in 0..3 {
            s.spawn(|| {
                let seq: Vec<u64> = (0..cycle * 20)
                    .map(|_| *lb.pick(&Context::new()).unwrap())
                    .collect();
                for window in seq.chunks(cycle) {
                    for (i, &w) in weights.iter().enumerate() {
                        let got = window.iter().filter(|&&v| v == i as u64).count();
                        assert_eq!(got, w as usize, "share of {i} in {window:?}");
                    }
                }
                for (v, run) in longest_cyclic_run(&seq[..cycle]) {
                    assert!(
                        run as u32 <= weights[v as usize],
                        "backend {v} ran {run} times"
                    );
                }
            });
        }
    });
}

#[test]
fn random_is_uniform_within_tolerance() {
    seed_thread_rng(1);
    let lb = pool(Random::new(), &[1; 10]);
    assert_weighted(&counts(&lb, 10_000), &[1; 10], 0.15);
}

#[test]
fn weighted_policies_honour_weights_over_10k_picks() {
    seed_thread_rng(2);
    let weights = [1, 2, 3, 4, 10];
    assert_weighted(
        &counts(&pool(WeightedRoundRobin::new(), &weights), 10_000),
        &weights,
        0.01,
    );
    assert_weighted(
        &counts(&pool(WeightedRandom::new(), &weights), 10_000),
        &weights,
        0.15,
    );
}

#[test]
fn least_connections_fills_the_least_loaded() {
    let lb = pool(LeastConnections::new(), &[1; 4]);
    let held: Vec<_> = (0..8).map(|_| lb.pick(&Context::new()).unwrap()).collect();
    let mut per: HashMap<u64, usize> = HashMap::new();
    for l in &held {
        *per.entry(**l).or_default() += 1;
    }
    assert!(per.values().all(|&v| v == 2), "{per:?}");
    // Weighted: in-flight proportional to weight.
    let lb = pool(WeightedLeastConnections::new(), &[1, 3]);
    let held: Vec<_> = (0..8).map(|_| lb.pick(&Context::new()).unwrap()).collect();
    assert_eq!(held.iter().filter(|l| ***l == 1).count(), 6);
}

#[test]
fn p2c_never_picks_the_busier_of_two() {
    seed_thread_rng(3);
    let lb = pool(PowerOfTwoChoices::new(), &[1, 1]);
    // With two backends both are always the choices: the idle one must win every time.
    let busy = lb.pick(&Context::new()).unwrap();
    for _ in 0..100 {
        let l = lb.pick(&Context::new()).unwrap();
        assert_ne!(*l, *busy);
    }
    // Over many backends, held leases stay balanced: max - min small.
    let lb = pool(PowerOfTwoChoices::new(), &[1; 20]);
    let held: Vec<_> = (0..2_000)
        .map(|_| lb.pick(&Context::new()).unwrap())
        .collect();
    let stats = lb.stats();
    let max = stats.backends.iter().map(|b| b.in_flight).max().unwrap();
    let min = stats.backends.iter().map(|b| b.in_flight).min().unwrap();
    assert!(max - min <= 8, "max {max} min {min}");
    drop(held);
}

#[test]
fn p2c_best_of_k_is_validated() {
    assert!(PowerOfTwoChoices::with_choices(1).is_err());
    assert!(PowerOfTwoChoices::with_choices(9).is_err());
    let lb = pool(PowerOfTwoChoices::with_choices(4).unwrap(), &[1; 3]);
    assert_weighted(&counts(&lb, 3_000), &[1; 3], 0.15);
}

#[test]
fn least_latency_prefers_the_faster_backend() {
    seed_thread_rng(4);
    let lb = pool(LeastLatency::new(), &[1, 1]);
    for _ in 0..200 {
        let l = lb.pick(&Context::new()).unwrap();
        let ms = if *l == 0 { 1 } else { 20 };
        l.success(std::time::Duration::from_millis(ms));
    }
    let s = lb.stats();
    assert!(s.backends[0].picks > 4 * s.backends[1].picks, "{s:?}");
}

#[test]
fn least_latency_penalises_fast_failures() {
    seed_thread_rng(5);
    let lb = pool(LeastLatency::new(), &[1; 4]);
    for _ in 0..2_000 {
        let l = lb.pick(&Context::new()).unwrap();
        if *l == 3 {
            l.failure(); // fails "in no time"
        } else {
            l.success(std::time::Duration::from_millis(10));
        }
    }
    let s = lb.stats();
    let share = s.backends[3].picks as f64 / 2_000.0;
    assert!(share < 0.05, "failing backend got {share:.3}");
}

#[test]
fn consistent_hash_is_stable_and_moves_little() {
    for (policy, is_ring) in [
        (ConsistentHash::ring(), true),
        (ConsistentHash::maglev(), false),
    ] {
        let lb = pool(policy, &[1; 10]);
        let before: Vec<BackendId> = (0..1_000u64)
            .map(|k| {
                lb.pick(&Context::new().with_hash(lb.hash_key(&k)))
                    .unwrap()
                    .id()
            })
            .collect();
        let again: Vec<BackendId> = (0..1_000u64)
            .map(|k| {
                lb.pick(&Context::new().with_hash(lb.hash_key(&k)))
                    .unwrap()
                    .id()
            })
            .collect();
        assert_eq!(before, again);
        lb.add(Backend::new(10u64, 10)).unwrap();
        let after: Vec<BackendId> = (0..1_000u64)
            .map(|k| {
                lb.pick(&Context::new().with_hash(lb.hash_key(&k)))
                    .unwrap()
                    .id()
            })
            .collect();
        let moved = before.iter().zip(&after).filter(|(a, b)| a != b).count();
        // Ideal: 1/11 of keys move, all to the new backend.
        assert!(moved < 200, "moved {moved}");
        // The ring moves keys only to the new backend; Maglev trades a little extra
        // disruption for its even spread (Eisenbud et al., section 3.4).
        let to_new = before
            .iter()
            .zip(&after)
            .filter(|(a, b)| a != b && **b == BackendId(10))
            .count();
        if is_ring {
            assert_eq!(to_new, moved);
        } else {
            assert!(
                to_new * 10 >= moved * 8,
                "{to_new} of {moved} moved to the new backend"
            );
        }
    }
}

#[test]
fn bounded_load_spills_a_hot_key() {
    let lb = pool(ConsistentHash::maglev().bounded(1.25).unwrap(), &[1; 4]);
    let ctx = Context::new().with_hash(lb.hash_key("celebrity"));
    let held: Vec<_> = (0..40).map(|_| lb.pick(&ctx).unwrap()).collect();
    let s = lb.stats();
    let max = s.backends.iter().map(|b| b.in_flight).max().unwrap();
    // Capacity = ceil(1.25 * (in_flight + 1) / 4) <= 13 at 40 in flight.
    assert!(max <= 13, "hot key overloaded one backend: {max}");
    drop(held);
}

#[test]
fn sticky_moves_only_when_its_backend_leaves() {
    let lb = pool(Sticky::new(RoundRobin::new()), &[1; 3]);
    let keys: Vec<u64> = (0..30).map(|k| lb.hash_key(&k)).collect();
    let first: Vec<BackendId> = keys
        .iter()
        .map(|&h| lb.pick(&Context::new().with_hash(h)).unwrap().id())
        .collect();
    // New keys do not disturb old ones; rebuilds do not either.
    lb.add(Backend::new(3u64, 3)).unwrap();
    let second: Vec<BackendId> = keys
        .iter()
        .map(|&h| lb.pick(&Context::new().with_hash(h)).unwrap().id())
        .collect();
    assert_eq!(first, second);
    // Removing backend 0 moves exactly its keys.
    lb.remove(BackendId(0)).unwrap();
    let third: Vec<BackendId> = keys
        .iter()
        .map(|&h| lb.pick(&Context::new().with_hash(h)).unwrap().id())
        .collect();
    for (a, b) in first.iter().zip(&third) {
        if *a == BackendId(0) {
            assert_ne!(b, a);
        } else {
            assert_eq!(a, b);
        }
    }
    // A retry that excludes the bound backend goes elsewhere once, without rebinding.
    let h = keys[1];
    let bound = third[1];
    let retry = lb
        .pick(&Context::new().with_hash(h).exclude(&[bound]))
        .unwrap()
        .id();
    assert_ne!(retry, bound);
    assert_eq!(lb.pick(&Context::new().with_hash(h)).unwrap().id(), bound);
}

#[test]
fn locality_splits_traffic_and_fails_over() {
    seed_thread_rng(6);
    let policy = Locality::new(RoundRobin::new())
        .tier(Tier::new().zone("us-east", 70).zone("us-west", 30))
        .tier(Tier::new().zone("eu", 1));
    let lb = Balancer::builder(policy)
        .backends((0..4u64).map(|i| Backend::new(i, i).zone("us-east")))
        .backends((4..8u64).map(|i| Backend::new(i, i).zone("us-west")))
        .backends((8..10u64).map(|i| Backend::new(i, i).zone("eu")))
        .panic_threshold(0)
        .build()
        .unwrap();
    let share = |lb: &Balancer<u64, _>, lo: u64, hi: u64| {
        let n = 10_000u32;
        (0..n)
            .filter(|_| (lo..hi).contains(&*lb.pick(&Context::new()).unwrap()))
            .count() as f64
            / f64::from(n)
    };
    let east = share(&lb, 0, 4);
    assert!((0.67..0.73).contains(&east), "east {east}");
    assert!(share(&lb, 8, 10) == 0.0, "eu is a failover tier only");
    // us-east goes down: tier 0 is half healthy, so with overprovisioning 1.4 it keeps 70% of
    // the traffic (all of it now on us-west) and 30% spills over to the eu tier.
    for i in 0..4 {
        lb.set_healthy(BackendId(i), false).unwrap();
    }
    let west = share(&lb, 4, 8);
    assert!((0.67..0.73).contains(&west), "west {west}");
    // Half of us-west down too: tier 0 keeps 2/8 x 1.4 = 35%, eu takes 65%.
    for i in 4..6 {
        lb.set_healthy(BackendId(i), false).unwrap();
    }
    let eu = share(&lb, 8, 10);
    assert!((0.62..0.68).contains(&eu), "eu {eu}");
    // With a single tier, a zone that goes down hands all its traffic to the other zone.
    let lb = Balancer::builder(
        Locality::new(RoundRobin::new()).tier(Tier::new().zone("dc1", 50).zone("dc2", 50)),
    )
    .backends((0..3u64).map(|i| Backend::new(i, i).zone("dc1")))
    .backends((3..6u64).map(|i| Backend::new(i, i).zone("dc2")))
    .panic_threshold(0)
    .build()
    .unwrap();
    for i in 0..3 {
        lb.set_healthy(BackendId(i), false).unwrap();
    }
    assert!((share(&lb, 3, 6) - 1.0).abs() < 1e-9);
}

#[test]
fn exclusions_are_honoured_by_every_policy() {
    fn check<P: Policy<u64>>(policy: P) {
        let lb = pool(policy, &[1, 2, 3]);
        let ex = [BackendId(0), BackendId(2)];
        for k in 0..50u64 {
            let ctx = Context::new().exclude(&ex).with_hash(lb.hash_key(&k));
            assert_eq!(lb.pick(&ctx).unwrap().id(), BackendId(1));
        }
        let all = [BackendId(0), BackendId(1), BackendId(2)];
        assert_eq!(
            lb.pick(&Context::new().exclude(&all)).unwrap_err(),
            NoBackend::AllExcluded
        );
    }
    check(RoundRobin::new());
    check(WeightedRoundRobin::new());
    check(Random::new());
    check(WeightedRandom::new());
    check(LeastConnections::new());
    check(WeightedLeastConnections::new());
    check(PowerOfTwoChoices::new());
    check(LeastLatency::new());
    check(ConsistentHash::ring());
    check(ConsistentHash::maglev().bounded(1.25).unwrap());
    check(Sticky::new(Random::new()));
    check(Locality::new(RoundRobin::new()));
}

/// Longest run of one index in the cyclic sequence.
fn longest_cyclic_run(seq: &[u64]) -> HashMap<u64, usize> {
    let mut best: HashMap<u64, usize> = HashMap::new();
    let doubled: Vec<u64> = seq.iter().chain(seq).copied().collect();
    let mut run = 0;
    for i in 0..doubled.len() {
        run = if i > 0 && doubled[i] == doubled[i - 1] {
            run + 1
        } else {
            1
        };
        let e = best.entry(doubled[i]).or_default();
        *e = (*e).max(run.min(seq.len()));
    }
    best
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Smooth WRR never sends more than ceil(w_i / w_min) requests in a row to one backend, and
    /// over one cycle gives each exactly its weight's share.
    #[test]
    fn smooth_wrr_spreads_and_honours_weights(weights in proptest::collection::vec(1u32..=12, 2..8)) {
        let lb = pool(WeightedRoundRobin::new(), &weights);
        let g = weights.iter().fold(0, |a, &b| gcd(a, b));
        let cycle: u32 = weights.iter().map(|w| w / g).sum();
        let seq: Vec<u64> = (0..cycle).map(|_| *lb.pick(&Context::new()).unwrap()).collect();
        let min = *weights.iter().min().unwrap();
        for (i, &w) in weights.iter().enumerate() {
            let got = seq.iter().filter(|&&v| v == i as u64).count() as u32;
            prop_assert_eq!(got, w / g, "share of {}", i);
        }
        for (v, run) in longest_cyclic_run(&seq) {
            let w = weights[v as usize];
            prop_assert!(run as u32 <= w.div_ceil(min), "backend {} ran {} times (w={}, min={})", v, run, w, min);
        }
    }
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}
