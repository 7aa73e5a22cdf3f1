//! The crate's error type.

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
    /// A configuration value was outside its documented range.
    #[error("invalid {name}: {reason}")]
    InvalidConfig {
        /// The setting's name, as in the builder method.
        name: &'static str,
        /// What was wrong with it.
        reason: &'static str,
    },
}
