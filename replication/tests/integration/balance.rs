//! Replica choice through `tierkit-lb` policies.

use std::time::Duration;

use tierkit_lb::{LeastLatency, PowerOfTwoChoices, seed_thread_rng};
use tierkit_replication::{Consistency, Intent, NodeId, Position, ReplicaSet, SessionToken};

fn set_with<P: tierkit_lb::Policy<NodeId>>(policy: P) -> ReplicaSet<&'static str> {
    ReplicaSet::builder()
        .primary(NodeId(0), "primary")
        .replica(NodeId(1), "replica-1")
        .replica(NodeId(2), "replica-2")
        .replica(NodeId(3), "replica-3")
        .read_policy(policy)
        .build()
        .unwrap()
}

#[test]
fn least_latency_sends_reads_to_the_fast_replica() {
    seed_thread_rng(11);
    let set = set_with(LeastLatency::new());
    let mut per = [0u32; 4];
    for _ in 0..3_000 {
        let r = set.route(Intent::Read(Consistency::Eventual)).unwrap();
        let id = r.id().0 as usize;
        per[id] += 1;
        // Replica 3 is ten times slower.
        r.success_after(Duration::from_millis(if id == 3 { 20 } else { 2 }));
    }
    assert_eq!(per[0], 0, "eventual reads never need the primary");
    assert!(
        per[3] * 10 < per[1] + per[2],
        "slow replica got {} of 3000: {per:?}",
        per[3]
    );
    let stats = set.read_balancer_stats().unwrap();
    assert_eq!(stats.backends.len(), 3);
    assert_eq!(stats.policy, "least_latency");
}

#[test]
fn the_policy_only_sees_replicas_fresh_enough() {
    seed_thread_rng(12);
    let set = set_with(PowerOfTwoChoices::new());
    let w = set.route(Intent::Write).unwrap();
    let token: SessionToken = w.committed(Position(50));
    set.report_position(NodeId(2), Position(50)).unwrap();
    for _ in 0..200 {
        let r = set
            .route(Intent::Read(Consistency::ReadYourWrites(token)))
            .unwrap();
        assert_eq!(r.id(), NodeId(2));
    }
    // Held reads count in flight: P2C spreads eventual reads by load.
    let held: Vec<_> = (0..30)
        .map(|_| set.route(Intent::Read(Consistency::Eventual)).unwrap())
        .collect();
    let stats = set.read_balancer_stats().unwrap();
    let max = stats.backends.iter().map(|b| b.in_flight).max().unwrap();
    let min = stats.backends.iter().map(|b| b.in_flight).min().unwrap();
    assert!(max - min <= 3, "{stats:?}");
    drop(held);
}

#[test]
fn balancer_members_follow_topology_changes() {
    let set = set_with(LeastLatency::new());
    set.report_position(NodeId(1), Position(10)).unwrap();
    let promotion = set.promote().unwrap();
    assert_eq!(promotion.new_primary, NodeId(1));
    let ids = |set: &ReplicaSet<&'static str>| {
        let mut v: Vec<u64> = set
            .read_balancer_stats()
            .unwrap()
            .backends
            .iter()
            .map(|b| b.id.0)
            .collect();
        v.sort_unstable();
        v
    };
    assert_eq!(ids(&set), vec![2, 3], "the new primary left the read pool");
    set.add_replica(NodeId(7), "replica-7", Position(10))
        .unwrap();
    assert_eq!(ids(&set), vec![2, 3, 7]);
    set.remove(NodeId(2)).unwrap();
    assert_eq!(ids(&set), vec![3, 7]);
    for _ in 0..50 {
        let r = set.route(Intent::Read(Consistency::Eventual)).unwrap();
        assert!(matches!(r.id(), NodeId(3) | NodeId(7)));
    }
}

#[test]
fn primary_health_is_visible_without_stats() {
    let set = set_with(LeastLatency::new());
    assert_eq!(set.primary_healthy(), Some(true));
    set.mark_down(NodeId(0)).unwrap();
    assert_eq!(set.primary_healthy(), Some(false));
    set.report_position(NodeId(2), Position(5)).unwrap();
    set.promote().unwrap();
    assert_eq!(set.primary(), Some(NodeId(2)));
    assert_eq!(set.primary_healthy(), Some(true));
}
