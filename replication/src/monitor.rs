//! Async position probes and health checks, and read-your-writes routes that wait for a replica.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::{Consistency, Intent, NodeId, Position, ReplicaSet, Result, Route};

/// Asks a node for its replication position: `pg_current_wal_lsn()` on a PostgreSQL primary,
/// `pg_last_wal_replay_lsn()` on a replica, `@@gtid_executed` on MySQL. A failed probe counts as
/// a failed health check.
pub trait PositionProbe<C>: Send + Sync {
    /// The probe's error type.
    type Error: std::fmt::Display + Send;

    /// The node's current position.
    fn position(&self, node: &C) -> impl Future<Output = Result<Position, Self::Error>> + Send;
}

/// What a [`monitor`] round does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct MonitorOptions {
    /// Time between rounds (default 1 s).
    pub interval: Duration,
    /// A probe slower than this counts as failed (default 500 ms).
    pub timeout: Duration,
    /// Whether each round ends with [`ReplicaSet::check_failover`] (default true).
    pub auto_failover: bool,
}

impl Default for MonitorOptions {
    fn default() -> Self {
        MonitorOptions {
            interval: Duration::from_secs(1),
            timeout: Duration::from_millis(500),
            auto_failover: true,
        }
    }
}

impl MonitorOptions {
    /// Sets the interval.
    #[must_use]
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// Sets the probe timeout.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Enables or disables automatic failover.
    #[must_use]
    pub fn auto_failover(mut self, on: bool) -> Self {
        self.auto_failover = on;
        self
    }
}

/// One round: probes every node in turn, each bounded by the timeout; a successful probe reports
/// the position and counts toward `rise`, a failed probe marks the node down at once, a timeout
/// counts toward `fall`; then checks for a due failover. Returns the promotion if one happened.
pub async fn monitor_once<C, P>(
    set: &ReplicaSet<C>,
    probe: &P,
    options: MonitorOptions,
) -> Option<crate::Promotion>
where
    C: Send + Sync,
    P: PositionProbe<C>,
{
    for (id, handle) in set.handles() {
        match tokio::time::timeout(options.timeout, probe.position(&handle)).await {
            Ok(Ok(position)) => {
                let _ = set.report_position(id, position);
                let _ = set.report_health(id, true);
            }
            Ok(Err(e)) => {
                // A refused or failed probe is hard evidence: down at once. (A timeout may be
                // a slow moment and counts toward the `fall` threshold instead.)
                tracing::debug!(node = id.0, error = %e, "position probe failed");
                let _ = set.mark_down(id);
            }
            Err(_) => {
                tracing::debug!(node = id.0, "position probe timed out");
                let _ = set.report_health(id, false);
            }
        }
    }
    if options.auto_failover {
        match set.check_failover() {
            Ok(promotion) => promotion,
            Err(e) => {
                tracing::warn!(error = %e, "automatic failover refused");
                None
            }
        }
    } else {
        None
    }
}

/// Runs [`monitor_once`] every `options.interval` until the future is dropped (cancel it by
/// dropping, or run it in `tokio::spawn` and abort the task).
pub async fn monitor<C, P>(set: Arc<ReplicaSet<C>>, probe: P, options: MonitorOptions)
where
    C: Send + Sync,
    P: PositionProbe<C>,
{
    let mut tick = tokio::time::interval(options.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        monitor_once(&set, &probe, options).await;
    }
}

impl<C> ReplicaSet<C> {
    /// Every node's id and handle (for probes and health checks).
    #[must_use]
    pub fn handles(&self) -> Vec<(NodeId, Arc<C>)> {
        self.topology
            .load()
            .members
            .iter()
            .map(|m| (m.id, m.handle.clone()))
            .collect()
    }

    /// Like [`route`](Self::route), but a `ReadYourWrites` or `MonotonicReads` read that no
    /// replica can serve yet waits up to `wait` for one to catch up (woken by
    /// [`report_position`](Self::report_position)) before falling back to the primary, as
    /// MaxScale's causal reads and MySQL Router's `wait_for_my_writes` do. Cancellation-safe.
    ///
    /// # Errors
    /// As [`route`](Self::route).
    pub async fn route_waiting(&self, intent: Intent, wait: Duration) -> Result<Route<'_, C>> {
        let waits = matches!(
            intent,
            Intent::Read(Consistency::ReadYourWrites(_) | Consistency::MonotonicReads(_))
        );
        let first = self.route(intent)?;
        if !waits || !first.is_primary() || first.fallback().is_none() {
            return Ok(first);
        }
        drop(first);
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let advanced = self.advanced.notified();
            let route = self.route(intent)?;
            if !route.is_primary() || route.fallback().is_none() {
                return Ok(route);
            }
            if tokio::time::timeout_at(deadline, advanced).await.is_err() {
                return Ok(route);
            }
        }
    }
}
