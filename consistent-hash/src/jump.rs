//! [`JumpHash`]: Lamping and Veach's jump consistent hash over a list of nodes.

use crate::hasher::mix64;
use crate::{Error, Key, KeyHasher, Placement, Result};

/// Jump consistent hash (John Lamping and Eric Veach, "A Fast, Minimal Memory, Consistent Hash
/// Algorithm", 2014): a key maps to a bucket in `0..n` with no table at all, in O(log n) steps of
/// arithmetic, and growing from `n` to `n + 1` buckets moves exactly the keys that land in the
/// new bucket, about `1 / (n + 1)` of them.
///
/// Buckets are positions in the node list, so **order matters**: every process must add nodes
/// in the same order to agree on placement, and only appending is free. Removal:
///
/// - removing the **last** node moves only its keys (they spread over the others), the exact
///   inverse of an append;
/// - removing any **other** node moves the last node into its bucket (like `Vec::swap_remove`):
///   the removed node's keys go to the node that was last, and the last node's keys spread over
///   everyone, so about `2 / n` of the keys move instead of `1 / n`. If that matters, keep failed
///   nodes in the list and route around them with
///   [`preference_indices`](Placement::preference_indices), as storage systems using jump hash do.
///
/// Weights are not supported (every bucket gets the same share); use
/// [`HashRing`](crate::HashRing), [`Rendezvous`](crate::Rendezvous) or [`Maglev`](crate::Maglev)
/// for that.
///
/// # Examples
///
/// ```
/// use tierkit_consistent_hash::{JumpHash, Placement};
///
/// # fn main() -> Result<(), tierkit_consistent_hash::Error> {
/// let mut shards = JumpHash::from_nodes(["s0", "s1", "s2", "s3"])?;
/// let before = *shards.locate(&42u64).expect("not empty");
/// shards.add("s4")?;
/// let after = *shards.locate(&42u64).expect("not empty");
/// // The key either stayed or moved to the new shard; never between old shards.
/// assert!(after == before || after == "s4");
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct JumpHash<N> {
    hasher: KeyHasher,
    nodes: Vec<N>,
}

/// The jump consistent hash function: the bucket in `0..buckets` for `key`.
///
/// This is the published algorithm with its 64-bit linear congruential step; for a uniformly
/// distributed `key` (any output of [`KeyHasher::hash`]) the buckets are uniform too.
/// Returns 0 when `buckets` is 0 or 1.
///
/// # Examples
///
/// ```
/// use tierkit_consistent_hash::jump_hash;
///
/// assert!(jump_hash(0xdead_beef, 10) < 10);
/// assert_eq!(jump_hash(12345, 1), 0);
/// ```
#[must_use]
pub fn jump_hash(mut key: u64, buckets: u32) -> u32 {
    let (mut b, mut j) = (0u64, 0u64);
    let buckets = u64::from(buckets);
    while j < buckets {
        b = j;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        // (b + 1) * 2^31 / ((key >> 33) + 1), computed in floating point as published.
        #[allow(
            clippy::cast_precision_loss,
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss
        )]
        let next = ((b + 1) as f64 * (f64::from(1u32 << 31) / ((key >> 33) + 1) as f64)) as u64;
        j = next;
    }
    // `b < buckets <= u32::MAX`.
    u32::try_from(b).unwrap_or(0)
}

impl<N> JumpHash<N> {
    /// An empty placement with the given hasher.
    #[must_use]
    pub fn with_hasher(hasher: KeyHasher) -> Self {
        JumpHash {
            hasher,
            nodes: Vec::new(),
        }
    }

    /// The most nodes a jump placement holds (buckets are `u32`).
    pub const MAX_NODES: usize = u32::MAX as usize;
}

impl<N: PartialEq> JumpHash<N> {
    /// An empty placement with [`KeyHasher::DEFAULT`].
    #[must_use]
    pub fn new() -> Self {
        Self::with_hasher(KeyHasher::DEFAULT)
    }

    /// A placement over these nodes, in this order (bucket `i` is the `i`-th node).
    ///
    /// # Errors
    /// [`Error::DuplicateNode`] if a node appears twice.
    pub fn from_nodes<I: IntoIterator<Item = N>>(nodes: I) -> Result<Self> {
        let mut jump = Self::new();
        for node in nodes {
            jump.push(node)?;
        }
        Ok(jump)
    }

    fn push(&mut self, node: N) -> Result<()> {
        if let Some(index) = self.nodes.iter().position(|n| *n == node) {
            return Err(Error::DuplicateNode { index });
        }
        if self.nodes.len() >= Self::MAX_NODES {
            return Err(Error::TooManyNodes {
                limit: Self::MAX_NODES,
            });
        }
        self.nodes.push(node);
        Ok(())
    }

    fn buckets(&self) -> u32 {
        // `push` keeps the length within u32.
        u32::try_from(self.nodes.len()).unwrap_or(u32::MAX)
    }
}

impl<N: PartialEq> Default for JumpHash<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<N: Key + PartialEq> Placement<N> for JumpHash<N> {
    fn hasher(&self) -> &KeyHasher {
        &self.hasher
    }

    fn nodes(&self) -> &[N] {
        &self.nodes
    }

    fn weight(&self, index: usize) -> Option<u32> {
        (index < self.nodes.len()).then_some(1)
    }

    #[inline]
    fn locate_index(&self, hash: u64) -> Option<usize> {
        if self.nodes.is_empty() {
            return None;
        }
        Some(jump_hash(hash, self.buckets()) as usize)
    }

    /// The first choice is the key's jump bucket; the `i`-th next choice jumps a re-mixed key
    /// over the `n - i` buckets not yet chosen, so every choice is uniform over what is left.
    fn preference_indices(&self, hash: u64, n: usize, out: &mut Vec<usize>) {
        out.clear();
        let want = n.min(self.nodes.len());
        let mut chosen_sorted: Vec<usize> = Vec::new();
        let mut remaining = self.buckets();
        let mut key = hash;
        while out.len() < want {
            let r = jump_hash(key, remaining) as usize;
            // Map r to the r-th bucket not chosen yet.
            let mut index = r;
            for &c in &chosen_sorted {
                if c <= index {
                    index += 1;
                } else {
                    break;
                }
            }
            out.push(index);
            let at = chosen_sorted.partition_point(|&c| c < index);
            chosen_sorted.insert(at, index);
            remaining -= 1;
            key = mix64(key ^ 0x9e37_79b9_7f4a_7c15);
        }
    }

    fn add_weighted(&mut self, node: N, weight: u32) -> Result<()> {
        match weight {
            0 => Err(Error::ZeroWeight),
            1 => self.push(node),
            _ => Err(Error::WeightsUnsupported {
                algorithm: "jump hash",
                weight,
            }),
        }
    }

    fn remove(&mut self, node: &N) -> Option<N> {
        let index = self.index_of(node)?;
        Some(self.nodes.swap_remove(index))
    }
}

impl<N> std::fmt::Debug for JumpHash<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JumpHash")
            .field("nodes", &self.nodes.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growing_moves_keys_only_to_the_new_bucket() {
        assert_eq!(jump_hash(0, 1), 0);
        assert_eq!(jump_hash(0, 0), 0);
        // Monotone: growing the bucket count only ever moves a key to a new bucket.
        for key in [1u64, 0xdead_beef, u64::MAX, 1 << 40] {
            let mut last = 0;
            for n in 1..200u32 {
                let b = jump_hash(key, n);
                assert!(b < n);
                assert!(
                    b == last || b == n - 1,
                    "key {key} moved between old buckets at {n}"
                );
                last = b;
            }
        }
    }

    #[test]
    fn preference_is_distinct_and_complete() {
        let jump = JumpHash::from_nodes(0..50u32).expect("distinct");
        let mut out = Vec::new();
        for h in [0u64, 7, u64::MAX] {
            jump.preference_indices(h, 50, &mut out);
            let mut sorted = out.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, (0..50).collect::<Vec<_>>());
            assert_eq!(out[0], jump.locate_index(h).expect("not empty"));
        }
    }
}
