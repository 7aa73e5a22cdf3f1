//! [`Modulo`]: `key % n`.

use tierkit_consistent_hash::KeyHasher;

use crate::strategy::sorted_unique;
use crate::{Error, Result, ShardId, ShardKey, ShardStrategy};

/// The chapter's `user_id % 4`: integer keys go to shard `key % n`, byte keys to
/// `hash(key) % n` (keyed SipHash, [`KeyHasher::DEFAULT`] unless configured).
///
/// Simple and perfectly balanced for uniform ids, but resharding is expensive: going from `n` to
/// `n + 1` shards moves about `n / (n + 1)` of the keys (80% from 4 to 5). Prefer
/// [`HashSlots`](crate::HashSlots) or [`Consistent`](crate::Consistent) if shards will be added.
///
/// # Examples
///
/// ```
/// use tierkit_shard::{Modulo, ShardId, ShardKey, ShardStrategy};
///
/// # fn main() -> Result<(), tierkit_shard::Error> {
/// let m = Modulo::over([ShardId(10), ShardId(11), ShardId(12)])?;
/// assert_eq!(m.shard_of(ShardKey::Int(4)), ShardId(11)); // 4 % 3 = 1 -> second shard
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Modulo {
    shards: Vec<ShardId>,
    hasher: KeyHasher,
}

impl Modulo {
    /// Shards `0..n`.
    ///
    /// # Errors
    /// [`Error::EmptyShardSet`] if `n` is 0; [`Error::TooManyShards`] beyond `u32::MAX`.
    pub fn new(n: usize) -> Result<Self> {
        let n = u32::try_from(n).map_err(|_| Error::TooManyShards(n))?;
        Self::over((0..n).map(ShardId))
    }

    /// These shards, in ascending id order: key `k` goes to the `(k % n)`-th smallest id.
    ///
    /// # Errors
    /// [`Error::EmptyShardSet`], [`Error::DuplicateShard`].
    pub fn over<I: IntoIterator<Item = ShardId>>(shards: I) -> Result<Self> {
        Ok(Modulo {
            shards: sorted_unique(shards.into_iter().collect())?,
            hasher: KeyHasher::DEFAULT,
        })
    }

    /// Hash byte keys with this hasher instead of the default.
    #[must_use]
    pub fn with_hasher(mut self, hasher: KeyHasher) -> Self {
        self.hasher = hasher;
        self
    }
}

impl ShardStrategy for Modulo {
    #[inline]
    fn shard_of(&self, key: ShardKey<'_>) -> ShardId {
        let value = match key {
            ShardKey::Int(v) => v,
            ShardKey::Bytes(b) => self.hasher.hash(b),
        };
        // `shards` is non-empty by construction and the remainder is < len.
        let i = usize::try_from(value % self.shards.len() as u64).unwrap_or(0);
        self.shards[i]
    }

    fn shards(&self) -> &[ShardId] {
        &self.shards
    }

    fn name(&self) -> &'static str {
        "modulo"
    }
}
