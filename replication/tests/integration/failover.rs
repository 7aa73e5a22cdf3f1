//! Engine-independent regressions for issue 18 (each failed before the fix): writes fail fast
//! or wait while there is no writable primary, promotion goes through the hook and is
//! reported as events, monotonic reads follow served positions, lost writes start at the
//! received position, handles are replaceable, waits never overflow `Instant`, and waiting
//! reads ask for probes.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tierkit_replication::sim::{SimCluster, SimError, SimNode, SimPromote};
use tierkit_replication::{
    Config, Consistency, Epoch, Error, Event, Intent, ManualClock, MonitorOptions, NodeId,
    Observation, Position, PositionProbe, PromotionHook, ReplicaSet, monitor,
};

fn pair() -> ReplicaSet<usize> {
    ReplicaSet::builder()
        .primary(NodeId(0), 0)
        .replica(NodeId(1), 1)
        .build()
        .unwrap()
}

/// Finding 1: 84 writes were routed to a primary already marked down.
#[test]
fn writes_fail_fast_while_the_primary_is_down_or_read_only() {
    let set = pair();
    set.mark_down(NodeId(0)).unwrap();
    assert_eq!(
        set.route(Intent::Write).err(),
        Some(Error::PrimaryUnavailable { node: NodeId(0) })
    );
    set.mark_up(NodeId(0)).unwrap();
    assert!(set.route(Intent::Write).is_ok());
    // The engine says it is in recovery: no write reaches it.
    set.report_observation(
        NodeId(0),
        Observation::new(Position(5)).writable(false),
        None,
    )
    .unwrap();
    assert_eq!(
        set.route(Intent::Write).err(),
        Some(Error::PrimaryUnavailable { node: NodeId(0) })
    );
    set.report_observation(
        NodeId(0),
        Observation::new(Position(5)).writable(true),
        None,
    )
    .unwrap();
    assert!(set.route(Intent::Write).is_ok());
}

/// Finding 1: the crate promoted in its own state and routed 11 writes to a server still in
/// recovery. Now no write is routed until the engine confirms, and the events say so.
#[test]
fn no_write_reaches_the_candidate_before_the_engine_confirms() {
    let clock = ManualClock::new();
    let set = ReplicaSet::builder()
        .primary(NodeId(0), 0)
        .replica(NodeId(1), 1)
        .clock(clock.clone())
        .config(Config::default().failover_after(Duration::from_secs(1)))
        .build()
        .unwrap();
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    set.on_event(move |e| sink.lock().unwrap().push(e.clone()));
    set.route(Intent::Write).unwrap().committed(Position(10));
    set.mark_down(NodeId(0)).unwrap();
    clock.advance(Duration::from_secs(2));
    let pending = set.check_failover().unwrap().unwrap();
    assert_eq!((pending.candidate, pending.epoch), (NodeId(1), Epoch(2)));
    for _ in 0..100 {
        assert_eq!(
            set.route(Intent::Write).err(),
            Some(Error::Promoting {
                candidate: NodeId(1),
                epoch: Epoch(2)
            })
        );
    }
    assert_eq!(set.primary(), None);
    assert_eq!(set.promoting(), Some(NodeId(1)));
    // A second check does not start another promotion.
    assert!(matches!(set.check_failover(), Err(Error::Promoting { .. })));
    let done = set.complete_promotion(&pending, None).unwrap();
    assert_eq!(set.route(Intent::Write).unwrap().id(), NodeId(1));
    // Completing twice is refused (fencing by epoch).
    assert!(matches!(
        set.complete_promotion(&pending, None),
        Err(Error::StalePromotion { .. })
    ));
    let kinds: Vec<String> = events
        .lock()
        .unwrap()
        .iter()
        .map(|e| {
            format!("{e:?}")
                .split([' ', '(', '{'])
                .next()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        kinds,
        ["PrimaryDown", "Demoted", "PromotionStarted", "Promoted"]
    );
    assert!(events.lock().unwrap().contains(&Event::Promoted(done)));
}

#[test]
fn an_aborted_promotion_leaves_no_primary_and_can_be_retried() {
    let set = pair();
    let pending = set.begin_promotion(NodeId(1)).unwrap();
    set.abort_promotion(&pending, "pg_promote timed out")
        .unwrap();
    assert_eq!(set.route(Intent::Write).err(), Some(Error::NoPrimary));
    assert_eq!(set.promoting(), None);
    let again = set.begin_promotion(NodeId(1)).unwrap();
    assert_eq!(again.epoch, Epoch(3));
    set.complete_promotion(&again, None).unwrap();
    assert_eq!(set.route(Intent::Write).unwrap().epoch(), Epoch(3));
}

/// Finding 4: the report used the replay position and overstated the loss.
#[test]
fn lost_writes_start_at_the_received_position() {
    let set = pair();
    set.route(Intent::Write).unwrap().committed(Position(100));
    set.report_observation(
        NodeId(1),
        Observation::new(Position(50)).received(Position(80)),
        None,
    )
    .unwrap();
    let p = set.promote().unwrap();
    let lost = p.lost.unwrap();
    assert_eq!((lost.after, lost.through), (Position(80), Position(100)));
    // A hook that knows where the history ended has the last word when it is further.
    let set = pair();
    set.route(Intent::Write).unwrap().committed(Position(100));
    let pending = set.begin_promotion(NodeId(1)).unwrap();
    let p = set
        .complete_promotion(&pending, Some(Position(90)))
        .unwrap();
    assert_eq!(p.lost.unwrap().after, Position(90));
}

/// Finding 2: the session position was the router's last *known* position, behind the data
/// actually read, so the next read could go to a replica that lacked it.
#[test]
fn monotonic_reads_follow_the_served_position() {
    let set = pair();
    set.route(Intent::Write).unwrap().committed(Position(10));
    set.report_position(NodeId(1), Position(10)).unwrap();
    // The primary has since moved to 20 (a write the set did not route).
    let read = set.route(Intent::Read(Consistency::Primary)).unwrap();
    assert_eq!(read.position(), Position(10), "the router only knows 10");
    let session = read.served(Position(20));
    let next = set
        .route(Intent::Read(Consistency::MonotonicReads(session)))
        .unwrap();
    assert_eq!(
        next.id(),
        NodeId(0),
        "the replica at 10 lacks what was read"
    );
}

/// Finding 7: rejoin reused the old handle.
#[test]
fn handles_are_replaceable() {
    let set = pair();
    let old = set.replace_handle(NodeId(1), 11).unwrap();
    assert_eq!(*old, 1);
    assert_eq!(
        *set.route(Intent::Read(Consistency::Eventual))
            .unwrap()
            .node(),
        11
    );
    set.promote_node(NodeId(1)).unwrap();
    set.rejoin_as_replica_with(NodeId(0), Position(0), 100)
        .unwrap();
    assert_eq!(
        *set.route(Intent::Read(Consistency::Eventual))
            .unwrap()
            .node(),
        100
    );
    assert!(matches!(
        set.replace_handle(NodeId(9), 0),
        Err(Error::UnknownNode(NodeId(9)))
    ));
}

/// Finding 7: `route_waiting(Duration::MAX)` panicked on `Instant` overflow.
#[tokio::test(start_paused = true)]
async fn waits_take_duration_max() {
    let set = Arc::new(pair());
    let token = set.route(Intent::Write).unwrap().committed(Position(5));
    let intent = Intent::Read(Consistency::ReadYourWrites(token));
    let catch_up = {
        let set = set.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(3)).await;
            set.report_position(NodeId(1), Position(5)).unwrap();
        })
    };
    let r = set.route_waiting(intent, Duration::MAX).await.unwrap();
    assert_eq!(r.id(), NodeId(1));
    drop(r);
    catch_up.await.unwrap();
    // Writes wait for a primary, without a deadline too.
    set.mark_down(NodeId(0)).unwrap();
    let up = {
        let set = set.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(3)).await;
            set.mark_up(NodeId(0)).unwrap();
        })
    };
    let w = set.route_write_waiting(Duration::MAX).await.unwrap();
    assert_eq!(w.id(), NodeId(0));
    drop(w);
    up.await.unwrap();
    // With a deadline, the last reason comes back.
    set.mark_down(NodeId(0)).unwrap();
    assert_eq!(
        set.route_write_waiting(Duration::from_secs(1)).await.err(),
        Some(Error::PrimaryUnavailable { node: NodeId(0) })
    );
}

/// A probe over the simulation that counts its calls.
struct CountingProbe(Arc<AtomicU32>);

impl PositionProbe<SimNode> for CountingProbe {
    type Error = SimError;
    async fn observe(&self, node: &SimNode) -> Result<Observation, SimError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        node.position().map(Observation::from)
    }
}

/// Finding 5: a waiting read woke only at the next periodic probe. Periodic rounds are an
/// hour apart here; the replica catches up without anyone reporting it; the waiting read
/// asks for a probe and is served by the replica at once.
#[tokio::test(start_paused = true)]
async fn waiting_reads_ask_for_a_probe() {
    let cluster = SimCluster::new(2);
    let set = Arc::new(
        ReplicaSet::builder()
            .primary(NodeId(0), cluster.node(0))
            .replica(NodeId(1), cluster.node(1))
            .build()
            .unwrap(),
    );
    let calls = Arc::new(AtomicU32::new(0));
    let options = MonitorOptions::default()
        .interval(Duration::from_secs(3_600))
        .auto_failover(false);
    let task = tokio::spawn(monitor(set.clone(), CountingProbe(calls.clone()), options));
    tokio::task::yield_now().await; // the first periodic round
    let write = set.route(Intent::Write).unwrap();
    let at = write.node().write("k", "v").unwrap();
    let token = write.committed(at);
    cluster.catch_up(); // nobody tells the set
    let started = tokio::time::Instant::now();
    let r = set
        .route_waiting(
            Intent::Read(Consistency::ReadYourWrites(token)),
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    assert_eq!(r.id(), NodeId(1));
    assert!(started.elapsed() < Duration::from_secs(1));
    assert!(
        calls.load(Ordering::SeqCst) >= 4,
        "periodic + on-demand rounds"
    );
    task.abort();
}

/// The monitor runs the promotion through the hook, and subscribers hear about it.
#[tokio::test(start_paused = true)]
async fn monitor_promotes_through_the_hook_and_publishes_events() {
    struct Counting(Arc<AtomicU32>);
    impl PromotionHook<SimNode> for Counting {
        type Error = SimError;
        async fn promote(&self, node: &SimNode) -> Result<Option<Position>, SimError> {
            self.0.fetch_add(1, Ordering::SeqCst);
            node.promote().map(Some)
        }
    }
    let cluster = SimCluster::new(2);
    let calls = Arc::new(AtomicU32::new(0));
    let set = Arc::new(
        ReplicaSet::builder()
            .primary(NodeId(0), cluster.node(0))
            .replica(NodeId(1), cluster.node(1))
            .promotion_hook(Counting(calls.clone()))
            .config(
                Config::default()
                    .failover_after(Duration::ZERO)
                    .quiet_period(Duration::ZERO),
            )
            .build()
            .unwrap(),
    );
    let mut events = set.subscribe();
    cluster.kill(0).unwrap();
    let task = tokio::spawn(monitor(set.clone(), SimPromote, MonitorOptions::default()));
    let promoted = loop {
        if let Event::Promoted(p) = events.recv().await.unwrap() {
            break p;
        }
    };
    assert_eq!(promoted.new_primary, NodeId(1));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let w = set.route(Intent::Write).unwrap();
    assert_eq!(w.node().write("k", "v").map(|_| ()), Ok(()));
    task.abort();
}
