//! The [`Placement`] trait shared by every algorithm.

use crate::{Key, KeyHasher, Result};

/// Maps keys to nodes. One trait, five algorithms: swap [`HashRing`](crate::HashRing) for
/// [`Maglev`](crate::Maglev) in one line and measure the difference with
/// [`analysis`](crate::analysis).
///
/// Nodes are the user's own type `N`; a node's identity for hashing is its [`Key`] bytes, and
/// membership compares nodes with `PartialEq`. Nodes are kept in a list ([`nodes`]) and the
/// index-based methods speak of positions in it. **Indices are valid until the next membership
/// change**: removing a node may reorder the list.
///
/// Lookups take `&self`, never fail and never panic: an empty placement answers `None`. The
/// `_hash` forms take a key already hashed with [`hasher`](Placement::hasher), so a caller that
/// routes the same key through several placements hashes it once.
///
/// Membership changes take `&mut self`. To change membership while other threads look keys up,
/// keep the placement in an `arc_swap::ArcSwap` (or an `RwLock`), clone, change and publish; every
/// implementation is `Clone`.
///
/// [`nodes`]: Placement::nodes
///
/// # Examples
///
/// Code written against the trait works with every algorithm:
///
/// ```
/// use tierkit_consistent_hash::{HashRing, Maglev, Placement, Rendezvous};
///
/// fn owner_of<P: Placement<&'static str>>(p: &P, user: u64) -> &'static str {
///     p.locate(&user).copied().unwrap_or("nobody")
/// }
///
/// # fn main() -> Result<(), tierkit_consistent_hash::Error> {
/// let nodes = ["db-1", "db-2", "db-3"];
/// let ring = HashRing::from_nodes(nodes)?;
/// let maglev = Maglev::from_nodes(nodes)?;
/// let hrw = Rendezvous::from_nodes(nodes)?;
/// for user in 0..100 {
///     assert!(nodes.contains(&owner_of(&ring, user)));
///     assert!(nodes.contains(&owner_of(&maglev, user)));
///     assert!(nodes.contains(&owner_of(&hrw, user)));
/// }
/// # Ok(())
/// # }
/// ```
pub trait Placement<N> {
    /// The hasher that turns keys into the `u64` the `_hash` methods take.
    fn hasher(&self) -> &KeyHasher;

    /// The member nodes. Positions in this slice are the indices the other methods use.
    fn nodes(&self) -> &[N];

    /// The weight of the node at `index`, or `None` if out of range. Algorithms without weights
    /// answer 1 for every node.
    fn weight(&self, index: usize) -> Option<u32>;

    /// The index of the node owning `hash`, or `None` if the placement is empty.
    fn locate_index(&self, hash: u64) -> Option<usize>;

    /// Clears `out` and fills it with up to `n` DISTINCT node indices for `hash`, in preference
    /// order: the first is [`locate_index`](Placement::locate_index), the next is where the key
    /// goes if the first is unavailable, and so on. Fewer than `n` only if there are fewer nodes.
    ///
    /// Reuse `out` across calls to avoid allocating; an implementation may still use a small
    /// scratch allocation when `n` is large.
    fn preference_indices(&self, hash: u64, n: usize, out: &mut Vec<usize>);

    /// Adds a node of weight 1.
    ///
    /// # Errors
    /// [`Error::DuplicateNode`](crate::Error::DuplicateNode) if it is already a member, and the
    /// algorithm's own limits (for example [`Error::TooManyNodes`](crate::Error::TooManyNodes)).
    fn add(&mut self, node: N) -> Result<()> {
        self.add_weighted(node, 1)
    }

    /// Adds a node whose share of keys is proportional to `weight`.
    ///
    /// # Errors
    /// [`Error::ZeroWeight`](crate::Error::ZeroWeight),
    /// [`Error::DuplicateNode`](crate::Error::DuplicateNode),
    /// [`Error::WeightsUnsupported`](crate::Error::WeightsUnsupported) from algorithms without
    /// weights when `weight != 1`, and the algorithm's own limits. On error nothing changes.
    fn add_weighted(&mut self, node: N, weight: u32) -> Result<()>;

    /// Removes a node and returns it; `None` (and no change) if it was not a member.
    fn remove(&mut self, node: &N) -> Option<N>;

    /// How many nodes are members.
    fn len(&self) -> usize {
        self.nodes().len()
    }

    /// Whether there are no nodes (every lookup answers `None`).
    fn is_empty(&self) -> bool {
        self.nodes().is_empty()
    }

    /// The node at `index`.
    fn node(&self, index: usize) -> Option<&N> {
        self.nodes().get(index)
    }

    /// The index of `node` in [`nodes`](Placement::nodes), if it is a member.
    fn index_of(&self, node: &N) -> Option<usize>
    where
        N: PartialEq,
    {
        self.nodes().iter().position(|n| n == node)
    }

    /// Iterates over the member nodes.
    fn iter(&self) -> std::slice::Iter<'_, N> {
        self.nodes().iter()
    }

    /// The node owning `key`, or `None` if the placement is empty. Allocation-free.
    #[inline]
    fn locate<K: Key + ?Sized>(&self, key: &K) -> Option<&N> {
        self.locate_hash(self.hasher().hash(key))
    }

    /// The node owning a key already hashed with [`hasher`](Placement::hasher).
    #[inline]
    fn locate_hash(&self, hash: u64) -> Option<&N> {
        self.locate_index(hash).and_then(|i| self.nodes().get(i))
    }

    /// Up to `n` distinct nodes for `key` in preference order (replicas, failover targets); the
    /// first equals [`locate`](Placement::locate). See
    /// [`preference_indices`](Placement::preference_indices) for an allocation-free form.
    fn locate_n<K: Key + ?Sized>(&self, key: &K, n: usize) -> Vec<&N> {
        let mut indices = Vec::with_capacity(n.min(self.len()));
        self.preference_indices(self.hasher().hash(key), n, &mut indices);
        indices
            .iter()
            .filter_map(|&i| self.nodes().get(i))
            .collect()
    }
}

/// Collects distinct node indices: a linear scan while the list is short, a bitset beyond.
pub(crate) struct Distinct {
    seen: Vec<u64>,
    use_bits: bool,
}

impl Distinct {
    /// Above this many wanted nodes a bitset beats scanning the output list.
    const SCAN_LIMIT: usize = 16;

    pub(crate) fn new(wanted: usize, nodes: usize) -> Self {
        let use_bits = wanted > Self::SCAN_LIMIT;
        let seen = if use_bits {
            vec![0; nodes.div_ceil(64)]
        } else {
            Vec::new()
        };
        Distinct { seen, use_bits }
    }

    /// Pushes `index` to `out` unless it is already there; returns whether it was pushed.
    #[inline]
    pub(crate) fn push(&mut self, index: usize, out: &mut Vec<usize>) -> bool {
        if self.use_bits {
            let (word, bit) = (index / 64, 1u64 << (index % 64));
            match self.seen.get_mut(word) {
                Some(w) if *w & bit == 0 => *w |= bit,
                _ => return false,
            }
        } else if out.contains(&index) {
            return false;
        }
        out.push(index);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_dedups_in_both_modes() {
        for wanted in [3, 100] {
            let mut d = Distinct::new(wanted, 200);
            let mut out = Vec::new();
            for i in [5, 7, 5, 199, 7, 0] {
                d.push(i, &mut out);
            }
            assert_eq!(out, [5, 7, 199, 0]);
        }
    }
}
