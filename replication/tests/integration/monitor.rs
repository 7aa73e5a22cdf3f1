//! Async probes and waiting reads, under tokio's paused clock (no real waiting).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tierkit_replication::sim::{SimCluster, SimError, SimNode, SimPromote};
use tierkit_replication::{
    Config, Consistency, Fallback, Intent, ManualClock, MonitorOptions, NodeId, Observation,
    Position, PositionProbe, ReplicaSet, monitor_once,
};

struct SimProbe;

impl PositionProbe<SimNode> for SimProbe {
    type Error = SimError;
    fn observe(
        &self,
        node: &SimNode,
    ) -> impl Future<Output = Result<Observation, SimError>> + Send {
        let result = node.position().map(Observation::from);
        async move { result }
    }
}

fn cluster_and_set() -> (SimCluster, ReplicaSet<SimNode>, Arc<ManualClock>) {
    let cluster = SimCluster::new(3);
    let clock = Arc::new(ManualClock::new());
    let set = ReplicaSet::builder()
        .primary(NodeId(0), cluster.node(0))
        .replica(NodeId(1), cluster.node(1))
        .replica(NodeId(2), cluster.node(2))
        .clock(clock.clone())
        .promotion_hook(SimPromote)
        .config(Config::default().failover_after(Duration::from_secs(3)))
        .build()
        .unwrap();
    (cluster, set, clock)
}

#[tokio::test(start_paused = true)]
async fn monitor_detects_a_dead_primary_and_promotes() {
    let (cluster, set, clock) = cluster_and_set();
    let primary = cluster.node(0);
    for i in 0..5 {
        primary.write(&format!("k{i}"), "v").unwrap();
    }
    cluster.set_rate(2, 2).unwrap();
    cluster.replicate(); // replica 1 has everything, replica 2 only two entries
    let opts = MonitorOptions::default();
    assert_eq!(monitor_once(&set, &SimProbe, opts).await, None);
    let stats = set.stats();
    assert_eq!(
        (stats[1].position, stats[2].position),
        (Position(5), Position(2))
    );

    cluster.kill(0).unwrap();
    // A failed probe marks it down at once; then failover_after must pass.
    assert_eq!(monitor_once(&set, &SimProbe, opts).await, None);
    assert!(!set.stats()[0].healthy);
    clock.advance(Duration::from_secs(2));
    assert_eq!(
        monitor_once(&set, &SimProbe, opts).await,
        None,
        "not down long enough"
    );
    clock.advance(Duration::from_secs(2));
    let promotion = monitor_once(&set, &SimProbe, opts).await.unwrap();
    assert_eq!(promotion.new_primary, NodeId(1));
    assert_eq!(promotion.lost, None, "replica 1 had every write");
}

#[tokio::test(start_paused = true)]
async fn read_your_writes_waits_for_a_replica_then_falls_back() {
    let (cluster, set, _) = cluster_and_set();
    let set = Arc::new(set);
    let write = set.route(Intent::Write).unwrap();
    let at = write.node().write("k", "v").unwrap();
    let token = write.committed(at);
    let intent = Intent::Read(Consistency::ReadYourWrites(token));

    // Nobody reports progress: after the wait, the primary serves.
    let r = set
        .route_waiting(intent, Duration::from_millis(50))
        .await
        .unwrap();
    assert_eq!(
        (r.id(), r.fallback()),
        (NodeId(0), Some(Fallback::ReplicasBehind))
    );
    drop(r);

    // A replica catches up 10 ms into the wait: the read goes to it.
    let reporter = {
        let (set, cluster) = (set.clone(), cluster.clone());
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(10)).await;
            cluster.catch_up();
            set.report_position(NodeId(2), cluster.node(2).position().unwrap())
                .unwrap();
        })
    };
    let started = tokio::time::Instant::now();
    let r = set
        .route_waiting(intent, Duration::from_millis(50))
        .await
        .unwrap();
    assert_eq!((r.id(), r.fallback()), (NodeId(2), None));
    assert_eq!(started.elapsed(), Duration::from_millis(10));
    assert_eq!(r.node().read("k").unwrap().as_deref(), Some("v"));
    reporter.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_killed_replica_gets_no_reads_after_one_check() {
    let (cluster, set, _) = cluster_and_set();
    let opts = MonitorOptions::default().auto_failover(false);
    monitor_once(&set, &SimProbe, opts).await;
    let share = |set: &ReplicaSet<SimNode>| {
        let mut counts = [0usize; 3];
        for _ in 0..3_000 {
            counts[set
                .route(Intent::Read(Consistency::Eventual))
                .unwrap()
                .id()
                .0 as usize] += 1;
        }
        counts
    };
    assert_eq!(
        share(&set),
        [0, 1_500, 1_500],
        "the primary takes no reads while replicas serve"
    );
    cluster.kill(2).unwrap();
    monitor_once(&set, &SimProbe, opts).await;
    assert_eq!(share(&set), [0, 3_000, 0]);
    // It comes back after `rise` (2) good probes.
    cluster.restart(2).unwrap();
    monitor_once(&set, &SimProbe, opts).await;
    monitor_once(&set, &SimProbe, opts).await;
    assert_eq!(share(&set), [0, 1_500, 1_500]);
}
