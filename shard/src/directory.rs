//! [`Directory`]: explicit key -> shard overrides in front of another strategy.

use std::collections::HashMap;
use std::sync::Arc;

use crate::{ShardId, ShardKey, ShardStrategy};

/// A lookup table of explicit placements consulted before an inner strategy: the way to pin a
/// celebrity's key to a dedicated shard, or to keep a tenant where it is during a re-layout.
///
/// Overrides are part of the immutable strategy value: [`pin`](Self::pin) returns a new
/// directory (clone-on-write), so readers never lock. With no overrides a lookup costs one
/// branch on top of the inner strategy.
///
/// # Examples
///
/// ```
/// use tierkit_shard::{Directory, Modulo, ShardId, ShardKey, ShardStrategy};
///
/// # fn main() -> Result<(), tierkit_shard::Error> {
/// let base = Directory::new(Modulo::new(4)?);
/// let pinned = base.pin(ShardKey::Int(42), ShardId(9));
/// assert_eq!(pinned.shard_of(ShardKey::Int(42)), ShardId(9));
/// assert_eq!(pinned.shard_of(ShardKey::Int(43)), ShardId(3));
/// assert!(pinned.shards().contains(&ShardId(9)));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Directory {
    inner: Arc<dyn ShardStrategy>,
    ints: HashMap<u64, ShardId>,
    bytes: HashMap<Box<[u8]>, ShardId>,
    shards: Vec<ShardId>,
}

impl Directory {
    /// A directory with no overrides in front of `inner`.
    pub fn new<S: ShardStrategy + 'static>(inner: S) -> Self {
        Self::over(Arc::new(inner))
    }

    /// A directory with no overrides in front of a shared strategy.
    #[must_use]
    pub fn over(inner: Arc<dyn ShardStrategy>) -> Self {
        let shards = inner.shards().to_vec();
        Directory {
            inner,
            ints: HashMap::new(),
            bytes: HashMap::new(),
            shards,
        }
    }

    /// The strategy behind the overrides.
    #[must_use]
    pub fn inner(&self) -> &Arc<dyn ShardStrategy> {
        &self.inner
    }

    /// This directory with the same overrides in front of another strategy.
    #[must_use]
    pub fn with_inner(&self, inner: Arc<dyn ShardStrategy>) -> Self {
        let mut d = self.clone();
        d.inner = inner;
        d.recompute_shards();
        d
    }

    /// A copy with `key` pinned to `shard` (replacing any previous pin of that key).
    #[must_use]
    pub fn pin(&self, key: ShardKey<'_>, shard: ShardId) -> Self {
        let mut d = self.clone();
        match key {
            ShardKey::Int(v) => {
                d.ints.insert(v, shard);
            }
            ShardKey::Bytes(b) => {
                d.bytes.insert(b.into(), shard);
            }
        }
        d.recompute_shards();
        d
    }

    /// A copy without the pin of `key`, if there was one.
    #[must_use]
    pub fn unpin(&self, key: ShardKey<'_>) -> Self {
        let mut d = self.clone();
        match key {
            ShardKey::Int(v) => {
                d.ints.remove(&v);
            }
            ShardKey::Bytes(b) => {
                d.bytes.remove(b);
            }
        }
        d.recompute_shards();
        d
    }

    /// The explicit placement of `key`, if pinned.
    #[inline]
    #[must_use]
    pub fn pinned(&self, key: ShardKey<'_>) -> Option<ShardId> {
        match key {
            ShardKey::Int(v) if !self.ints.is_empty() => self.ints.get(&v).copied(),
            ShardKey::Bytes(b) if !self.bytes.is_empty() => self.bytes.get(b).copied(),
            _ => None,
        }
    }

    /// How many keys are pinned.
    #[must_use]
    pub fn pin_count(&self) -> usize {
        self.ints.len() + self.bytes.len()
    }

    fn recompute_shards(&mut self) {
        let mut shards = self.inner.shards().to_vec();
        shards.extend(self.ints.values().chain(self.bytes.values()));
        shards.sort_unstable();
        shards.dedup();
        self.shards = shards;
    }
}

impl ShardStrategy for Directory {
    #[inline]
    fn shard_of(&self, key: ShardKey<'_>) -> ShardId {
        self.pinned(key).unwrap_or_else(|| self.inner.shard_of(key))
    }

    fn shards(&self) -> &[ShardId] {
        &self.shards
    }

    fn name(&self) -> &'static str {
        "directory"
    }

    fn slot_of(&self, key: ShardKey<'_>) -> Option<u16> {
        match self.pinned(key) {
            Some(_) => None,
            None => self.inner.slot_of(key),
        }
    }

    fn as_hash_slots(&self) -> Option<&crate::HashSlots> {
        self.inner.as_hash_slots()
    }

    fn pinned_keys(&self) -> Vec<ShardKey<'_>> {
        self.ints
            .keys()
            .map(|&v| ShardKey::Int(v))
            .chain(self.bytes.keys().map(|b| ShardKey::Bytes(b)))
            .collect()
    }
}
