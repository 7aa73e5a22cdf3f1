//! Measure a placement before you trust it: per-node load, balance and key movement.
//!
//! Pick a virtual-node count, a Maglev table size or an algorithm with data from your own key
//! sample:
//!
//! ```
//! use tierkit_consistent_hash::{analysis, HashRing, Maglev, Placement};
//!
//! # fn main() -> Result<(), tierkit_consistent_hash::Error> {
//! let nodes: Vec<u32> = (0..10).collect();
//! let keys = 0..100_000u64;
//!
//! let ring = HashRing::from_nodes(nodes.clone())?;
//! let balance = analysis::balance(&ring, keys.clone());
//! assert!(balance.max_over_mean < 1.5);
//!
//! let mut grown = ring.clone();
//! grown.add(10)?;
//! let moved = analysis::movement(&ring, &grown, keys);
//! // About 1/11 of the keys move, and all of them to the new node.
//! assert!((moved.fraction() - 1.0 / 11.0).abs() < 0.02);
//! assert_eq!(moved.between_existing, 0);
//! # Ok(())
//! # }
//! ```

use crate::{Key, Placement};

/// How evenly a key sample spreads over the nodes of a placement.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Balance {
    /// Keys per node, by node index.
    pub loads: Vec<usize>,
    /// Keys in the sample.
    pub keys: usize,
    /// Mean keys per node.
    pub mean: f64,
    /// The most loaded node's keys divided by the mean (1.0 is perfect).
    pub max_over_mean: f64,
    /// The least loaded node's keys divided by the mean.
    pub min_over_mean: f64,
    /// Standard deviation of the per-node load, relative to the mean (coefficient of variation).
    pub relative_std_dev: f64,
    /// The largest ratio of a node's share of keys to its share of the total weight (1.0 is
    /// perfect; equals `max_over_mean` when all weights are equal).
    pub max_over_weighted_share: f64,
}

/// Where keys went between two placements.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Movement {
    /// Keys in the sample.
    pub keys: usize,
    /// Keys whose node differs between the two placements.
    pub moved: usize,
    /// Moved keys whose new node was not a member before (a new node taking its share).
    pub to_new: usize,
    /// Moved keys whose old node was not a member after (a removed node's keys).
    pub from_removed: usize,
    /// Moved keys that went from a node present before AND after to another such node: movement
    /// a minimal-disruption algorithm avoids.
    pub between_existing: usize,
}

impl Movement {
    /// The fraction of keys that moved.
    #[must_use]
    pub fn fraction(&self) -> f64 {
        ratio(self.moved, self.keys)
    }

    /// The fraction of keys that moved between nodes present in both placements.
    #[must_use]
    pub fn disruption(&self) -> f64 {
        ratio(self.between_existing, self.keys)
    }
}

#[allow(clippy::cast_precision_loss)]
fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// Places every key of the sample and reports the per-node load and balance figures.
/// An empty placement or sample gives zero loads and ratios of 0.
#[allow(clippy::cast_precision_loss)]
pub fn balance<N, P, K, I>(placement: &P, keys: I) -> Balance
where
    P: Placement<N> + ?Sized,
    K: Key,
    I: IntoIterator<Item = K>,
{
    let n = placement.len();
    let mut loads = vec![0usize; n];
    let mut total = 0usize;
    for key in keys {
        let index = placement.locate_index(placement.hasher().hash(&key));
        if let Some(l) = index.and_then(|i| loads.get_mut(i)) {
            *l += 1;
            total += 1;
        }
    }
    let mean = if n == 0 { 0.0 } else { total as f64 / n as f64 };
    let max = loads.iter().copied().max().unwrap_or(0) as f64;
    let min = loads.iter().copied().min().unwrap_or(0) as f64;
    let variance = if n == 0 {
        0.0
    } else {
        loads
            .iter()
            .map(|&l| (l as f64 - mean).powi(2))
            .sum::<f64>()
            / n as f64
    };
    let weight_sum: f64 = (0..n)
        .map(|i| f64::from(placement.weight(i).unwrap_or(1)))
        .sum();
    let max_over_weighted_share = (0..n)
        .map(|i| {
            let share = ratio(loads[i], total);
            let expected = f64::from(placement.weight(i).unwrap_or(1)) / weight_sum;
            share / expected
        })
        .fold(0.0, f64::max);
    let rel = |x: f64| if mean > 0.0 { x / mean } else { 0.0 };
    Balance {
        keys: total,
        mean,
        max_over_mean: rel(max),
        min_over_mean: rel(min),
        relative_std_dev: rel(variance.sqrt()),
        max_over_weighted_share,
        loads,
    }
}

/// Places every key of the sample in both placements and counts what moved, and where.
///
/// Nodes are matched by equality, so the two placements may differ in membership, algorithm or
/// configuration (compare a ring at 100 vnodes with one at 200, or a ring with Maglev).
pub fn movement<N, A, B, K, I>(before: &A, after: &B, keys: I) -> Movement
where
    N: PartialEq,
    A: Placement<N> + ?Sized,
    B: Placement<N> + ?Sized,
    K: Key,
    I: IntoIterator<Item = K>,
{
    let mut m = Movement {
        keys: 0,
        moved: 0,
        to_new: 0,
        from_removed: 0,
        between_existing: 0,
    };
    // Which nodes exist on only one side, computed once rather than per key.
    let is_new: Vec<bool> = after
        .nodes()
        .iter()
        .map(|n| !before.nodes().contains(n))
        .collect();
    let is_gone: Vec<bool> = before
        .nodes()
        .iter()
        .map(|n| !after.nodes().contains(n))
        .collect();
    for key in keys {
        m.keys += 1;
        let old = before.locate_index(before.hasher().hash(&key));
        let new = after.locate_index(after.hasher().hash(&key));
        let (old_node, new_node) = (
            old.and_then(|i| before.node(i)),
            new.and_then(|i| after.node(i)),
        );
        if old_node == new_node {
            continue;
        }
        m.moved += 1;
        let to_new = new.is_some_and(|i| is_new.get(i).copied().unwrap_or(false));
        let from_gone = old.is_some_and(|i| is_gone.get(i).copied().unwrap_or(false));
        m.to_new += usize::from(to_new);
        m.from_removed += usize::from(from_gone);
        if !to_new && !from_gone && old.is_some() && new.is_some() {
            m.between_existing += 1;
        }
    }
    m
}
