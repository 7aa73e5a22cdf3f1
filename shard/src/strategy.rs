//! [`ShardStrategy`] and [`ShardId`].

use std::fmt;
use std::hash::Hasher;
use std::sync::Arc;

use crate::ShardKey;

/// A shard's identity: a small number the application maps to a connection pool or a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ShardId(pub u32);

impl fmt::Display for ShardId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

impl From<u32> for ShardId {
    fn from(id: u32) -> Self {
        ShardId(id)
    }
}

impl tierkit_consistent_hash::Key for ShardId {
    /// A shard id hashes as its number, a little-endian `u32`.
    fn write_key<H: Hasher>(&self, state: &mut H) {
        state.write(&self.0.to_le_bytes());
    }
}

/// Maps a key to the shard that owns it. Every strategy is a total function over keys: each key
/// has exactly one shard, and only shards in [`shards`](ShardStrategy::shards) are returned.
///
/// Strategies are immutable values; a [`ShardMap`](crate::ShardMap) replaces one with another
/// atomically (after a migration, or to pin a key), so lookups never take a lock.
///
/// # Examples
///
/// ```
/// use tierkit_shard::{Modulo, ShardId, ShardKey, ShardStrategy};
///
/// # fn main() -> Result<(), tierkit_shard::Error> {
/// // The chapter's example: user_id % 4.
/// let by_user = Modulo::new(4)?;
/// assert_eq!(by_user.shard_of(ShardKey::Int(10)), ShardId(2));
/// # Ok(())
/// # }
/// ```
pub trait ShardStrategy: Send + Sync + fmt::Debug {
    /// The shard owning `key`. The key has already been through the map's co-location rule.
    fn shard_of(&self, key: ShardKey<'_>) -> ShardId;

    /// Every shard this strategy can return, ascending and without duplicates.
    fn shards(&self) -> &[ShardId];

    /// A short name for logs and plans ("modulo", "hash-slots", ...).
    fn name(&self) -> &'static str;

    /// The hash slot of `key`, for strategies built on a slot table; migration plans between two
    /// slot-based strategies move whole slots.
    fn slot_of(&self, key: ShardKey<'_>) -> Option<u16> {
        let _ = key;
        None
    }

    /// This strategy as a Redis-style slot table, if it is one (the map's current table is then
    /// reachable through [`Snapshot::hash_slots`](crate::Snapshot::hash_slots)).
    fn as_hash_slots(&self) -> Option<&crate::HashSlots> {
        None
    }

    /// Keys placed by explicit override rather than by the strategy's rule (see
    /// [`Directory`](crate::Directory)); migration plans give each a step of its own.
    fn pinned_keys(&self) -> Vec<ShardKey<'_>> {
        Vec::new()
    }
}

/// Shared and boxed strategies are strategies.
macro_rules! forward_strategy {
    ($($ptr:ident),*) => {$(
        impl<T: ShardStrategy + ?Sized> ShardStrategy for $ptr<T> {
            #[inline]
            fn shard_of(&self, key: ShardKey<'_>) -> ShardId {
                (**self).shard_of(key)
            }
            fn shards(&self) -> &[ShardId] {
                (**self).shards()
            }
            fn name(&self) -> &'static str {
                (**self).name()
            }
            fn slot_of(&self, key: ShardKey<'_>) -> Option<u16> {
                (**self).slot_of(key)
            }
            fn pinned_keys(&self) -> Vec<ShardKey<'_>> {
                (**self).pinned_keys()
            }
            fn as_hash_slots(&self) -> Option<&crate::HashSlots> {
                (**self).as_hash_slots()
            }
        }
    )*};
}
forward_strategy!(Arc, Box);

/// Sorts and checks a shard list: non-empty, no duplicates.
pub(crate) fn sorted_unique(mut ids: Vec<ShardId>) -> crate::Result<Vec<ShardId>> {
    if ids.is_empty() {
        return Err(crate::Error::EmptyShardSet);
    }
    ids.sort_unstable();
    if let Some(w) = ids.windows(2).find(|w| w[0] == w[1]) {
        return Err(crate::Error::DuplicateShard(w[0]));
    }
    Ok(ids)
}

/// Picks one of `n` buckets from a hash's high bits (multiply-shift).
#[inline]
pub(crate) fn bucket(hash: u64, n: usize) -> usize {
    usize::try_from((u128::from(hash) * n as u128) >> 64).unwrap_or(0)
}
