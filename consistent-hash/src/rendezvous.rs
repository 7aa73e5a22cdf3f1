//! [`Rendezvous`]: highest-random-weight hashing, with weights.

use crate::hasher::mix64;
use crate::{Error, Key, KeyHasher, Placement, Result};

/// Rendezvous or highest-random-weight hashing (Thaler and Ravishankar, 1998): every node scores
/// every key and the highest score wins.
///
/// No table, perfect balance in expectation, and the ideal movement: adding a node moves only the
/// keys it now wins, removing one moves only its keys, and the preference list is just the nodes
/// in score order. The price is O(n) work per lookup, fine for tens of nodes, slow for thousands
/// (see the crate README's benchmark table).
///
/// A node's score for a key is `mix64(key hash ⊕ node hash)`, with both hashes keyed SipHash and
/// `mix64` the MurmurHash3 finaliser. With weights, the score becomes `-w / ln(u)` with `u` the
/// score scaled into `(0, 1)` (the logarithmic method of Schindelhauer and Schomaker, 2005),
/// which gives each node a share of keys proportional to its weight while keeping the minimal
/// movement. When all weights are equal the cheaper integer comparison is used; both rank nodes
/// identically.
///
/// # Examples
///
/// ```
/// use tierkit_consistent_hash::{Placement, Rendezvous};
///
/// # fn main() -> Result<(), tierkit_consistent_hash::Error> {
/// let mut hrw = Rendezvous::new();
/// hrw.add_weighted("small", 1)?;
/// hrw.add_weighted("large", 3)?; // about three quarters of the keys
/// let replicas = hrw.locate_n("photo:1234", 2);
/// assert_eq!(replicas.len(), 2);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Rendezvous<N> {
    hasher: KeyHasher,
    nodes: Vec<N>,
    weights: Vec<u32>,
    node_hashes: Vec<u64>,
    /// True when every weight is the same, so the integer score ranks like the weighted one.
    uniform: bool,
}

impl<N> Rendezvous<N> {
    /// An empty placement with the given hasher.
    #[must_use]
    pub fn with_hasher(hasher: KeyHasher) -> Self {
        Rendezvous {
            hasher,
            nodes: Vec::new(),
            weights: Vec::new(),
            node_hashes: Vec::new(),
            uniform: true,
        }
    }

    #[inline]
    fn raw_score(&self, hash: u64, index: usize) -> u64 {
        mix64(hash ^ self.node_hashes[index])
    }

    /// The weighted score `-w / ln(u)` for `u` in `(0, 1)`; larger is better.
    #[inline]
    fn weighted_score(&self, hash: u64, index: usize) -> f64 {
        // 53 random bits, offset by one half so that u is never 0 or 1.
        #[allow(clippy::cast_precision_loss)]
        let u = ((self.raw_score(hash, index) >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
        -f64::from(self.weights[index]) / u.ln()
    }

    fn recompute_uniform(&mut self) {
        self.uniform = self.weights.windows(2).all(|w| w[0] == w[1]);
    }

    /// Whether node `a` beats node `b` for `hash`; ties (a 64-bit collision) go to the lower node
    /// hash so the answer does not depend on insertion order.
    #[inline]
    fn beats(&self, hash: u64, a: usize, b: usize) -> bool {
        if self.uniform {
            let (sa, sb) = (self.raw_score(hash, a), self.raw_score(hash, b));
            sa > sb || (sa == sb && self.node_hashes[a] < self.node_hashes[b])
        } else {
            let (sa, sb) = (self.weighted_score(hash, a), self.weighted_score(hash, b));
            sa > sb || (sa == sb && self.node_hashes[a] < self.node_hashes[b])
        }
    }
}

impl<N: Key + PartialEq> Rendezvous<N> {
    /// An empty placement with [`KeyHasher::DEFAULT`].
    #[must_use]
    pub fn new() -> Self {
        Self::with_hasher(KeyHasher::DEFAULT)
    }

    /// A placement over these nodes, each of weight 1.
    ///
    /// # Errors
    /// [`Error::DuplicateNode`] if a node appears twice.
    pub fn from_nodes<I: IntoIterator<Item = N>>(nodes: I) -> Result<Self> {
        let mut hrw = Self::new();
        for node in nodes {
            hrw.add(node)?;
        }
        Ok(hrw)
    }

    /// Changes a member's weight; keys move only to or from that node. Returns `Ok(false)` if
    /// `node` is not a member.
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
        self.recompute_uniform();
        Ok(true)
    }
}

impl<N: Key + PartialEq> Default for Rendezvous<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<N: Key + PartialEq> Placement<N> for Rendezvous<N> {
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
        if self.nodes.is_empty() {
            return None;
        }
        let mut best = 0;
        if self.uniform {
            let mut best_score = self.raw_score(hash, 0);
            for i in 1..self.nodes.len() {
                let s = self.raw_score(hash, i);
                if s > best_score
                    || (s == best_score && self.node_hashes[i] < self.node_hashes[best])
                {
                    (best, best_score) = (i, s);
                }
            }
        } else {
            for i in 1..self.nodes.len() {
                if self.beats(hash, i, best) {
                    best = i;
                }
            }
        }
        Some(best)
    }

    fn preference_indices(&self, hash: u64, n: usize, out: &mut Vec<usize>) {
        out.clear();
        let want = n.min(self.nodes.len());
        if want == 0 {
            return;
        }
        // Keep the best `want` seen so far, best first (insertion into a short sorted list).
        for i in 0..self.nodes.len() {
            let at = out.partition_point(|&o| self.beats(hash, o, i));
            if at < want {
                if out.len() == want {
                    out.pop();
                }
                out.insert(at, i);
            }
        }
    }

    fn add_weighted(&mut self, node: N, weight: u32) -> Result<()> {
        if weight == 0 {
            return Err(Error::ZeroWeight);
        }
        if let Some(index) = self.index_of(&node) {
            return Err(Error::DuplicateNode { index });
        }
        self.node_hashes.push(self.hasher.hash(&node));
        self.nodes.push(node);
        self.weights.push(weight);
        self.recompute_uniform();
        Ok(())
    }

    fn remove(&mut self, node: &N) -> Option<N> {
        let index = self.index_of(node)?;
        self.node_hashes.remove(index);
        self.weights.remove(index);
        self.recompute_uniform();
        Some(self.nodes.remove(index))
    }
}

impl<N> std::fmt::Debug for Rendezvous<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rendezvous")
            .field("nodes", &self.nodes.len())
            .field("uniform_weights", &self.uniform)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_weights_rank_like_the_weighted_score() {
        let mut hrw = Rendezvous::from_nodes(0..20u32).expect("distinct");
        let mut uniform = Vec::new();
        let mut weighted = Vec::new();
        for h in [1u64, 99, 1 << 50] {
            hrw.uniform = true;
            hrw.preference_indices(h, 20, &mut uniform);
            hrw.uniform = false;
            hrw.preference_indices(h, 20, &mut weighted);
            assert_eq!(uniform, weighted);
        }
    }
}
