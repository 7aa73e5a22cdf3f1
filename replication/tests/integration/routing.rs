//! Distribution, health, promotion rules and fencing.

use std::sync::Arc;
use std::time::Duration;

use tierkit_replication::sim::SimCluster;
use tierkit_replication::{
    BoundFallback, Config, Consistency, Epoch, Error, Fallback, Intent, ManualClock, NodeId,
    Position, ReplicaSet, Role,
};

fn three_replicas(config: Config) -> (ReplicaSet<usize>, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new());
    let set = ReplicaSet::builder()
        .primary(NodeId(0), 0)
        .replica(NodeId(1), 1)
        .replica(NodeId(2), 2)
        .replica(NodeId(3), 3)
        .clock(clock.clone())
        .config(config)
        .build()
        .unwrap();
    (set, clock)
}

fn shares(set: &ReplicaSet<usize>, reads: usize) -> [usize; 4] {
    let mut counts = [0; 4];
    for _ in 0..reads {
        let r = set.route(Intent::Read(Consistency::Eventual)).unwrap();
        counts[*r.node()] += 1;
        r.success();
    }
    counts
}

#[test]
fn reads_spread_over_replicas_and_skip_the_primary() {
    let (set, _) = three_replicas(Config::default());
    let counts = shares(&set, 3_000);
    assert_eq!(counts[0], 0, "primary took reads: {counts:?}");
    assert!(counts[1..].iter().all(|&c| c == 1_000), "{counts:?}");
}

#[test]
fn a_failing_replica_stops_getting_reads_and_comes_back() {
    let (set, _) = three_replicas(Config::default());
    // Passive health: three consecutive failures on replica 2.
    for _ in 0..3 {
        let r = loop {
            let r = set.route(Intent::Read(Consistency::Eventual)).unwrap();
            if r.id() == NodeId(2) {
                break r;
            }
        };
        r.failure();
    }
    let counts = shares(&set, 3_000);
    assert_eq!(counts[2], 0, "{counts:?}");
    assert_eq!(counts[1] + counts[3], 3_000);
    // Active checks bring it back after `rise` successes.
    set.report_health(NodeId(2), true).unwrap();
    assert_eq!(shares(&set, 300)[2], 0, "one success is not enough");
    set.report_health(NodeId(2), true).unwrap();
    assert!(shares(&set, 300)[2] > 0);
}

#[test]
fn bounded_reads_never_exceed_the_bound_by_default() {
    // Issue 18, finding 3: the default floor of one serving replica kept a replica past the
    // bound in use, silently. Now the default is the primary.
    let (set, _) = three_replicas(Config::default());
    set.route(Intent::Write).unwrap().committed(Position(100));
    set.report_position(NodeId(1), Position(90)).unwrap();
    set.report_position(NodeId(2), Position(50)).unwrap();
    let r = set
        .route(Intent::Read(Consistency::BoundedStaleness(5)))
        .unwrap();
    assert_eq!(
        (r.id(), r.fallback(), r.beyond_bound()),
        (NodeId(0), Some(Fallback::ReplicasBehind), false)
    );
}

#[test]
fn stale_replica_fallback_keeps_a_floor_serving_and_flags_it() {
    let (set, _) = three_replicas(
        Config::default()
            .bound_fallback(BoundFallback::StaleReplica)
            .min_serving_replicas(1),
    );
    set.route(Intent::Write).unwrap().committed(Position(100));
    set.report_position(NodeId(1), Position(90)).unwrap();
    set.report_position(NodeId(2), Position(50)).unwrap();
    // Every replica lags past a bound of 5: the most advanced keeps serving, flagged.
    let r = set
        .route(Intent::Read(Consistency::BoundedStaleness(5)))
        .unwrap();
    assert_eq!(
        (r.id(), r.fallback(), r.beyond_bound()),
        (NodeId(1), None, true)
    );
    drop(r);
    // Within the bound: not flagged.
    let r = set
        .route(Intent::Read(Consistency::BoundedStaleness(10)))
        .unwrap();
    assert_eq!((r.id(), r.beyond_bound()), (NodeId(1), false));
}

#[test]
fn bounded_staleness_in_time() {
    let (set, clock) = three_replicas(Config::default());
    for p in 1..=10u64 {
        set.route(Intent::Write)
            .unwrap()
            .committed(Position(p * 10));
        clock.advance(Duration::from_secs(1));
    }
    // Writes routed at t = 0 s (pos 10) ... t = 9 s (pos 100); now t = 10 s.
    set.report_position(NodeId(1), Position(100)).unwrap();
    set.report_position(NodeId(2), Position(55)).unwrap();
    // Replica 2 is provably complete through t = 4 s (the primary was at most at 50 then):
    // 6 s stale at most. A bound of 5.5 s excludes it, 6 s admits it.
    for _ in 0..10 {
        let r = set
            .route(Intent::Read(Consistency::BoundedStalenessTime(
                Duration::from_millis(5_500),
            )))
            .unwrap();
        assert_eq!(r.id(), NodeId(1));
    }
    let ids: std::collections::HashSet<NodeId> = (0..10)
        .map(|_| {
            set.route(Intent::Read(Consistency::BoundedStalenessTime(
                Duration::from_secs(6),
            )))
            .unwrap()
            .id()
        })
        .collect();
    assert_eq!(ids, [NodeId(1), NodeId(2)].into_iter().collect());
    // No sample in the last 0.5 s: nothing bounds the primary's position, so the primary.
    let r = set
        .route(Intent::Read(Consistency::BoundedStalenessTime(
            Duration::from_millis(500),
        )))
        .unwrap();
    assert_eq!(r.fallback(), Some(Fallback::ReplicasBehind));
}

#[test]
fn primary_after_write_window() {
    let (set, clock) = three_replicas(Config::default());
    let token = set.route(Intent::Write).unwrap().committed(Position(1));
    let window = Duration::from_secs(5);
    let read = || {
        set.route(Intent::Read(Consistency::PrimaryAfterWrite {
            token,
            window,
        }))
        .unwrap()
    };
    assert_eq!(read().fallback(), Some(Fallback::RecentWrite));
    clock.advance(Duration::from_secs(6));
    assert!(!read().is_primary());
}

#[test]
fn promotion_picks_the_most_advanced_and_fences_the_old_primary() {
    let (set, _) = three_replicas(Config::default());
    set.route(Intent::Write).unwrap().committed(Position(10));
    set.report_position(NodeId(1), Position(7)).unwrap();
    set.report_position(NodeId(2), Position(9)).unwrap();
    set.report_position(NodeId(3), Position(9)).unwrap();
    let p = set.promote().unwrap();
    assert_eq!(
        (p.new_primary, p.old_primary, p.epoch),
        (NodeId(2), Some(NodeId(0)), Epoch(2))
    );
    let lost = p.lost.unwrap();
    assert_eq!(
        (lost.after, lost.through, lost.len()),
        (Position(9), Position(10), 1)
    );
    let w = set.route(Intent::Write).unwrap();
    assert_eq!((w.id(), w.epoch()), (NodeId(2), Epoch(2)));
    drop(w);
    // The fenced old primary serves nothing; it rejoins as a replica.
    let roles: Vec<Role> = set.stats().iter().map(|s| s.role).collect();
    assert_eq!(
        roles,
        [Role::Fenced, Role::Replica, Role::Primary, Role::Replica]
    );
    for _ in 0..20 {
        assert_ne!(
            set.route(Intent::Read(Consistency::Eventual)).unwrap().id(),
            NodeId(0)
        );
    }
    set.rejoin_as_replica(NodeId(0), Position(9)).unwrap();
    assert_eq!(set.stats()[0].role, Role::Replica);
}

#[test]
fn automatic_failover_rules() {
    let config = Config::default()
        .failover_after(Duration::from_secs(10))
        .max_promotion_lag(Some(5))
        .quiet_period(Duration::from_secs(60));
    let (set, clock) = three_replicas(config);
    set.route(Intent::Write).unwrap().committed(Position(100));
    set.report_position(NodeId(1), Position(90)).unwrap();
    assert_eq!(set.check_failover(), Ok(None), "primary is healthy");
    set.mark_down(NodeId(0)).unwrap();
    clock.advance(Duration::from_secs(5));
    assert_eq!(set.check_failover(), Ok(None), "not down long enough");
    clock.advance(Duration::from_secs(6));
    assert_eq!(
        set.check_failover(),
        Err(Error::CandidateTooFarBehind {
            node: NodeId(1),
            lag: 10,
            max: 5
        })
    );
    set.report_position(NodeId(1), Position(97)).unwrap();
    let p = set.check_failover().unwrap().unwrap();
    assert_eq!(p.candidate, NodeId(1));
    assert!(matches!(
        set.route(Intent::Write).err(),
        Some(Error::Promoting {
            candidate: NodeId(1),
            ..
        })
    ));
    set.complete_promotion(&p, None).unwrap();
    // The new primary fails at once: no second failover inside the quiet period.
    set.mark_down(NodeId(1)).unwrap();
    clock.advance(Duration::from_secs(20));
    assert!(matches!(
        set.check_failover(),
        Err(Error::QuietPeriod { .. })
    ));
    clock.advance(Duration::from_secs(60));
    // Past the quiet period, but the remaining replicas are 97 positions behind.
    assert!(matches!(
        set.check_failover(),
        Err(Error::CandidateTooFarBehind { lag: 97, .. })
    ));
    set.report_position(NodeId(3), Position(95)).unwrap();
    let p = set.check_failover().unwrap().unwrap();
    let p = set.complete_promotion(&p, None).unwrap();
    assert_eq!((p.new_primary, p.epoch), (NodeId(3), Epoch(3)));
    assert_eq!(p.lost.map(|l| l.len()), Some(2));
}

#[test]
fn errors_instead_of_panics() {
    let set = ReplicaSet::<()>::builder().build();
    assert_eq!(set.err(), Some(Error::MissingPrimary));
    let dup = ReplicaSet::builder()
        .primary(NodeId(0), ())
        .replica(NodeId(0), ())
        .build();
    assert_eq!(dup.err(), Some(Error::DuplicateNode(NodeId(0))));
    let (set, _) = three_replicas(Config::default());
    assert_eq!(
        set.report_position(NodeId(9), Position(1)),
        Err(Error::UnknownNode(NodeId(9)))
    );
    assert_eq!(set.remove(NodeId(0)).err(), Some(Error::NoPrimary));
    for id in 1..4 {
        set.mark_down(NodeId(id)).unwrap();
    }
    assert_eq!(set.promote().err(), Some(Error::NoCandidate));
    // Reads still work: the primary serves them, saying why.
    let r = set.route(Intent::Read(Consistency::Eventual)).unwrap();
    assert_eq!(r.fallback(), Some(Fallback::NoHealthyReplica));
}

#[test]
fn sim_cluster_failover_loses_exactly_the_unreplicated_tail() {
    let cluster = SimCluster::new(2);
    let (p, r) = (cluster.node(0), cluster.node(1));
    p.write("a", "1").unwrap();
    cluster.catch_up();
    p.write("b", "2").unwrap();
    cluster.kill(0).unwrap();
    assert_eq!(cluster.promote(1).unwrap(), Position(1));
    assert_eq!(r.read("b").unwrap(), None);
    assert_eq!(r.write("c", "3").unwrap(), Position(2));
    cluster.restart(0).unwrap();
    assert!(p.write("x", "y").is_err(), "the old primary is fenced");
    assert_eq!(p.read("b").unwrap(), None, "rewound to the new history");
}

#[test]
fn lag_in_time_from_the_primary_history() {
    let (set, clock) = three_replicas(Config::default());
    for p in 1..=10u64 {
        set.route(Intent::Write)
            .unwrap()
            .committed(Position(p * 10));
        clock.advance(Duration::from_secs(1));
    }
    // Written at t = 0 s (pos 10) ... t = 9 s (pos 100); now t = 10 s.
    set.report_position(NodeId(1), Position(100)).unwrap();
    set.report_position(NodeId(2), Position(55)).unwrap();
    let stats = set.stats();
    assert_eq!(stats[1].lag_time, Some(Duration::ZERO));
    // Replica 2 has the write routed at t = 4 s (position 50), not the one at t = 5 s: the
    // primary was provably at or before its position at t = 4 s, so at most 6 s stale (an
    // upper bound: the write at 60 may have committed just before t = 5 s).
    assert_eq!(
        (stats[2].lag, stats[2].lag_time),
        (45, Some(Duration::from_secs(6)))
    );
    // Replica 3 is older than the history: unknown.
    assert_eq!(stats[3].lag_time, None);
}
