//! [`Maglev`]: Google's Maglev lookup table.

use crate::hasher::reduce;
use crate::placement::Distinct;
use crate::{Error, Key, KeyHasher, Placement, Result};

/// Maglev hashing (Eisenbud et al., "Maglev: A Fast and Reliable Software Network Load
/// Balancer", NSDI 2016): a lookup table of prime size `M` that nodes fill in turns, each
/// following its own permutation of the slots. A lookup is one multiply and one table read,
/// O(1), allocation-free, and the fastest algorithm here at every node count.
///
/// Balance is near perfect: every node gets `⌊M/n⌋` or `⌈M/n⌉` slots (with weights, a share of
/// slots proportional to its weight). The trade-off is movement: adding or removing a node also
/// shifts a small fraction of slots between the other nodes. With the default `M = 65,537` and
/// 10 → 11 nodes about 1-2% of keys move between old nodes on top of the `1/11` that must move
/// to the new one (measured by the crate's tests and `ring_demo` example). Keep `M` at least
/// 100× the node count for that to hold, as the paper recommends.
///
/// Nodes fill the table in the order of their hashes, so placement depends on the set of nodes
/// and not on the order they were added. Every membership change rebuilds the table: O(M log M)
/// on average, about a millisecond at the default size.
///
/// # Examples
///
/// ```
/// use tierkit_consistent_hash::{Maglev, Placement};
///
/// # fn main() -> Result<(), tierkit_consistent_hash::Error> {
/// let maglev = Maglev::builder()
///     .table_size(65_537)
///     .nodes(["lb-1", "lb-2", "lb-3"])
///     .build()?;
/// assert!(maglev.locate("flow:10.0.0.1:443").is_some());
///
/// // Sizes must be prime.
/// assert!(Maglev::<&str>::builder().table_size(65_536).build().is_err());
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Maglev<N> {
    hasher: KeyHasher,
    size: usize,
    nodes: Vec<N>,
    weights: Vec<u32>,
    /// Per node: (offset, skip) of its permutation, and its node hash (the fill order).
    perms: Vec<Permutation>,
    /// Slot -> node index. Empty when there are no nodes.
    table: Vec<u16>,
}

#[derive(Debug, Clone, Copy)]
struct Permutation {
    offset: usize,
    skip: usize,
    rank: u64,
}

/// Configures a [`Maglev`] table.
///
/// # Examples
///
/// ```
/// use tierkit_consistent_hash::Maglev;
///
/// # fn main() -> Result<(), tierkit_consistent_hash::Error> {
/// let small = Maglev::builder().table_size(5_003).nodes(0..20u32).build()?;
/// # let _ = small;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct MaglevBuilder<N> {
    hasher: KeyHasher,
    size: usize,
    nodes: Vec<(N, u32)>,
}

impl<N> Default for MaglevBuilder<N> {
    fn default() -> Self {
        MaglevBuilder {
            hasher: KeyHasher::DEFAULT,
            size: Maglev::<N>::DEFAULT_TABLE_SIZE,
            nodes: Vec::new(),
        }
    }
}

impl<N> MaglevBuilder<N> {
    /// The table size: a prime between [`Maglev::MIN_TABLE_SIZE`] and
    /// [`Maglev::MAX_TABLE_SIZE`] (default 65,537). It also caps the node count.
    pub fn table_size(mut self, size: usize) -> Self {
        self.size = size;
        self
    }

    /// The hasher for keys and node permutations (default [`KeyHasher::DEFAULT`]).
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

    /// Validates the configuration and builds the table once.
    ///
    /// # Errors
    /// [`Error::TableSizeNotPrime`], [`Error::TableSizeOutOfRange`], and for the nodes
    /// [`Error::ZeroWeight`], [`Error::DuplicateNode`] and [`Error::TooManyNodes`].
    pub fn build(self) -> Result<Maglev<N>>
    where
        N: Key + PartialEq,
    {
        let (min, max) = (Maglev::<N>::MIN_TABLE_SIZE, Maglev::<N>::MAX_TABLE_SIZE);
        if !(min..=max).contains(&self.size) {
            return Err(Error::TableSizeOutOfRange {
                size: self.size,
                min,
                max,
            });
        }
        if !is_prime(self.size) {
            return Err(Error::TableSizeNotPrime { size: self.size });
        }
        let mut maglev = Maglev {
            hasher: self.hasher,
            size: self.size,
            nodes: Vec::new(),
            weights: Vec::new(),
            perms: Vec::new(),
            table: Vec::new(),
        };
        for (node, weight) in self.nodes {
            maglev.insert(node, weight)?;
        }
        maglev.populate();
        Ok(maglev)
    }
}

impl<N> Maglev<N> {
    /// The default table size, a prime that keeps balance and movement good up to ~650 nodes.
    pub const DEFAULT_TABLE_SIZE: usize = 65_537;
    /// The smallest accepted table size.
    pub const MIN_TABLE_SIZE: usize = 7;
    /// The largest accepted table size (a larger table costs memory and rebuild time for no gain).
    pub const MAX_TABLE_SIZE: usize = 1 << 24;
    /// The most nodes any Maglev table holds (slots store a 16-bit node index).
    pub const MAX_NODES: usize = u16::MAX as usize;

    /// A builder with the defaults: table size 65,537, [`KeyHasher::DEFAULT`], no nodes.
    pub fn builder() -> MaglevBuilder<N> {
        MaglevBuilder::default()
    }

    /// The table size `M`.
    #[must_use]
    pub fn table_size(&self) -> usize {
        self.size
    }

    /// How many slots each node owns, by node index: its exact share of keys, up to hashing.
    #[must_use]
    pub fn slot_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.nodes.len()];
        for &slot in &self.table {
            if let Some(c) = counts.get_mut(usize::from(slot)) {
                *c += 1;
            }
        }
        counts
    }

    fn node_limit(&self) -> usize {
        self.size.min(Self::MAX_NODES)
    }

    /// Fills the table: nodes take turns in the order of their hashes, each claiming (per turn)
    /// the next free slot of its permutation. With weights, after `r` rounds a node of weight `w`
    /// has had `ceil(r * w / w_max)` turns: proportional to its weight, and every node has a turn
    /// in the first round, so every node owns a slot whenever `n <= M`.
    fn populate(&mut self) {
        self.table.clear();
        if self.nodes.is_empty() {
            return;
        }
        const EMPTY: u16 = u16::MAX;
        let m = self.size;
        let mut order: Vec<usize> = (0..self.nodes.len()).collect();
        order.sort_by_key(|&i| (self.perms[i].rank, i));
        let mut position: Vec<usize> = self.perms.iter().map(|p| p.offset).collect();
        let mut table = vec![EMPTY; m];
        let w_max = u64::from(self.weights.iter().copied().max().unwrap_or(1));
        let turns_after = |round: u64, w: u32| (round * u64::from(w)).div_ceil(w_max);
        let mut filled = 0;
        let mut round = 0u64;
        'rounds: loop {
            round += 1;
            for &i in &order {
                let skip = self.perms[i].skip;
                let w = self.weights[i];
                for _ in turns_after(round - 1, w)..turns_after(round, w) {
                    // Each permutation visits every slot (skip and m are coprime), so a free slot
                    // is found within m steps while the table has one.
                    while table[position[i]] != EMPTY {
                        position[i] = (position[i] + skip) % m;
                    }
                    // `i < node_limit() <= u16::MAX`, so the index fits and is never EMPTY.
                    table[position[i]] = u16::try_from(i).unwrap_or(EMPTY - 1);
                    position[i] = (position[i] + skip) % m;
                    filled += 1;
                    if filled == m {
                        break 'rounds;
                    }
                }
            }
        }
        self.table = table;
    }

    fn permutation(&self, node: &N) -> Permutation
    where
        N: Key,
    {
        let m = self.size as u64;
        Permutation {
            offset: usize::try_from(self.hasher.hash_with_suffix(node, 0) % m).unwrap_or(0),
            skip: usize::try_from(self.hasher.hash_with_suffix(node, 1) % (m - 1)).unwrap_or(0) + 1,
            rank: self.hasher.hash(node),
        }
    }

    /// Adds a node without rebuilding the table.
    fn insert(&mut self, node: N, weight: u32) -> Result<()>
    where
        N: Key + PartialEq,
    {
        if weight == 0 {
            return Err(Error::ZeroWeight);
        }
        if let Some(index) = self.nodes.iter().position(|n| *n == node) {
            return Err(Error::DuplicateNode { index });
        }
        if self.nodes.len() >= self.node_limit() {
            return Err(Error::TooManyNodes {
                limit: self.node_limit(),
            });
        }
        self.perms.push(self.permutation(&node));
        self.nodes.push(node);
        self.weights.push(weight);
        Ok(())
    }
}

impl<N: Key + PartialEq> Maglev<N> {
    /// An empty table of the default size.
    #[must_use]
    pub fn new() -> Self {
        Maglev {
            hasher: KeyHasher::DEFAULT,
            size: Self::DEFAULT_TABLE_SIZE,
            nodes: Vec::new(),
            weights: Vec::new(),
            perms: Vec::new(),
            table: Vec::new(),
        }
    }

    /// A table of the default size over these nodes, each of weight 1.
    ///
    /// # Errors
    /// [`Error::DuplicateNode`], or [`Error::TooManyNodes`] beyond 65,535 nodes.
    pub fn from_nodes<I: IntoIterator<Item = N>>(nodes: I) -> Result<Self> {
        Self::builder().nodes(nodes).build()
    }

    /// Changes a member's weight and rebuilds the table. Returns `Ok(false)` if `node` is not a
    /// member.
    ///
    /// # Errors
    /// [`Error::ZeroWeight`]; on error nothing changes.
    pub fn set_weight(&mut self, node: &N, weight: u32) -> Result<bool> {
        if weight == 0 {
            return Err(Error::ZeroWeight);
        }
        let Some(index) = self.index_of(node) else {
            return Ok(false);
        };
        self.weights[index] = weight;
        self.populate();
        Ok(true)
    }
}

impl<N: Key + PartialEq> Default for Maglev<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<N: Key + PartialEq> Placement<N> for Maglev<N> {
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
        self.table
            .get(reduce(hash, self.table.len()))
            .map(|&i| usize::from(i))
    }

    fn preference_indices(&self, hash: u64, n: usize, out: &mut Vec<usize>) {
        out.clear();
        let want = n.min(self.nodes.len());
        if want == 0 || self.table.is_empty() {
            return;
        }
        let mut distinct = Distinct::new(want, self.nodes.len());
        let start = reduce(hash, self.table.len());
        // Every node owns at least one slot (the first round gives each one before the table can
        // fill), so one pass over the table finds them all.
        let (before, after) = self.table.split_at(start);
        for &slot in after.iter().chain(before) {
            distinct.push(usize::from(slot), out);
            if out.len() == want {
                break;
            }
        }
    }

    fn add_weighted(&mut self, node: N, weight: u32) -> Result<()> {
        self.insert(node, weight)?;
        self.populate();
        Ok(())
    }

    fn remove(&mut self, node: &N) -> Option<N> {
        let index = self.index_of(node)?;
        self.perms.remove(index);
        self.weights.remove(index);
        let node = self.nodes.remove(index);
        self.populate();
        Some(node)
    }
}

impl<N> std::fmt::Debug for Maglev<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Maglev")
            .field("nodes", &self.nodes.len())
            .field("table_size", &self.size)
            .finish_non_exhaustive()
    }
}

/// Deterministic trial division; table sizes are at most 2^24, so this is at most ~2,000 steps.
fn is_prime(n: usize) -> bool {
    if n < 2 {
        return false;
    }
    if n.is_multiple_of(2) {
        return n == 2;
    }
    let mut d = 3;
    while d * d <= n {
        if n.is_multiple_of(d) {
            return false;
        }
        d += 2;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primes() {
        let small: Vec<usize> = (0..30).filter(|&n| is_prime(n)).collect();
        assert_eq!(small, [2, 3, 5, 7, 11, 13, 17, 19, 23, 29]);
        assert!(is_prime(65_537));
        assert!(!is_prime(65_535));
    }

    #[test]
    fn every_node_gets_its_share_of_slots() {
        let maglev = Maglev::builder()
            .table_size(1_009)
            .nodes(0..10u32)
            .build()
            .expect("valid");
        let counts = maglev.slot_counts();
        assert_eq!(counts.iter().sum::<usize>(), 1_009);
        assert!(counts.iter().all(|&c| c == 100 || c == 101), "{counts:?}");
    }

    #[test]
    fn weighted_slots_are_proportional() {
        let maglev = Maglev::builder()
            .table_size(3_001)
            .weighted_node("a", 1)
            .weighted_node("b", 2)
            .build()
            .expect("valid");
        let counts = maglev.slot_counts();
        assert!(counts[1].abs_diff(2 * counts[0]) <= 3, "{counts:?}");
    }

    #[test]
    fn node_limit_is_the_table_size() {
        let mut maglev = Maglev::builder()
            .table_size(7)
            .nodes(0..7u32)
            .build()
            .expect("valid");
        assert_eq!(maglev.add(7), Err(Error::TooManyNodes { limit: 7 }));
        assert_eq!(maglev.len(), 7);
    }
}
