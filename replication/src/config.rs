//! [`Config`]: the thresholds and timers of a [`ReplicaSet`](crate::ReplicaSet).

use std::time::Duration;

/// What a bounded-staleness read does when no replica meets its bound.
///
/// There is no silent third option: a read either goes to the primary, or goes to a replica
/// past the bound *and says so* ([`Route::beyond_bound`](crate::Route::beyond_bound)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum BoundFallback {
    /// Read from the primary ([`Fallback::ReplicasBehind`](crate::Fallback::ReplicasBehind)).
    /// The default: the bound always holds.
    #[default]
    Primary,
    /// Keep the most advanced healthy replicas serving, up to
    /// [`min_serving_replicas`](Config::min_serving_replicas) of them (the "lag cascade" guard:
    /// a lagging fleet does not send every read to the primary at once), and flag every such
    /// route with [`Route::beyond_bound`](crate::Route::beyond_bound).
    StaleReplica,
}

/// Thresholds and timers of a [`ReplicaSet`](crate::ReplicaSet).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// Consecutive failures that mark a node down (default 3).
    pub fall: u32,
    /// Consecutive successful health reports that mark a down node up (default 2).
    pub rise: u32,
    /// What a bounded-staleness read does when no replica meets its bound (default
    /// [`BoundFallback::Primary`]).
    pub bound_fallback: BoundFallback,
    /// With [`BoundFallback::StaleReplica`]: if fewer replicas than this meet the bound, the
    /// most advanced healthy replicas keep serving up to this floor (default 1). Ignored with
    /// [`BoundFallback::Primary`].
    pub min_serving_replicas: usize,
    /// How long the primary must be down before
    /// [`check_failover`](crate::ReplicaSet::check_failover) starts a promotion (default 10 s).
    pub failover_after: Duration,
    /// Automatic promotion refuses a candidate this many positions behind the old primary's last
    /// known position (default: no limit), as Patroni's `maximum_lag_on_failover`.
    pub max_promotion_lag: Option<u64>,
    /// No automatic failover within this long after the previous one (default 60 s), as
    /// Orchestrator's anti-flapping period.
    pub quiet_period: Duration,
}

impl Config {
    /// Sets [`fall`](Config::fall).
    #[must_use]
    pub fn fall(mut self, failures: u32) -> Self {
        self.fall = failures.max(1);
        self
    }

    /// Sets [`rise`](Config::rise).
    #[must_use]
    pub fn rise(mut self, successes: u32) -> Self {
        self.rise = successes.max(1);
        self
    }

    /// Sets [`bound_fallback`](Config::bound_fallback).
    #[must_use]
    pub fn bound_fallback(mut self, fallback: BoundFallback) -> Self {
        self.bound_fallback = fallback;
        self
    }

    /// Sets [`min_serving_replicas`](Config::min_serving_replicas).
    #[must_use]
    pub fn min_serving_replicas(mut self, floor: usize) -> Self {
        self.min_serving_replicas = floor;
        self
    }

    /// Sets [`failover_after`](Config::failover_after).
    #[must_use]
    pub fn failover_after(mut self, after: Duration) -> Self {
        self.failover_after = after;
        self
    }

    /// Sets [`max_promotion_lag`](Config::max_promotion_lag).
    #[must_use]
    pub fn max_promotion_lag(mut self, max: Option<u64>) -> Self {
        self.max_promotion_lag = max;
        self
    }

    /// Sets [`quiet_period`](Config::quiet_period).
    #[must_use]
    pub fn quiet_period(mut self, quiet: Duration) -> Self {
        self.quiet_period = quiet;
        self
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            fall: 3,
            rise: 2,
            bound_fallback: BoundFallback::Primary,
            min_serving_replicas: 1,
            failover_after: Duration::from_secs(10),
            max_promotion_lag: None,
            quiet_period: Duration::from_secs(60),
        }
    }
}
