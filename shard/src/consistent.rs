//! [`Consistent`]: any consistent-hash placement as a shard strategy.

use tierkit_consistent_hash::{HashRing, Placement};

use crate::strategy::sorted_unique;
use crate::{Error, Result, ShardId, ShardKey, ShardStrategy};

/// Sharding by a [`tierkit_consistent_hash`] placement over shard ids: adding a shard moves only
/// about `1 / (n + 1)` of the keys, all of them to the new shard (20% from 4 to 5, against 80%
/// for [`Modulo`](crate::Modulo)).
///
/// Integer keys are hashed as little-endian `u64`, byte keys as their bytes, per the placement's
/// [`Key`](tierkit_consistent_hash::Key) contract.
///
/// # Examples
///
/// ```
/// use tierkit_consistent_hash::Maglev;
/// use tierkit_shard::{Consistent, ShardId, ShardKey, ShardStrategy};
///
/// # fn main() -> Result<(), tierkit_shard::Error> {
/// let ring = Consistent::ring(4)?;
/// let maglev = Consistent::new(Maglev::from_nodes((0..4).map(ShardId))?)?;
/// let s = ring.shard_of(ShardKey::Bytes(b"user:42"));
/// assert!(ring.shards().contains(&s));
/// # let _ = maglev;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Consistent<P> {
    placement: P,
    shards: Vec<ShardId>,
}

impl Consistent<HashRing<ShardId>> {
    /// A [`HashRing`] with default settings over shards `0..n`.
    ///
    /// # Errors
    /// [`Error::EmptyShardSet`] if `n` is 0, [`Error::TooManyShards`] beyond `u32::MAX`.
    pub fn ring(n: usize) -> Result<Self> {
        let count = u32::try_from(n).map_err(|_| Error::TooManyShards(n))?;
        Self::new(HashRing::from_nodes((0..count).map(ShardId))?)
    }
}

impl<P: Placement<ShardId>> Consistent<P> {
    /// Wraps a placement whose nodes are shard ids.
    ///
    /// # Errors
    /// [`Error::EmptyShardSet`] if the placement has no nodes.
    pub fn new(placement: P) -> Result<Self> {
        let shards = sorted_unique(placement.nodes().to_vec())?;
        Ok(Consistent { placement, shards })
    }

    /// The placement.
    #[must_use]
    pub fn placement(&self) -> &P {
        &self.placement
    }
}

impl<P> ShardStrategy for Consistent<P>
where
    P: Placement<ShardId> + Send + Sync + std::fmt::Debug,
{
    #[inline]
    fn shard_of(&self, key: ShardKey<'_>) -> ShardId {
        let hash = match key {
            ShardKey::Int(v) => self.placement.hasher().hash(&v),
            ShardKey::Bytes(b) => self.placement.hasher().hash(b),
        };
        // Non-empty by construction (placements are immutable inside a strategy).
        self.placement
            .locate_hash(hash)
            .copied()
            .unwrap_or(self.shards[0])
    }

    fn shards(&self) -> &[ShardId] {
        &self.shards
    }

    fn name(&self) -> &'static str {
        "consistent"
    }
}
