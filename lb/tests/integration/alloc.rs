//! Picks allocate nothing (counted with the counting allocator).

use tierkit_lb::{
    Backend, Balancer, ConsistentHash, Context, LeastConnections, LeastLatency, Locality, Policy,
    PowerOfTwoChoices, Random, RoundRobin, Sticky, Tier, WeightedLeastConnections, WeightedRandom,
    WeightedRoundRobin,
};
use tierkit_testkit::allocations_by_this_thread;

fn assert_no_alloc<P: Policy<u64>>(policy: P) {
    let name = policy.name();
    let lb = Balancer::builder(policy)
        .backends((0..100u64).map(|i| {
            Backend::new(i, i)
                .weight(1 + (i % 3) as u32)
                .zone(if i % 2 == 0 { "a" } else { "b" })
        }))
        .build()
        .unwrap();
    let hashes: Vec<u64> = (0..64u64).map(|k| lb.hash_key(&k)).collect();
    // Warm-up: thread-locals, sticky bindings.
    for &h in &hashes {
        drop(lb.pick(&Context::new().with_hash(h)).unwrap());
    }
    let before = allocations_by_this_thread();
    for round in 0..10 {
        for &h in &hashes {
            let lease = lb.pick(&Context::new().with_hash(h)).unwrap();
            if round % 2 == 0 {
                lease.success(std::time::Duration::from_micros(300));
            } else {
                drop(lease);
            }
        }
    }
    assert_eq!(
        allocations_by_this_thread() - before,
        0,
        "{name} allocated on the pick path"
    );
}

#[test]
fn picks_allocate_nothing() {
    assert_no_alloc(RoundRobin::new());
    assert_no_alloc(WeightedRoundRobin::new());
    assert_no_alloc(Random::new());
    assert_no_alloc(WeightedRandom::new());
    assert_no_alloc(LeastConnections::new());
    assert_no_alloc(WeightedLeastConnections::new());
    assert_no_alloc(PowerOfTwoChoices::new());
    assert_no_alloc(LeastLatency::new());
    assert_no_alloc(ConsistentHash::ring());
    assert_no_alloc(ConsistentHash::maglev().bounded(1.25).unwrap());
    assert_no_alloc(Sticky::new(PowerOfTwoChoices::new()));
    assert_no_alloc(Locality::new(RoundRobin::new()).tier(Tier::new().zone("a", 3).zone("b", 1)));
}
