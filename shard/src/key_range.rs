//! [`KeyRange`]: sorted split points over the key space.

use tierkit_consistent_hash::KeyHasher;

use crate::{Error, Result, ShardId, ShardKey, ShardStrategy};

/// Range sharding: sorted split points cut the `u64` key space into ranges, each owned by one
/// shard (user ids 0-999,999 on shard 0, and so on). Integer keys are placed by value, so range
/// scans stay on one shard; byte keys are placed by their keyed hash (Vitess's "keyspace id"
/// ranges), which spreads them evenly.
///
/// Range `i` is `[splits[i-1], splits[i])`, with `0` and `u64::MAX` at the ends; a lookup is a
/// binary search over the split points. [`split`](Self::split) and [`merge`](Self::merge) return
/// new strategies, so a map can switch to them through a migration plan.
///
/// # Examples
///
/// ```
/// use tierkit_shard::{KeyRange, ShardId, ShardKey, ShardStrategy};
///
/// # fn main() -> Result<(), tierkit_shard::Error> {
/// // Users 0..1M on shard 0, 1M..2M on shard 1, the rest on shard 2.
/// let r = KeyRange::new([1_000_000, 2_000_000], [ShardId(0), ShardId(1), ShardId(2)])?;
/// assert_eq!(r.shard_of(ShardKey::Int(1_500_000)), ShardId(1));
///
/// // A hot range splits: 1.5M..2M moves to a new shard 3.
/// let r = r.split(1_500_000, ShardId(3))?;
/// assert_eq!(r.shard_of(ShardKey::Int(1_600_000)), ShardId(3));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct KeyRange {
    splits: Vec<u64>,
    /// `owners[i]` owns range `i`; one more than `splits`.
    owners: Vec<ShardId>,
    /// Distinct owners, ascending (a shard may own several ranges).
    shards: Vec<ShardId>,
    hasher: KeyHasher,
}

impl KeyRange {
    /// Ranges cut at `splits` (strictly increasing, none zero), owned by `owners` in order.
    ///
    /// # Errors
    /// [`Error::UnsortedRanges`] if the split points are not strictly increasing or one is 0
    /// (which would make an empty first range); [`Error::RangeShardMismatch`] unless there is
    /// exactly one more owner than split points.
    pub fn new<S, O>(splits: S, owners: O) -> Result<Self>
    where
        S: IntoIterator<Item = u64>,
        O: IntoIterator<Item = ShardId>,
    {
        let splits: Vec<u64> = splits.into_iter().collect();
        let owners: Vec<ShardId> = owners.into_iter().collect();
        if owners.len() != splits.len() + 1 {
            return Err(Error::RangeShardMismatch {
                splits: splits.len(),
                shards: owners.len(),
            });
        }
        let mut previous = 0;
        for &next in &splits {
            if next <= previous {
                return Err(Error::UnsortedRanges { previous, next });
            }
            previous = next;
        }
        let mut shards = owners.clone();
        shards.sort_unstable();
        shards.dedup();
        Ok(KeyRange {
            splits,
            owners,
            shards,
            hasher: KeyHasher::DEFAULT,
        })
    }

    /// Place byte keys with this hasher instead of the default.
    #[must_use]
    pub fn with_hasher(mut self, hasher: KeyHasher) -> Self {
        self.hasher = hasher;
        self
    }

    /// `n` equal ranges of the `u64` space over shards `0..n`: a natural layout for byte keys,
    /// which are placed by hash.
    ///
    /// # Errors
    /// [`Error::EmptyShardSet`] if `n` is 0, [`Error::TooManyShards`] beyond `u32::MAX`.
    pub fn uniform(n: usize) -> Result<Self> {
        if n == 0 {
            return Err(Error::EmptyShardSet);
        }
        let count = u32::try_from(n).map_err(|_| Error::TooManyShards(n))?;
        let step = u64::MAX / u64::from(count);
        let splits = (1..u64::from(count)).map(|i| i * step);
        Self::new(splits, (0..count).map(ShardId))
    }

    /// The split points.
    #[must_use]
    pub fn splits(&self) -> &[u64] {
        &self.splits
    }

    /// The owner of each range, in order.
    #[must_use]
    pub fn owners(&self) -> &[ShardId] {
        &self.owners
    }

    /// The position of `key` in the `u64` space this strategy orders.
    #[inline]
    #[must_use]
    pub fn point(&self, key: ShardKey<'_>) -> u64 {
        match key {
            ShardKey::Int(v) => v,
            ShardKey::Bytes(b) => self.hasher.hash(b),
        }
    }

    /// Cuts the range containing `at` in two; the upper part `[at, next split)` goes to `owner`.
    ///
    /// # Errors
    /// [`Error::NoSuchBoundary`] if `at` is 0 or already a split point.
    pub fn split(&self, at: u64, owner: ShardId) -> Result<Self> {
        if at == 0 || self.splits.binary_search(&at).is_ok() {
            return Err(Error::NoSuchBoundary(at));
        }
        let i = self.splits.partition_point(|&s| s < at);
        let mut splits = self.splits.clone();
        let mut owners = self.owners.clone();
        splits.insert(i, at);
        owners.insert(i + 1, owner);
        Self::new(splits, owners).map(|r| r.with_hasher(self.hasher))
    }

    /// Removes the split point `at`: the range above it joins the range below, whose owner keeps
    /// both.
    ///
    /// # Errors
    /// [`Error::NoSuchBoundary`] if `at` is not a split point.
    pub fn merge(&self, at: u64) -> Result<Self> {
        let i = self
            .splits
            .binary_search(&at)
            .map_err(|_| Error::NoSuchBoundary(at))?;
        let mut splits = self.splits.clone();
        let mut owners = self.owners.clone();
        splits.remove(i);
        owners.remove(i + 1);
        Self::new(splits, owners).map(|r| r.with_hasher(self.hasher))
    }
}

impl ShardStrategy for KeyRange {
    #[inline]
    fn shard_of(&self, key: ShardKey<'_>) -> ShardId {
        let point = self.point(key);
        let i = self.splits.partition_point(|&s| s <= point);
        // `owners` has one more entry than `splits`, so `i` is always in range.
        self.owners[i]
    }

    fn shards(&self) -> &[ShardId] {
        &self.shards
    }

    fn name(&self) -> &'static str {
        "range"
    }
}
