//! Async position probes and health checks, automatic failover through the promotion hook,
//! and probes on demand for waiting reads (feature `tokio`).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::{NodeId, Observation, ReplicaSet, Result};

/// Asks a node where it is: its applied position (`pg_last_wal_replay_lsn()` on a PostgreSQL
/// replica, the WAL insert position on a primary), its received position
/// (`pg_last_wal_receive_lsn()`) and whether it takes writes (`pg_is_in_recovery()`). A
/// failed probe counts as a failed health check. A probe that only knows a position returns
/// `Ok(position.into())`.
pub trait PositionProbe<C>: Send + Sync {
    /// The probe's error type.
    type Error: std::fmt::Display + Send;

    /// What the node reports now.
    fn observe(&self, node: &C) -> impl Future<Output = Result<Observation, Self::Error>> + Send;
}

/// What a [`monitor`] round does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct MonitorOptions {
    /// Time between rounds (default 1 s).
    pub interval: Duration,
    /// A probe slower than this counts as failed (default 500 ms).
    pub timeout: Duration,
    /// Whether each round ends with [`ReplicaSet::failover`] (default true).
    pub auto_failover: bool,
    /// The least time between two rounds asked for by waiting reads
    /// ([`ReplicaSet::request_probe`]; default 1 ms), so waiters cannot flood the nodes.
    pub on_demand_gap: Duration,
}

impl Default for MonitorOptions {
    fn default() -> Self {
        MonitorOptions {
            interval: Duration::from_secs(1),
            timeout: Duration::from_millis(500),
            auto_failover: true,
            on_demand_gap: Duration::from_millis(1),
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

    /// Sets the least time between two on-demand rounds.
    #[must_use]
    pub fn on_demand_gap(mut self, gap: Duration) -> Self {
        self.on_demand_gap = gap;
        self
    }
}

/// One round: probes every node in turn, each bounded by the timeout; a successful probe
/// reports its observation and counts toward `rise`, a failed probe marks the node down at
/// once, a timeout counts toward `fall`; then, with `auto_failover`, runs
/// [`ReplicaSet::failover`] (which calls the promotion hook). Returns the promotion if one
/// finished; every promotion is also an [`Event`](crate::Event).
pub async fn monitor_once<C, P>(
    set: &ReplicaSet<C>,
    probe: &P,
    options: MonitorOptions,
) -> Option<crate::Promotion>
where
    C: Send + Sync,
    P: PositionProbe<C>,
{
    probe_round(set, probe, options).await;
    if !options.auto_failover {
        return None;
    }
    match set.failover().await {
        Ok(promotion) => promotion,
        Err(e) => {
            tracing::warn!(error = %e, "automatic failover did not happen");
            None
        }
    }
}

async fn probe_round<C, P>(set: &ReplicaSet<C>, probe: &P, options: MonitorOptions)
where
    C: Send + Sync,
    P: PositionProbe<C>,
{
    for (id, handle) in set.handles() {
        // Taken before asking: the node was at most where it answers at this time.
        let at = set.clock.now_nanos();
        match tokio::time::timeout(options.timeout, probe.observe(&handle)).await {
            Ok(Ok(observation)) => {
                let _ = set.report_observation(id, observation, Some(at));
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
    // Waiting reads re-check even if no position moved.
    set.advanced.notify_waiters();
}

/// Runs [`monitor_once`] every `options.interval`, and a probe round (no failover check) as
/// soon as a waiting read asks for one ([`ReplicaSet::request_probe`]), until the future is
/// dropped (cancel it by dropping, or run it in `tokio::spawn` and abort the task).
pub async fn monitor<C, P>(set: Arc<ReplicaSet<C>>, probe: P, options: MonitorOptions)
where
    C: Send + Sync,
    P: PositionProbe<C>,
{
    let mut next = tokio::time::Instant::now();
    loop {
        let wanted = set.probe_wanted.notified();
        match tokio::time::timeout_at(next, wanted).await {
            Ok(()) => {
                probe_round(&set, &probe, options).await;
                tokio::time::sleep(options.on_demand_gap).await;
            }
            Err(_) => {
                monitor_once(&set, &probe, options).await;
                let now = tokio::time::Instant::now();
                // `interval` may be huge (periodic rounds off): no deadline then.
                next = now
                    .checked_add(options.interval)
                    .unwrap_or_else(|| now + Duration::from_secs(86_400 * 365));
            }
        }
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

    /// Asks a running [`monitor`] for a probe round now (coalesced; at most one per
    /// `on_demand_gap`). Waiting reads call it, so a replica that catches up in a millisecond
    /// serves them a millisecond later, not at the next periodic round.
    pub fn request_probe(&self) {
        self.probe_wanted.notify_one();
    }

    /// Every [`Event`](crate::Event) from now on, through a tokio broadcast channel (a receiver
    /// that falls more than 64 events behind sees `RecvError::Lagged`).
    #[must_use]
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<crate::Event> {
        match &self.listeners.channel {
            Some(tx) => tx.subscribe(),
            None => tokio::sync::broadcast::channel(1).1,
        }
    }
}
