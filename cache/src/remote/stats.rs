//! Plain-data snapshots: [`RemoteStats`], [`NodeStatus`], [`TieredStats`].

/// Counters of a [`RemoteTier`](super::RemoteTier) since it was built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct RemoteStats {
    /// Writes (and deletes) sent to a stand-in node because the key's own node was down or
    /// failed.
    pub failovers: u64,
    /// Requests that failed (any [`RemoteError`](super::RemoteError)).
    pub errors: u64,
    /// Of those, timeouts.
    pub timeouts: u64,
    /// Times a node was marked down.
    pub downs: u64,
    /// Times a down node was flushed and brought back.
    pub returns: u64,
}

/// One node of a [`RemoteTier`](super::RemoteTier), as seen by this app instance.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NodeStatus {
    /// `host:port`, as given to the builder.
    pub addr: String,
    /// Its weight on the ring.
    pub weight: u32,
    /// Whether it receives its keys (not marked down).
    pub up: bool,
    /// Whether a connection is open.
    pub connected: bool,
    /// Whether its invalidations reach this instance's near cache (once it is back after a
    /// loss: after the near cache was flushed of what it may have missed meanwhile).
    pub tracking: bool,
    /// How many times it was marked down.
    pub times_down: u64,
}

/// Counters of a [`TieredCache`](super::TieredCache): where reads were served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct TieredStats {
    /// Reads served by the near cache.
    pub near_hits: u64,
    /// Reads that missed the near cache (served by Redis, the loader, or a load in flight).
    pub near_misses: u64,
    /// Reads that missed the near cache and found the value in Redis.
    pub remote_hits: u64,
    /// Loads that missed both levels and ran the loader (callers that joined a load in flight
    /// are not counted again).
    pub loads: u64,
    /// Remote errors swallowed by reads (the loader served them).
    pub remote_errors: u64,
    /// Invalidations applied to the near cache (keys, or all).
    pub invalidations: u64,
    /// Times an invalidation channel was lost (the near cache was flushed each time).
    pub channel_losses: u64,
    /// Values read while their node's channel was lost, kept at most the disconnected TTL.
    pub capped_fills: u64,
}

impl TieredStats {
    /// Near hits over all reads (0 if none).
    #[must_use]
    pub fn near_hit_ratio(&self) -> f64 {
        ratio(self.near_hits, self.reads())
    }

    /// Remote hits over the reads that reached Redis (0 if none).
    #[must_use]
    pub fn remote_hit_ratio(&self) -> f64 {
        ratio(self.remote_hits, self.remote_hits + self.loads)
    }

    /// Every read counted here.
    #[must_use]
    pub fn reads(&self) -> u64 {
        self.near_hits + self.near_misses
    }
}

#[allow(clippy::cast_precision_loss)] // ratios of counters far below 2^52
fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}
