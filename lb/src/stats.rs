//! [`BalancerStats`] and [`BackendStats`]: what `stats()` reports.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::snapshot::WEIGHT_SCALE;
use crate::{BackendId, Balancer, Health, Policy};

/// One backend's counters and state.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct BackendStats {
    /// Its id.
    pub id: BackendId,
    /// Its zone.
    pub zone: Option<Arc<str>>,
    /// Health as the balancer sees it.
    pub health: Health,
    /// Whether it is draining.
    pub draining: bool,
    /// Whether picks can choose it now (healthy, serving; or any serving backend in panic mode).
    pub eligible: bool,
    /// Configured weight.
    pub weight: u32,
    /// Weight after slow start, as a multiple of the configured unit (0 when not eligible).
    pub effective_weight: f64,
    /// Leases held now.
    pub in_flight: u64,
    /// Picks that chose this backend (exact, 64-bit). A pick refused by the backend (it began
    /// draining under a racing pick, or is saturated) counts here and as cancelled.
    pub picks: u64,
    /// Leases reported successful.
    pub successes: u64,
    /// Leases reported failed.
    pub failures: u64,
    /// Leases dropped without an outcome, and refused picks
    /// (`picks - successes - failures - in_flight`).
    pub cancelled: u64,
    /// Times ejected by outlier detection.
    pub ejections: u32,
    /// Peak-EWMA latency estimate, if any response was observed.
    pub latency: Option<Duration>,
}

/// A balancer-wide snapshot of counters and state.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct BalancerStats {
    /// The policy's name.
    pub policy: &'static str,
    /// Per backend, in membership order.
    pub backends: Vec<BackendStats>,
    /// Backends picks can choose now.
    pub eligible: usize,
    /// Whether the panic threshold is in effect.
    pub panic_mode: bool,
    /// Snapshot version: increases with every membership or health change.
    pub version: u64,
}

impl<B, P: Policy<B>> Balancer<B, P> {
    /// Counters and state of every backend. Allocates; not for the hot path.
    pub fn stats(&self) -> BalancerStats {
        let snap = self.snapshot();
        let backends = snap
            .all
            .iter()
            .zip(&snap.weights_all)
            .map(|(m, &weight)| {
                let c = m.counters();
                // Picks first: every lease in `in_flight` is then also in `picks`.
                let picks = c.refs.picks();
                let in_flight = c.refs.in_flight();
                let successes = c.successes.load(Ordering::Relaxed);
                let failures = c.failures.load(Ordering::Relaxed);
                let pos = snap.eligible.iter().position(|e| e.same(m));
                let ewma = m.ewma_latency_nanos();
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                let latency = (ewma > 0.0).then(|| Duration::from_nanos(ewma as u64));
                BackendStats {
                    id: m.id(),
                    zone: m.zone_arc().clone(),
                    health: m.health(),
                    draining: m.is_draining(),
                    eligible: pos.is_some(),
                    weight,
                    effective_weight: pos.map_or(0.0, |i| {
                        f64::from(snap.weights[i]) / f64::from(WEIGHT_SCALE)
                    }),
                    in_flight,
                    picks,
                    successes,
                    failures,
                    cancelled: picks.saturating_sub(successes + failures + in_flight),
                    ejections: c.ejections.load(Ordering::Relaxed),
                    latency,
                }
            })
            .collect();
        BalancerStats {
            policy: self.policy().name(),
            backends,
            eligible: snap.eligible.len(),
            panic_mode: snap.panic,
            version: snap.version,
        }
    }
}
