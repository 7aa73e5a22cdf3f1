//! [`HashRing`]: consistent hashing on a ring of virtual nodes.

use crate::placement::Distinct;
use crate::{Error, Key, KeyHasher, Placement, Result};

/// Consistent hashing on a ring (Karger et al., 1997) with virtual nodes and weights.
///
/// Each node owns `weight × vnodes` points on a 64-bit ring, at `SipHash(node bytes ‖ i)` for
/// `i` in `0..weight × vnodes` (the index as a little-endian `u32`). A key belongs to the first
/// point at or after its hash, wrapping around. Points are kept in one sorted `Vec<u64>` with the
/// owners in a parallel array. A radix index over the top bits of the hash (about one point per
/// bucket) narrows each lookup to a bucket before a search within it, so a lookup costs one index
/// read and typically one or two comparisons: O(1) expected, O(log V) worst case, allocation-free.
///
/// Adding a node moves keys only to that node, and about `1 / (n + 1)` of them; removing a node
/// moves only the keys it owned. Membership changes merge or filter the point arrays in O(V)
/// instead of rebuilding and re-sorting them. Placement depends only on the set of nodes, not on
/// the order they were added.
///
/// Balance improves with the number of virtual nodes: at the default of 160 (the figure
/// ketama-compatible clients use) and 100 equal nodes, the most loaded node holds about 1.2× the
/// mean number of keys; see the crate README for measured figures and [`analysis`] to measure
/// your own.
///
/// [`analysis`]: crate::analysis
///
/// # Examples
///
/// ```
/// use tierkit_consistent_hash::{HashRing, Placement};
///
/// # fn main() -> Result<(), tierkit_consistent_hash::Error> {
/// let mut ring = HashRing::<String>::builder().vnodes(100).build()?;
/// ring.add("cache-1".to_string())?;
/// ring.add_weighted("cache-2-big".to_string(), 2)?; // twice the keys of cache-1
///
/// let owner = ring.locate("session:9f2c").expect("ring is not empty");
/// // The preference list: where the key's replicas go, in order.
/// let replicas = ring.locate_n("session:9f2c", 2);
/// assert_eq!(replicas[0], owner);
/// assert_ne!(replicas[0], replicas[1]);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct HashRing<N> {
    hasher: KeyHasher,
    vnodes: u32,
    nodes: Vec<N>,
    weights: Vec<u32>,
    /// Sorted ring points.
    points: Vec<u64>,
    /// `owners[i]` is the index in `nodes` of the node owning `points[i]`.
    owners: Vec<u32>,
    /// Radix index: `index[b]` is the first point `>= b << (64 - index_bits)`; one extra entry at
    /// the end holds `points.len()`.
    index: Vec<u32>,
    index_bits: u32,
}

/// Configures a [`HashRing`].
///
/// # Examples
///
/// ```
/// use tierkit_consistent_hash::{HashRing, KeyHasher};
///
/// # fn main() -> Result<(), tierkit_consistent_hash::Error> {
/// let ring = HashRing::builder()
///     .vnodes(256)
///     .hasher(KeyHasher::with_secret(1, 2))
///     .nodes(["a", "b", "c"])
///     .build()?;
/// # let _ = ring;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct HashRingBuilder<N> {
    hasher: KeyHasher,
    vnodes: u32,
    nodes: Vec<(N, u32)>,
}

impl<N> Default for HashRingBuilder<N> {
    fn default() -> Self {
        HashRingBuilder {
            hasher: KeyHasher::DEFAULT,
            vnodes: HashRing::<N>::DEFAULT_VNODES,
            nodes: Vec::new(),
        }
    }
}

impl<N> HashRingBuilder<N> {
    /// Virtual nodes per unit of weight (default 160). More points mean better balance and a
    /// larger, slower-to-search ring.
    pub fn vnodes(mut self, vnodes: u32) -> Self {
        self.vnodes = vnodes;
        self
    }

    /// The hasher for keys and node points (default [`KeyHasher::DEFAULT`]).
    pub fn hasher(mut self, hasher: KeyHasher) -> Self {
        self.hasher = hasher;
        self
    }

    /// Initial nodes, each of weight 1.
    pub fn nodes<I: IntoIterator<Item = N>>(mut self, nodes: I) -> Self {
        self.nodes.extend(nodes.into_iter().map(|n| (n, 1)));
        self
    }

    /// One initial node with a weight.
    pub fn weighted_node(mut self, node: N, weight: u32) -> Self {
        self.nodes.push((node, weight));
        self
    }

    /// Builds the ring.
    ///
    /// # Errors
    /// [`Error::ZeroVirtualNodes`], and for any initial node the errors of
    /// [`Placement::add_weighted`].
    pub fn build(self) -> Result<HashRing<N>>
    where
        N: Key + PartialEq,
    {
        if self.vnodes == 0 {
            return Err(Error::ZeroVirtualNodes);
        }
        let mut ring = HashRing {
            hasher: self.hasher,
            vnodes: self.vnodes,
            nodes: Vec::new(),
            weights: Vec::new(),
            points: Vec::new(),
            owners: Vec::new(),
            index: vec![0, 0],
            index_bits: 1,
        };
        for (node, weight) in self.nodes {
            ring.add_weighted(node, weight)?;
        }
        Ok(ring)
    }
}

impl<N> HashRing<N> {
    /// Virtual nodes per unit of weight unless configured otherwise.
    pub const DEFAULT_VNODES: u32 = 160;

    /// The most points one node may own (weight × vnodes), which bounds the cost of an `add`.
    pub const MAX_POINTS_PER_NODE: u64 = 1 << 20;

    /// A builder with the defaults: 160 virtual nodes, [`KeyHasher::DEFAULT`], no nodes.
    pub fn builder() -> HashRingBuilder<N> {
        HashRingBuilder::default()
    }

    /// Virtual nodes per unit of weight.
    #[must_use]
    pub fn vnodes(&self) -> u32 {
        self.vnodes
    }

    /// Total number of points on the ring.
    #[must_use]
    pub fn point_count(&self) -> usize {
        self.points.len()
    }
}

impl<N: Key + PartialEq> HashRing<N> {
    /// An empty ring with the defaults.
    #[must_use]
    pub fn new() -> Self {
        HashRing {
            hasher: KeyHasher::DEFAULT,
            vnodes: Self::DEFAULT_VNODES,
            nodes: Vec::new(),
            weights: Vec::new(),
            points: Vec::new(),
            owners: Vec::new(),
            index: vec![0, 0],
            index_bits: 1,
        }
    }

    /// A ring with the defaults and these nodes, each of weight 1.
    ///
    /// # Errors
    /// [`Error::DuplicateNode`] if a node appears twice.
    pub fn from_nodes<I: IntoIterator<Item = N>>(nodes: I) -> Result<Self> {
        Self::builder().nodes(nodes).build()
    }

    /// Changes a member's weight, moving keys only to or from that node. Returns `Ok(false)` if
    /// `node` is not a member.
    ///
    /// # Errors
    /// As [`Placement::add_weighted`]; on error nothing changes.
    pub fn set_weight(&mut self, node: &N, weight: u32) -> Result<bool> {
        if self.index_of(node).is_none() {
            return Ok(false);
        }
        self.check_weight(weight)?;
        if let Some(removed) = self.remove(node) {
            // Re-adding cannot fail: the weight was checked and the node was just a member.
            self.add_weighted(removed, weight)?;
        }
        Ok(true)
    }

    /// Rebuilds the radix index after the points changed: O(V + 2^bits).
    fn reindex(&mut self) {
        // About one point per bucket, between 2 and 2^20 buckets (4 MiB at most).
        let bits = self
            .points
            .len()
            .max(2)
            .next_power_of_two()
            .trailing_zeros()
            .clamp(1, 20);
        let buckets = 1usize << bits;
        let shift = 64 - bits;
        let mut index = Vec::with_capacity(buckets + 1);
        let mut p = 0usize;
        for b in 0..buckets {
            let low = (b as u64) << shift;
            while p < self.points.len() && self.points[p] < low {
                p += 1;
            }
            // The point count is bounded by u32 node indices times MAX_POINTS_PER_NODE, and
            // practical rings are far below 2^32 points.
            index.push(u32::try_from(p).unwrap_or(u32::MAX));
        }
        index.push(u32::try_from(self.points.len()).unwrap_or(u32::MAX));
        self.index = index;
        self.index_bits = bits;
    }

    fn check_weight(&self, weight: u32) -> Result<u32> {
        if weight == 0 {
            return Err(Error::ZeroWeight);
        }
        let points = u64::from(weight) * u64::from(self.vnodes);
        if points > Self::MAX_POINTS_PER_NODE {
            return Err(Error::TooManyPoints {
                weight,
                vnodes: self.vnodes,
                limit: Self::MAX_POINTS_PER_NODE,
            });
        }
        // Bounded by MAX_POINTS_PER_NODE above.
        u32::try_from(points).map_err(|_| Error::TooManyPoints {
            weight,
            vnodes: self.vnodes,
            limit: Self::MAX_POINTS_PER_NODE,
        })
    }
}

impl<N> HashRing<N> {
    /// The first point `>= hash`, or `points.len()` if there is none (wrap to 0).
    #[inline]
    fn successor(&self, hash: u64) -> usize {
        // At most 20 bits remain after the shift, so the bucket fits in any usize.
        #[allow(clippy::cast_possible_truncation)]
        let bucket = (hash >> (64 - self.index_bits)) as usize;
        match (self.index.get(bucket), self.index.get(bucket + 1)) {
            (Some(&lo), Some(&hi)) => {
                let (lo, hi) = (lo as usize, hi as usize);
                // Points below `lo` are below the bucket, points from `hi` on are above it.
                self.points
                    .get(lo..hi)
                    .map_or(hi, |within| lo + within.partition_point(|&p| p < hash))
            }
            _ => self.points.partition_point(|&p| p < hash),
        }
    }
}

impl<N: Key + PartialEq> Default for HashRing<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<N: Key + PartialEq> Placement<N> for HashRing<N> {
    fn hasher(&self) -> &KeyHasher {
        &self.hasher
    }

    fn nodes(&self) -> &[N] {
        &self.nodes
    }

    fn weight(&self, index: usize) -> Option<u32> {
        self.weights.get(index).copied()
    }

    #[inline]
    fn locate_index(&self, hash: u64) -> Option<usize> {
        let slot = self.successor(hash);
        let slot = if slot == self.points.len() { 0 } else { slot };
        self.owners.get(slot).map(|&o| o as usize)
    }

    fn preference_indices(&self, hash: u64, n: usize, out: &mut Vec<usize>) {
        out.clear();
        let want = n.min(self.nodes.len());
        if want == 0 {
            return;
        }
        let mut distinct = Distinct::new(want, self.nodes.len());
        let start = self.successor(hash);
        // Walk clockwise from the key's point; every node appears somewhere on the ring, so one
        // full turn finds all of them.
        let (after, before) = self.owners.split_at(start);
        for &owner in before.iter().chain(after) {
            distinct.push(owner as usize, out);
            if out.len() == want {
                break;
            }
        }
    }

    fn add_weighted(&mut self, node: N, weight: u32) -> Result<()> {
        let count = self.check_weight(weight)?;
        if let Some(index) = self.index_of(&node) {
            return Err(Error::DuplicateNode { index });
        }
        let index = u32::try_from(self.nodes.len()).map_err(|_| Error::TooManyNodes {
            limit: u32::MAX as usize,
        })?;
        let mut fresh: Vec<u64> = (0..count)
            .map(|i| self.hasher.hash_with_suffix(&node, i))
            .collect();
        fresh.sort_unstable();

        // Merge the new points into the ring in one pass. Equal points (a 64-bit collision) go
        // to the node whose point hash list sorts first, which does not depend on insertion
        // order: we compare the owners' first-point hashes as a stable tie-break.
        let mut points = Vec::with_capacity(self.points.len() + fresh.len());
        let mut owners = Vec::with_capacity(points.capacity());
        let (mut i, mut j) = (0, 0);
        let new_rank = self.hasher.hash(&node);
        while i < self.points.len() || j < fresh.len() {
            let take_old = match (self.points.get(i), fresh.get(j)) {
                (Some(&a), Some(&b)) if a == b => {
                    let old_rank = self.hasher.hash(&self.nodes[self.owners[i] as usize]);
                    old_rank <= new_rank
                }
                (Some(&a), Some(&b)) => a < b,
                (Some(_), None) => true,
                _ => false,
            };
            if take_old {
                points.push(self.points[i]);
                owners.push(self.owners[i]);
                i += 1;
            } else {
                points.push(fresh[j]);
                owners.push(index);
                j += 1;
            }
        }
        self.points = points;
        self.owners = owners;
        self.reindex();
        self.nodes.push(node);
        self.weights.push(weight);
        Ok(())
    }

    fn remove(&mut self, node: &N) -> Option<N> {
        let index = self.index_of(node)?;
        let gone = u32::try_from(index).ok()?;
        let mut kept = 0;
        for k in 0..self.points.len() {
            let owner = self.owners[k];
            if owner != gone {
                self.points[kept] = self.points[k];
                // Nodes after the removed one shift down by one.
                self.owners[kept] = if owner > gone { owner - 1 } else { owner };
                kept += 1;
            }
        }
        self.points.truncate(kept);
        self.owners.truncate(kept);
        self.reindex();
        self.weights.remove(index);
        Some(self.nodes.remove(index))
    }
}

impl<N> std::fmt::Debug for HashRing<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HashRing")
            .field("nodes", &self.nodes.len())
            .field("vnodes", &self.vnodes)
            .field("points", &self.points.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_stay_sorted_and_owned_after_churn() {
        let mut ring = HashRing::<u32>::builder().vnodes(8).build().expect("valid");
        for n in 0..20u32 {
            ring.add_weighted(n, 1 + n % 3).expect("fresh node");
        }
        for n in (0..20u32).step_by(3) {
            assert_eq!(ring.remove(&n), Some(n));
        }
        assert!(ring.points.windows(2).all(|w| w[0] <= w[1]));
        let expected: u32 = ring.weights.iter().map(|w| w * 8).sum();
        assert_eq!(ring.points.len(), expected as usize);
        assert!(ring.owners.iter().all(|&o| (o as usize) < ring.nodes.len()));
        // Every point belongs to the node that hashes there.
        for (p, &o) in ring.points.iter().zip(&ring.owners) {
            let node = &ring.nodes[o as usize];
            let w = ring.weights[o as usize];
            assert!((0..w * 8).any(|i| ring.hasher.hash_with_suffix(node, i) == *p));
        }
    }

    #[test]
    fn radix_index_agrees_with_a_plain_search() {
        for n in [1u32, 2, 7, 100] {
            let ring = HashRing::<u32>::builder()
                .vnodes(13)
                .nodes(0..n)
                .build()
                .expect("valid");
            let mut h = 0x1234_5678_9abc_def0u64;
            for _ in 0..20_000 {
                h = crate::hasher::mix64(h.wrapping_add(1));
                for probe in [
                    h,
                    h & !0xffff,
                    ring.points[usize::try_from(h % u64::from(n)).expect("small")],
                ] {
                    assert_eq!(
                        ring.successor(probe),
                        ring.points.partition_point(|&p| p < probe)
                    );
                }
            }
            assert_eq!(
                ring.successor(u64::MAX),
                ring.points.partition_point(|&p| p < u64::MAX)
            );
            assert_eq!(ring.successor(0), 0);
        }
    }

    #[test]
    fn insertion_order_does_not_matter() {
        let a = HashRing::from_nodes(["x", "y", "z"]).expect("valid");
        let b = HashRing::from_nodes(["z", "x", "y"]).expect("valid");
        for k in 0..1000u32 {
            assert_eq!(a.locate(&k), b.locate(&k));
        }
    }

    #[test]
    fn set_weight_changes_the_point_count() {
        let mut ring = HashRing::from_nodes(["a", "b"]).expect("valid");
        assert_eq!(ring.set_weight(&"a", 3), Ok(true));
        assert_eq!(ring.point_count(), 4 * 160);
        assert_eq!(ring.set_weight(&"zz", 3), Ok(false));
        assert_eq!(ring.set_weight(&"a", 0), Err(Error::ZeroWeight));
        assert_eq!(ring.point_count(), 4 * 160);
    }
}
