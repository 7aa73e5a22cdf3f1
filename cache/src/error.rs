//! The crate's error type.

use std::fmt;
use std::time::Duration;

/// Result alias used by the crate's fallible constructors.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a cache could not be built or an operation was refused.
///
/// Every constructor validates its input and reports a bad value here instead of panicking.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The capacity (entry count or total weight) was zero: such a cache could hold nothing.
    #[error("cache capacity must be at least 1")]
    ZeroCapacity,
    /// The capacity is above what the index-based storage can address.
    #[error("cache capacity {requested} exceeds the maximum of {max} entries")]
    CapacityTooLarge {
        /// The capacity asked for.
        requested: u64,
        /// The largest supported entry count.
        max: u64,
    },
    /// A [`ConcurrentCache`](crate::ConcurrentCache) was asked for zero shards.
    #[error("shard count must be at least 1")]
    ZeroShards,
    /// A time-to-live of zero was given as a cache default: every entry would expire on insert.
    #[error("default time-to-live must be greater than zero")]
    ZeroTtl,
    /// A time-to-live too large to add to the clock's current instant.
    #[error("time-to-live {ttl:?} is too large to represent")]
    TtlTooLarge {
        /// The time-to-live asked for.
        ttl: Duration,
    },
    /// An entry heavier than the whole capacity (of its shard, in a
    /// [`ConcurrentCache`](crate::ConcurrentCache)) was refused; see [`Rejected`].
    #[error("entry of weight {weight} exceeds the capacity of {capacity}")]
    EntryTooHeavy {
        /// The entry's weight.
        weight: u64,
        /// The capacity it had to fit.
        capacity: u64,
    },
    /// A configuration value was outside its documented range.
    #[error("invalid {name}: {reason}")]
    InvalidConfig {
        /// The setting's name, as in the builder method.
        name: &'static str,
        /// What was wrong with it.
        reason: &'static str,
    },
}

/// An insert refused because the entry alone weighs more than the capacity (of its shard, in a
/// [`ConcurrentCache`](crate::ConcurrentCache)): the key and value come back untouched, and the
/// cache is unchanged (any value already under the key stays).
///
/// Returned by [`Cache::try_insert`](crate::Cache::try_insert) and
/// [`ConcurrentCache::try_insert`](crate::ConcurrentCache::try_insert); converts into
/// [`Error::EntryTooHeavy`] (dropping the entry) for `?`.
///
/// # Examples
///
/// ```
/// use tierkit_cache::{Cache, CacheBuilder, LruCache};
///
/// let mut cache: LruCache<&str, Vec<u8>> = CacheBuilder::new(1024)
///     .weigher(|_: &&str, v: &Vec<u8>| v.len() as u64)
///     .build()?;
/// let big = vec![0u8; 4096];
/// let rejected = cache.try_insert("big", big).unwrap_err();
/// assert_eq!((rejected.weight(), rejected.capacity()), (4096, 1024));
/// let (key, value) = rejected.into_inner(); // nothing lost
/// assert_eq!((key, value.len()), ("big", 4096));
/// # Ok::<(), tierkit_cache::Error>(())
/// ```
pub struct Rejected<K, V> {
    key: K,
    value: V,
    weight: u64,
    capacity: u64,
}

impl<K, V> Rejected<K, V> {
    pub(crate) fn new(key: K, value: V, weight: u64, capacity: u64) -> Self {
        Self {
            key,
            value,
            weight,
            capacity,
        }
    }

    /// The refused key and value.
    pub fn into_inner(self) -> (K, V) {
        (self.key, self.value)
    }

    /// The refused key.
    pub fn key(&self) -> &K {
        &self.key
    }

    /// The refused value.
    pub fn value(&self) -> &V {
        &self.value
    }

    /// The entry's weight.
    pub fn weight(&self) -> u64 {
        self.weight
    }

    /// The capacity it had to fit.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }
}

impl<K, V> fmt::Debug for Rejected<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rejected")
            .field("weight", &self.weight)
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl<K, V> fmt::Display for Rejected<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "entry of weight {} exceeds the capacity of {}",
            self.weight, self.capacity
        )
    }
}

impl<K, V> std::error::Error for Rejected<K, V> {}

impl<K, V> From<Rejected<K, V>> for Error {
    fn from(r: Rejected<K, V>) -> Self {
        Self::EntryTooHeavy {
            weight: r.weight,
            capacity: r.capacity,
        }
    }
}
