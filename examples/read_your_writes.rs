//! Read-your-writes over lagging replicas, then a primary failure.
//!
//! ```text
//! cargo run --release --example read_your_writes
//! ```
//!
//! A user updates their profile and reads it back at once, 10,000 times, while two replicas
//! apply the primary's log with random lag. Reading with `Eventual` consistency sometimes shows
//! the old profile (counted); reading with the session token from the write never does, and
//! most of those reads are still served by replicas. Then the primary dies with writes not yet
//! replicated: the most advanced replica is promoted, and the router reports exactly which
//! positions were lost so a recovery script can replay them from the old primary's log.
//! Deterministic (seeded).

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
    let promotion = set.check_failover()?.ok_or("no failover was due")?;
    cluster.promote(promotion.new_primary.0 as usize)?;
    println!(
        "\nprimary {} died; {} promoted in {}",
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
