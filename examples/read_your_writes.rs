//! Read-your-writes over lagging replicas, then a primary failure.
//!
//! ```text
//! cargo run --release --example read_your_writes
//! TIERKIT_SERVERS=postgres .ci/with-servers cargo run --release --example read_your_writes -- --postgres
//! ```
//!
//! A user updates their profile and reads it back at once, 10,000 times, while two replicas
//! apply the primary's log with random lag. Reading with `Eventual` consistency sometimes shows
//! the old profile (counted); reading with the session token from the write never does, and
//! most of those reads are still served by replicas. Then the primary dies with writes not yet
//! replicated: the most advanced replica is promoted, and the router reports exactly which
//! positions were lost so a recovery script can replay them from the old primary's log.
//! Deterministic (seeded).
//!
//! With `--postgres`, the same story on a real PostgreSQL primary and streaming replica
//! (`TIERKIT_PG_PRIMARY`, `TIERKIT_PG_REPLICA`, started by `.ci/with-servers`): 1,000 updates
//! read back at once, eventual reads against read-your-writes reads that wait up to 100 ms for
//! the replica (woken by probes on demand), then monotonic reads by the position each read
//! served. The failover half runs in the crate's tests on a pair of its own
//! (`replication/tests/pg/failover.rs`): stopping the shared primary here would break them.

// Counts become percentages for display.
#![allow(clippy::cast_precision_loss)]

use std::sync::Arc;
use std::time::Duration;

use tierkit::replication::sim::{SimCluster, SimNode};
use tierkit::replication::{
    Config, Consistency, Intent, ManualClock, NodeId, ReplicaSet, SessionToken,
};

const UPDATES: u32 = 10_000;

/// A tiny deterministic generator for lag decisions.
struct Dice(u64);
impl Dice {
    fn roll(&mut self, sides: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % sides
    }
}

fn probe(cluster: &SimCluster, set: &ReplicaSet<SimNode>) {
    for i in 0..3u32 {
        if let Ok(p) = cluster.node(i as usize).position() {
            let _ = set.report_position(NodeId(i), p);
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::args().any(|a| a == "--postgres") {
        return postgres::run();
    }
    let cluster = SimCluster::new(3);
    let clock = Arc::new(ManualClock::new());
    let set = ReplicaSet::builder()
        .primary(NodeId(0), cluster.node(0))
        .replica(NodeId(1), cluster.node(1))
        .replica(NodeId(2), cluster.node(2))
        .clock(clock.clone())
        .config(Config::default().failover_after(Duration::from_secs(5)))
        .build()?;
    let mut dice = Dice(0x5eed);
    let (mut stale_eventual, mut stale_ryw, mut ryw_on_replica) = (0u32, 0u32, 0u32);
    let mut token = SessionToken::default();

    for n in 1..=UPDATES {
        let bio = format!("bio v{n}");
        let write = set.route(Intent::Write)?;
        let at = write.node().write("user:7:bio", &bio)?;
        token = token.max(write.committed(at));

        // Replication runs behind: sometimes nothing arrives before the read.
        if dice.roll(3) != 0 {
            cluster.replicate();
        }
        probe(&cluster, &set);

        let eventual = set.route(Intent::Read(Consistency::Eventual))?;
        if eventual.node().read("user:7:bio")?.as_deref() != Some(bio.as_str()) {
            stale_eventual += 1;
        }
        drop(eventual);

        let ryw = set.route(Intent::Read(Consistency::ReadYourWrites(token)))?;
        if ryw.node().read("user:7:bio")?.as_deref() != Some(bio.as_str()) {
            stale_ryw += 1;
        }
        if !ryw.is_primary() {
            ryw_on_replica += 1;
        }
        // Let replica 2 fall far behind, replica 1 stay close.
        cluster.set_rate(2, usize::try_from(dice.roll(2)).unwrap_or(0))?;
    }
    let pct = |x: u32| f64::from(x) / f64::from(UPDATES) * 100.0;
    println!("{UPDATES} profile updates, each read back at once (replicas lagging):");
    println!(
        "  Eventual reads:       {stale_eventual:>5} stale ({:.1}%)",
        pct(stale_eventual)
    );
    println!(
        "  ReadYourWrites reads: {stale_ryw:>5} stale, {:.1}% of them served by replicas",
        pct(ryw_on_replica)
    );

    // The primary takes three more writes; only one reaches a replica before it dies.
    let mut acknowledged = Vec::new();
    for n in 1..=3 {
        let write = set.route(Intent::Write)?;
        let at = write
            .node()
            .write("user:7:bio", &format!("last words {n}"))?;
        acknowledged.push(write.committed(at).position);
        if n == 1 {
            cluster.set_rate(1, 1)?;
            cluster.replicate();
        }
    }
    probe(&cluster, &set);
    cluster.kill(0)?;
    set.mark_down(NodeId(0))?;
    clock.advance(Duration::from_secs(6));
    let pending = set.check_failover()?.ok_or("no failover was due")?;
    // Until the engine has promoted the candidate, writes fail fast instead of reaching it.
    let refused = set.route(Intent::Write).err();
    let at = cluster.promote(pending.candidate.0 as usize)?;
    let promotion = set.complete_promotion(&pending, Some(at))?;
    println!(
        "\nwhile {} was being promoted, a write got: {}",
        pending.candidate,
        refused.map_or_else(|| "a route (bug)".to_owned(), |e| e.to_string())
    );
    println!(
        "primary {} died; {} promoted in {}",
        NodeId(0),
        promotion.new_primary,
        promotion.epoch
    );
    match promotion.lost {
        Some(lost) => {
            let lost_acks: Vec<_> = acknowledged.iter().filter(|p| lost.contains(**p)).collect();
            println!(
                "  lost-write window: positions {} to {} ({} writes acknowledged by the old primary, \
                 never replicated): {lost_acks:?}",
                lost.after.0 + 1,
                lost.through.0,
                lost.len()
            );
        }
        None => println!("  no acknowledged write was lost"),
    }
    let after = set.route(Intent::Read(Consistency::ReadYourWrites(token)))?;
    println!(
        "  the session's next read goes to {} ({:?}): its token is from {} and may name a lost write",
        after.id(),
        after.fallback(),
        token.epoch
    );
    if stale_ryw > 0 {
        return Err("read-your-writes returned stale data".into());
    }
    Ok(())
}

mod postgres {
    //! The `--postgres` mode.

    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use tierkit::replication::pg::{Node, Probe, Read, Write};
    use tierkit::replication::{
        Consistency, Intent, MonitorOptions, NodeId, Position, ReplicaSet, monitor,
    };

    const UPDATES: u32 = 1_000;

    fn env(name: &str) -> Result<String, String> {
        std::env::var(name).map_err(|_| {
            format!(
                "{name} is not set: start the servers with \
                 `TIERKIT_SERVERS=postgres .ci/with-servers cargo run --release --example \
                 read_your_writes -- --postgres`"
            )
        })
    }

    pub(super) fn run() -> Result<(), Box<dyn std::error::Error>> {
        let (primary, replica) = (env("TIERKIT_PG_PRIMARY")?, env("TIERKIT_PG_REPLICA")?);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        rt.block_on(story(primary, replica))
    }

    async fn story(primary: String, replica: String) -> Result<(), Box<dyn std::error::Error>> {
        let set = Arc::new(
            ReplicaSet::builder()
                .primary(NodeId(0), Node::new(primary))
                .replica(NodeId(1), Node::new(replica))
                .build()?,
        );
        let options = MonitorOptions::default()
            .interval(Duration::from_millis(50))
            .auto_failover(false);
        let probes = tokio::spawn(monitor(set.clone(), Probe, options));
        let setup = Write::begin(set.route(Intent::Write)?).await?;
        setup
            .batch_execute(
                "CREATE TABLE IF NOT EXISTS example_profile (id int PRIMARY KEY, bio text);
                 INSERT INTO example_profile VALUES (7, 'bio v0') ON CONFLICT (id) DO NOTHING",
            )
            .await?;
        setup.commit().await?;

        let (mut stale_eventual, mut stale_ryw, mut ryw_on_replica) = (0u32, 0u32, 0u32);
        let mut waited = Duration::ZERO;
        let started = Instant::now();
        for n in 1..=UPDATES {
            let bio = format!("bio v{n}");
            let w = Write::begin(set.route(Intent::Write)?).await?;
            w.execute("UPDATE example_profile SET bio = $1 WHERE id = 7", &[&bio])
                .await?;
            let token = w.commit().await?;

            let r = Read::begin(set.route(Intent::Read(Consistency::Eventual))?).await?;
            let row = r
                .query_one("SELECT bio FROM example_profile WHERE id = 7", &[])
                .await?;
            if row.get::<_, String>(0) != bio {
                stale_eventual += 1;
            }
            r.finish().await?;

            let t = Instant::now();
            let route = set
                .route_waiting(
                    Intent::Read(Consistency::ReadYourWrites(token)),
                    Duration::from_millis(100),
                )
                .await?;
            waited += t.elapsed();
            if !route.is_primary() {
                ryw_on_replica += 1;
            }
            let r = Read::begin(route).await?;
            let row = r
                .query_one("SELECT bio FROM example_profile WHERE id = 7", &[])
                .await?;
            if row.get::<_, String>(0) != bio {
                stale_ryw += 1;
            }
            r.finish().await?;
        }
        let pct = |x: u32| f64::from(x) / f64::from(UPDATES) * 100.0;
        println!(
            "PostgreSQL primary + streaming replica: {UPDATES} profile updates, each read back at once ({:.1} s)",
            started.elapsed().as_secs_f64()
        );
        println!(
            "  Eventual reads:       {stale_eventual:>5} stale ({:.1}%)",
            pct(stale_eventual)
        );
        println!(
            "  ReadYourWrites reads: {stale_ryw:>5} stale, {:.1}% served by the replica \
             (waited {:.2} ms on average for it)",
            pct(ryw_on_replica),
            waited.as_secs_f64() * 1e3 / f64::from(UPDATES)
        );

        // Monotonic reads by served position, alternating with eventual reads.
        let mut session = Position(0);
        let (mut backwards, mut last_seen) = (0u32, 0i32);
        for i in 0..UPDATES {
            let consistency = if i % 2 == 0 {
                Consistency::MonotonicReads(session)
            } else {
                Consistency::Primary
            };
            let r = Read::begin(set.route(Intent::Read(consistency))?).await?;
            let row = r
                .query_one(
                    "SELECT substr(bio, 6)::int FROM example_profile WHERE id = 7",
                    &[],
                )
                .await?;
            let seen: i32 = row.get(0);
            if seen < last_seen {
                backwards += 1;
            }
            last_seen = last_seen.max(seen);
            session = session.max(r.finish().await?);
        }
        println!("  MonotonicReads:       {backwards:>5} went backwards in {UPDATES} reads");
        probes.abort();
        if stale_ryw > 0 || backwards > 0 {
            return Err("a guarantee failed on PostgreSQL".into());
        }
        Ok(())
    }
}
