//! Model test on the simulated cluster: random interleavings of writes, reads at every
//! consistency level, lag changes, replica kills and a primary failover. Checks:
//! - no `ReadYourWrites` read misses the session's own last write;
//! - `BoundedStaleness` reads never exceed the bound (as the router knows positions);
//! - writes always hit the epoch's primary;
//! - after promotion, the reported lost-write range is exactly the writes missing on the new
//!   primary.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use tierkit_replication::sim::{SimCluster, SimNode};
use tierkit_replication::{
    Config, Consistency, Intent, ManualClock, NodeId, Position, ReplicaSet, SessionToken,
};

#[derive(Debug, Clone)]
enum Op {
    Write(u8),
    ReadYourWrites(u8),
    Bounded(u8, u64),
    Eventual(u8),
    Monotonic(u8),
    Replicate,
    SetRate(usize, usize),
    KillReplica(usize),
    Failover,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..8).prop_map(Op::Write),
        3 => (0u8..8).prop_map(Op::ReadYourWrites),
        2 => (0u8..8, 0u64..4).prop_map(|(k, b)| Op::Bounded(k, b)),
        1 => (0u8..8).prop_map(Op::Eventual),
        1 => (0u8..8).prop_map(Op::Monotonic),
        3 => Just(Op::Replicate),
        1 => (1usize..4, 0usize..3).prop_map(|(n, r)| Op::SetRate(n, r)),
        1 => (1usize..4).prop_map(Op::KillReplica),
        1 => Just(Op::Failover),
    ]
}

struct World {
    cluster: SimCluster,
    set: ReplicaSet<SimNode>,
    clock: Arc<ManualClock>,
    /// The session's latest token, and the positions of every acknowledged write.
    token: Option<SessionToken>,
    acked: BTreeMap<Position, (String, String)>,
    monotonic: Position,
    failovers: usize,
    writes: u64,
}

impl World {
    fn new() -> Self {
        let cluster = SimCluster::new(4);
        let clock = Arc::new(ManualClock::new());
        let set = ReplicaSet::builder()
            .primary(NodeId(0), cluster.node(0))
            .replica(NodeId(1), cluster.node(1))
            .replica(NodeId(2), cluster.node(2))
            .replica(NodeId(3), cluster.node(3))
            .clock(clock.clone())
            .config(
                Config::default()
                    .min_serving_replicas(0)
                    .failover_after(Duration::from_secs(1))
                    .quiet_period(Duration::ZERO),
            )
            .build()
            .unwrap();
        World {
            cluster,
            set,
            clock,
            token: None,
            acked: BTreeMap::new(),
            monotonic: Position(0),
            failovers: 0,
            writes: 0,
        }
    }

    /// What a position probe does: report every live node's position to the router.
    fn probe(&self) {
        for i in 0..4 {
            if let Ok(p) = self.cluster.node(i).position() {
                self.set.report_position(NodeId(i as u32), p).unwrap();
            }
        }
    }

    fn key(k: u8) -> String {
        format!("k{k}")
    }

    fn step(&mut self, op: Op) -> Result<(), TestCaseError> {
        match op {
            Op::Write(k) => {
                let route = self.set.route(Intent::Write).unwrap();
                prop_assert_eq!(Some(route.id()), self.set.primary());
                prop_assert_eq!(route.epoch(), self.set.epoch());
                prop_assert_eq!(
                    route.node().index(),
                    self.cluster.primary(),
                    "write not on the sim primary"
                );
                self.writes += 1;
                let value = format!("v{}", self.writes);
                let at = route.node().write(&Self::key(k), &value).unwrap();
                self.acked.insert(at, (Self::key(k), value));
                let token = route.committed(at);
                self.token = Some(self.token.map_or(token, |t| t.max(token)));
            }
            Op::ReadYourWrites(k) => {
                let Some(token) = self.token else {
                    return Ok(());
                };
                let route = self
                    .set
                    .route(Intent::Read(Consistency::ReadYourWrites(token)))
                    .unwrap();
                let got = route.node().read(&Self::key(k)).unwrap();
                // The current primary's data is the truth (after a failover it lacks lost writes).
                let expected = self.cluster.primary_data().get(&Self::key(k)).cloned();
                prop_assert_eq!(got, expected, "read-your-writes on {:?}", route.id());
            }
            Op::Bounded(k, bound) => {
                let primary_pos = self
                    .set
                    .stats()
                    .iter()
                    .find(|s| Some(s.id) == self.set.primary())
                    .unwrap()
                    .position;
                let route = self
                    .set
                    .route(Intent::Read(Consistency::BoundedStaleness(bound)))
                    .unwrap();
                if !route.is_primary() {
                    prop_assert!(
                        route.position().lag_behind(primary_pos) <= bound,
                        "lag over {}",
                        bound
                    );
                    // The node really is at least that fresh.
                    prop_assert!(route.node().position().unwrap() >= route.position());
                }
                route.node().read(&Self::key(k)).unwrap();
            }
            Op::Eventual(k) => {
                let route = self.set.route(Intent::Read(Consistency::Eventual)).unwrap();
                route.node().read(&Self::key(k)).unwrap();
            }
            Op::Monotonic(k) => {
                let route = self
                    .set
                    .route(Intent::Read(Consistency::MonotonicReads(self.monotonic)))
                    .unwrap();
                prop_assert!(route.is_primary() || route.position() >= self.monotonic);
                route.node().read(&Self::key(k)).unwrap();
                self.monotonic = self.monotonic.max(route.position());
            }
            Op::Replicate => {
                self.cluster.replicate();
                self.probe();
            }
            Op::SetRate(n, r) => self.cluster.set_rate(n, r).unwrap(),
            Op::KillReplica(n) => {
                if self.cluster.primary() != n && self.failovers == 0 {
                    self.cluster.kill(n).unwrap();
                    self.set.mark_down(NodeId(n as u32)).unwrap();
                }
            }
            Op::Failover => {
                if self.failovers > 0 {
                    return Ok(());
                }
                let old = self.cluster.primary();
                self.cluster.kill(old).unwrap();
                self.set.mark_down(NodeId(old as u32)).unwrap();
                self.clock.advance(Duration::from_secs(2));
                let Ok(Some(pending)) = self.set.check_failover() else {
                    // No live replica to promote: restore the primary.
                    self.cluster.restart(old).unwrap();
                    self.set.mark_up(NodeId(old as u32)).unwrap();
                    return Ok(());
                };
                self.failovers += 1;
                // Until the engine confirms the candidate, no write is routed anywhere.
                let promoting = matches!(
                    self.set.route(Intent::Write).err(),
                    Some(tierkit_replication::Error::Promoting { .. })
                );
                prop_assert!(promoting, "a write was routed during the promotion");
                let new = pending.candidate.0 as usize;
                let new_pos = self.cluster.promote(new).unwrap();
                let promotion = self.set.complete_promotion(&pending, None).unwrap();
                // The lost range is exactly the acknowledged writes the new primary lacks.
                let missing: Vec<Position> = self
                    .acked
                    .keys()
                    .copied()
                    .filter(|p| *p > new_pos)
                    .collect();
                match promotion.lost {
                    None => prop_assert!(
                        missing.is_empty(),
                        "lost writes not reported: {:?}",
                        missing
                    ),
                    Some(lost) => {
                        prop_assert_eq!(lost.after, new_pos);
                        let in_range: Vec<Position> = self
                            .acked
                            .keys()
                            .copied()
                            .filter(|p| lost.contains(*p))
                            .collect();
                        prop_assert_eq!(&in_range, &missing);
                        prop_assert_eq!(lost.len(), missing.len() as u64);
                    }
                }
                for p in missing {
                    self.acked.remove(&p);
                }
                self.probe();
            }
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn consistency_levels_hold_through_lag_kills_and_failover(ops in prop::collection::vec(op(), 1..120)) {
        let mut world = World::new();
        for op in ops {
            world.step(op)?;
        }
    }
}
