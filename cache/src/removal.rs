//! Why entries leave, and who hears about it: [`RemovalCause`], [`RemovalListener`], [`Weigher`].

/// Why an entry left the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RemovalCause {
    /// The policy evicted it to make room.
    Evicted,
    /// Its time-to-live ran out.
    Expired,
    /// It was removed explicitly (`remove`, `clear`, invalidation).
    Removed,
    /// A new value was inserted under the same key.
    Replaced,
    /// It was never stored: it alone weighs more than the cache's capacity.
    Rejected,
}

impl RemovalCause {
    /// Whether the cache removed the entry on its own (eviction or expiry), as opposed to a user
    /// action.
    #[must_use]
    pub fn was_evicted(self) -> bool {
        matches!(self, Self::Evicted | Self::Expired)
    }
}

/// Called once for every entry that leaves a cache, before the value is dropped or returned.
///
/// Implemented for every `Fn(&K, &V, RemovalCause) + Send + Sync`. The listener runs inside the
/// cache operation (under the shard lock in a [`ConcurrentCache`](crate::ConcurrentCache)): keep
/// it short and never call back into the same cache.
pub trait RemovalListener<K, V>: Send + Sync + 'static {
    /// Reports one removal.
    fn on_removal(&self, key: &K, value: &V, cause: RemovalCause);
}

impl<K, V, F> RemovalListener<K, V> for F
where
    F: Fn(&K, &V, RemovalCause) + Send + Sync + 'static,
{
    fn on_removal(&self, key: &K, value: &V, cause: RemovalCause) {
        self(key, value, cause);
    }
}

/// Measures an entry's weight, for caches bounded by total weight (e.g. bytes) instead of count.
///
/// Implemented for every `Fn(&K, &V) -> u64 + Send + Sync`. The weight is taken once, at insert.
/// A weight of zero is allowed (the entry never forces an eviction); an entry heavier than the
/// capacity is rejected (see [`Cache`](crate::Cache)).
pub trait Weigher<K, V>: Send + Sync + 'static {
    /// The weight of one entry.
    fn weigh(&self, key: &K, value: &V) -> u64;
}

impl<K, V, F> Weigher<K, V> for F
where
    F: Fn(&K, &V) -> u64 + Send + Sync + 'static,
{
    fn weigh(&self, key: &K, value: &V) -> u64 {
        self(key, value)
    }
}
