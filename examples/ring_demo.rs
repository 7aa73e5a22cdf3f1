//! Resharding with consistent hashing, in numbers: balance and key movement of the five
//! tierkit placements when a cluster grows from 10 to 11 nodes (and shrinks back by losing a
//! node in the middle), next to the naive `key % n`.
//!
//! ```text
//! cargo run --release --example ring_demo [-- --keys 1000000]
//! ```
//!
//! Deterministic: the keys are `0..keys` and the hasher uses the default secret, so every run
//! prints the same table.

// Key counts become percentages for display; nothing here is a routing decision.
#![allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]

use clap::Parser;
use tierkit::consistent_hash::{
    BoundedLoad, HashRing, JumpHash, Maglev, Placement, Rendezvous, analysis,
};

const FACTOR: f64 = 1.25;

/// Balance and key movement of the five placements when 10 nodes become 11.
#[derive(Debug, Parser)]
struct Args {
    /// How many keys (`0..keys`) to place.
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    keys: u64,
}

fn main() {
    let keys = Args::parse().keys;
    let ideal = 1.0 / 11.0;

    println!(
        "{keys} keys, 10 -> 11 nodes (ideal movement 1/11 = {:.2}%)\n",
        ideal * 100.0
    );
    println!(
        "{:<22} {:>9} {:>9} {:>9} {:>11} {:>12} {:>14}",
        "algorithm", "max/mean", "std dev", "moved", "to new node", "between old", "remove node 4"
    );

    row("HashRing (160 vnodes)", keys, |nodes| {
        HashRing::from_nodes(nodes.iter().copied())
    });
    row("JumpHash", keys, |nodes| {
        JumpHash::from_nodes(nodes.iter().copied())
    });
    row("Rendezvous", keys, |nodes| {
        Rendezvous::from_nodes(nodes.iter().copied())
    });
    row("Maglev (M = 65,537)", keys, |nodes| {
        Maglev::from_nodes(nodes.iter().copied())
    });
    modulo_row(keys);

    println!(
        "\nmax/mean and std dev: keys per node at 10 nodes (1.00 and 0% are perfect).\n\
         moved: keys whose node changed at 10 -> 11; to new node / between old: where they went\n\
         (a minimal-disruption algorithm moves nothing between old nodes).\n\
         remove node 4: keys moved when node 4 of 11 fails (its own share is ~9.1%).\n\
         JumpHash removes a middle node by moving the last node into its bucket (~2/n moved).\n\
         key % n: the naive scheme, for contrast.\n"
    );
    hot_keys(keys);
}

fn pct(x: f64) -> String {
    format!("{:.2}%", x * 100.0)
}

fn row<P, F>(name: &str, keys: u64, build: F)
where
    P: Placement<u32>,
    F: Fn(&[u32]) -> Result<P, tierkit::consistent_hash::Error>,
{
    let ten: Vec<u32> = (0..10).collect();
    let eleven: Vec<u32> = (0..11).collect();
    let (Ok(before), Ok(after)) = (build(&ten), build(&eleven)) else {
        eprintln!("{name}: could not build");
        return;
    };
    let balance = analysis::balance(&before, 0..keys);
    let grow = analysis::movement(&before, &after, 0..keys);
    let mut shrunk = build(&eleven).expect("built above");
    shrunk.remove(&4);
    let lose = analysis::movement(&after, &shrunk, 0..keys);
    println!(
        "{:<22} {:>9.3} {:>9} {:>9} {:>11} {:>12} {:>14}",
        name,
        balance.max_over_mean,
        pct(balance.relative_std_dev),
        pct(grow.fraction()),
        pct(ratio(grow.to_new, grow.keys)),
        pct(grow.disruption()),
        pct(lose.fraction()),
    );
}

/// A skewed workload: every key is an active assignment (a connection, a session), and one
/// celebrity key accounts for `share` of them. Plain hashing sends all of the celebrity's load
/// to one node; bounded loads spill it over in preference order.
fn hot_keys(keys: u64) {
    let nodes: Vec<u32> = (0..10).collect();
    let ring = HashRing::from_nodes(nodes.iter().copied()).expect("distinct nodes");
    let bounded = BoundedLoad::new(ring.clone(), FACTOR).expect("valid factor");
    println!("hot keys: {keys} active assignments on 10 nodes, one key holding a share of them");
    println!(
        "{:<14} {:>22} {:>28}",
        "celebrity", "HashRing max/mean", "BoundedLoad(1.25) max/mean"
    );
    for share in [0.0, 0.05, 0.2, 0.5] {
        let hot = (keys as f64 * share) as u64;
        let key_of = |k: u64| if k < hot { u64::MAX } else { k };
        let mut plain = vec![0usize; 10];
        for k in 0..keys {
            if let Some(i) = ring.locate_index(ring.hasher().hash(&key_of(k))) {
                plain[i] += 1;
            }
        }
        let guards: Vec<_> = (0..keys)
            .filter_map(|k| bounded.acquire(&key_of(k)))
            .collect();
        let held: Vec<usize> = (0..10).filter_map(|i| bounded.load(i)).collect();
        let mean = keys as f64 / 10.0;
        let max_of = |v: &[usize]| v.iter().copied().max().unwrap_or(0) as f64 / mean;
        println!(
            "{:<14} {:>22.3} {:>28.3}",
            pct(share),
            max_of(&plain),
            max_of(&held)
        );
        drop(guards);
    }
    println!("BoundedLoad keeps every node at or under ceil(1.25 x mean) whatever the skew.");
}

fn modulo_row(keys: u64) {
    let hasher = tierkit::consistent_hash::KeyHasher::DEFAULT;
    let moved = (0..keys)
        .filter(|k| hasher.hash(k) % 10 != hasher.hash(k) % 11)
        .count();
    let lose = (0..keys)
        .filter(|k| {
            let h = hasher.hash(k);
            // Node 4 of 11 fails: the survivors are renumbered 0..10.
            let old = h % 11;
            let new = h % 10;
            let renumbered = if new >= 4 { new + 1 } else { new };
            old != renumbered
        })
        .count();
    println!(
        "{:<22} {:>9} {:>9} {:>9} {:>11} {:>12} {:>14}",
        "key % n (naive)",
        "-",
        "-",
        pct(ratio(moved, keys as usize)),
        "-",
        "-",
        pct(ratio(lose, keys as usize)),
    );
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}
