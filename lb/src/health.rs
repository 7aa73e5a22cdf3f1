//! Passive health: outlier detection (ejection), latency tracking, slow start, and the shared
//! control block every member points to.

use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use crossbeam_utils::CachePadded;

use crate::backend::{Counters, HEALTH_EJECTED, HEALTH_HEALTHY};
use crate::clock::{Clock, nanos};
use crate::{BackendId, Error, Result};

/// Passive outlier detection (Envoy's `consecutive_5xx`): a backend whose leases report
/// `consecutive_failures` failures in a row is ejected for `base_ejection x times ejected`
/// (capped at `max_ejection`), unless that would put more than `max_ejected_percent` of the
/// pool out (at least one backend may always be ejected). It returns on its own when the time
/// is up, with slow start if configured.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use tierkit_lb::OutlierDetection;
///
/// let od = OutlierDetection::new().consecutive_failures(3).base_ejection(Duration::from_secs(10));
/// assert_eq!(od.consecutive_failures_value(), 3);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
#[must_use]
pub struct OutlierDetection {
    consecutive_failures: u32,
    base_ejection: Duration,
    max_ejection: Duration,
    max_ejected_percent: u8,
}

impl OutlierDetection {
    /// Envoy's defaults: 5 consecutive failures, 30 s base ejection, 300 s cap, at most 10% of
    /// the pool ejected (but always at least one backend).
    pub fn new() -> Self {
        Self {
            consecutive_failures: 5,
            base_ejection: Duration::from_secs(30),
            max_ejection: Duration::from_secs(300),
            max_ejected_percent: 10,
        }
    }

    /// Failures in a row that eject a backend (0 is treated as 1).
    pub fn consecutive_failures(mut self, n: u32) -> Self {
        self.consecutive_failures = n.max(1);
        self
    }

    /// The first ejection's length; the k-th lasts k times as long, up to `max_ejection`.
    pub fn base_ejection(mut self, d: Duration) -> Self {
        self.base_ejection = d;
        self
    }

    /// The longest ejection.
    pub fn max_ejection(mut self, d: Duration) -> Self {
        self.max_ejection = d;
        self
    }

    /// The largest share of the pool ejected at once, in percent (values above 100 mean 100).
    pub fn max_ejected_percent(mut self, pct: u8) -> Self {
        self.max_ejected_percent = pct.min(100);
        self
    }

    /// The configured failure threshold.
    #[must_use]
    pub fn consecutive_failures_value(&self) -> u32 {
        self.consecutive_failures
    }
}

impl Default for OutlierDetection {
    fn default() -> Self {
        Self::new()
    }
}

/// Slow start: a backend that joins (after the balancer is built) or returns from ejection or
/// failed health checks ramps its effective weight from `min_percent` to 100% over `window`,
/// following Envoy's curve: `weight x max(min_percent / 100, (elapsed / window)^(1 / aggression))`.
/// The default aggression, 1, ramps linearly; below 1 the ramp holds traffic back early and
/// catches up late (0.5 is quadratic), which suits backends whose own warm-up (a cold cache, a
/// JIT) is slow; above 1 it hands out traffic sooner. Weighted policies see the ramp through
/// [`View::weight`](crate::View::weight); it has no effect on unweighted ones (round robin,
/// random, least connections).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use tierkit_lb::{Backend, Balancer, SlowStart, WeightedRoundRobin};
///
/// // Quartic: the minimum 10% until 56% of the window, half the weight at 84% of it.
/// let ss = SlowStart::new(Duration::from_secs(30)).aggression(0.25);
/// let lb = Balancer::builder(WeightedRoundRobin::new())
///     .backend(Backend::new(1, "10.0.0.1:80"))
///     .slow_start(ss)
///     .build()?;
/// # Ok::<(), tierkit_lb::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
#[must_use]
pub struct SlowStart {
    pub(crate) window: Duration,
    pub(crate) min_percent: u8,
    pub(crate) aggression: f64,
}

impl SlowStart {
    /// Ramp over `window`, linearly, starting at 10%.
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            min_percent: 10,
            aggression: 1.0,
        }
    }

    /// The starting share of the full weight, in percent (1..=100).
    pub fn min_percent(mut self, pct: u8) -> Self {
        self.min_percent = pct.clamp(1, 100);
        self
    }

    /// The ramp's shape: the weight follows `(elapsed / window)^(1 / aggression)` (Envoy's
    /// `aggression`; 1 = linear, the default). Must be finite and above zero, which
    /// [`BalancerBuilder::build`](crate::BalancerBuilder::build) checks.
    pub fn aggression(mut self, aggression: f64) -> Self {
        self.aggression = aggression;
        self
    }

    /// The weight factor `elapsed` into the window (`elapsed < window`), in `(0, 1]`.
    pub(crate) fn factor(&self, elapsed: u64, window: u64) -> f64 {
        #[allow(clippy::cast_precision_loss)]
        let t = elapsed as f64 / window as f64;
        let shaped = if self.aggression == 1.0 {
            t
        } else {
            t.powf(1.0 / self.aggression)
        };
        shaped.max(f64::from(self.min_percent) / 100.0)
    }
}

/// Balancer-wide settings and signals, shared by every member and lease.
pub(crate) struct Control {
    pub(crate) clock: Box<dyn Clock>,
    pub(crate) outlier: Option<OutlierDetection>,
    pub(crate) slow_start: Option<SlowStart>,
    /// Latency EWMA time constant, nanoseconds (as f64 for the decay formula), and its inverse.
    pub(crate) decay_nanos: f64,
    inv_decay_nanos: f64,
    pub(crate) failure_penalty_nanos: f64,
    /// Clock nanos at which the published snapshot goes stale: the next time-driven change
    /// (ejection end, slow-start step); 0 = now (a health change on the pick path); `u64::MAX` =
    /// never. Picks read this one word (and the clock only when it is a time) to decide whether
    /// to republish.
    pub(crate) refresh_at: CachePadded<AtomicU64>,
    pub(crate) ejected: AtomicUsize,
    pub(crate) members: AtomicUsize,
    /// The clock reading of the most recent latency observation (any backend): the "now" that
    /// picks decay latency estimates to, so a pick reads no clock.
    latest: CachePadded<AtomicU64>,
}

impl fmt::Debug for Control {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Control")
            .field("outlier", &self.outlier)
            .field("slow_start", &self.slow_start)
            .field("ejected", &self.ejected.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Control {
    pub(crate) fn new(
        clock: Box<dyn Clock>,
        outlier: Option<OutlierDetection>,
        slow_start: Option<SlowStart>,
        decay: Duration,
        failure_penalty: Duration,
    ) -> Result<Self> {
        if decay.is_zero() {
            return Err(Error::InvalidConfig {
                name: "latency_decay",
                reason: "must be > 0",
            });
        }
        if slow_start.is_some_and(|s| s.window.is_zero()) {
            return Err(Error::InvalidConfig {
                name: "slow_start",
                reason: "window must be > 0",
            });
        }
        if slow_start.is_some_and(|s| !(s.aggression.is_finite() && s.aggression > 0.0)) {
            return Err(Error::InvalidConfig {
                name: "slow_start",
                reason: "aggression must be finite and > 0",
            });
        }
        #[allow(clippy::cast_precision_loss)]
        Ok(Self {
            clock,
            outlier,
            slow_start,
            decay_nanos: nanos(decay) as f64,
            inv_decay_nanos: 1.0 / nanos(decay) as f64,
            failure_penalty_nanos: nanos(failure_penalty) as f64,
            refresh_at: CachePadded::new(AtomicU64::new(u64::MAX)),
            ejected: AtomicUsize::new(0),
            members: AtomicUsize::new(0),
            latest: CachePadded::new(AtomicU64::new(0)),
        })
    }

    #[inline]
    pub(crate) fn now(&self) -> u64 {
        self.clock.now_nanos()
    }

    pub(crate) fn mark_dirty(&self) {
        self.refresh_at.store(0, Ordering::Release);
    }

    /// The EWMA decayed to `now`: `ewma x exp(-elapsed / tau)`. An estimate not refreshed for
    /// longer than `tau` counts as unknown (0), so a backend that was penalised and then left
    /// alone gets probed again instead of waiting for the decay to reach its peers' latency.
    #[inline]
    pub(crate) fn decayed_latency(&self, c: &Counters, now: u64) -> f64 {
        let ewma = f64::from_bits(c.ewma_bits.load(Ordering::Relaxed));
        if ewma == 0.0 {
            return 0.0;
        }
        #[allow(clippy::cast_precision_loss)]
        let elapsed = now.saturating_sub(c.ewma_at.load(Ordering::Relaxed)) as f64;
        if elapsed > self.decay_nanos {
            return 0.0;
        }
        ewma * exp_neg_unit(elapsed * self.inv_decay_nanos)
    }

    /// The time of the most recent latency observation: where picks decay estimates to.
    #[inline]
    pub(crate) fn latest_observation(&self) -> u64 {
        self.latest.load(Ordering::Relaxed)
    }

    /// Folds one latency observation made at `now` into the member's peak EWMA.
    pub(crate) fn observe(&self, c: &Counters, rtt_nanos: f64, now: u64) {
        // A plain store, not `fetch_max`: a racing observer may move it back by a moment, which
        // only shortens one decay by as much (`elapsed` saturates at zero).
        if now > self.latest.load(Ordering::Relaxed) {
            self.latest.store(now, Ordering::Relaxed);
        }
        let decayed = self.decayed_latency(c, now);
        let next = if rtt_nanos >= decayed || decayed == 0.0 {
            rtt_nanos
        } else {
            #[allow(clippy::cast_precision_loss)]
            let elapsed = now.saturating_sub(c.ewma_at.load(Ordering::Relaxed)) as f64;
            // Weight of the new sample grows with the time since the last one.
            let w_new = (1.0 - exp_neg_unit(elapsed * self.inv_decay_nanos)).max(0.05);
            decayed * (1.0 - w_new) + rtt_nanos * w_new
        };
        c.ewma_bits.store(next.to_bits(), Ordering::Relaxed);
        c.ewma_at.store(now, Ordering::Relaxed);
    }

    pub(crate) fn on_success(&self, c: &Counters, latency: Duration) {
        c.successes.fetch_add(1, Ordering::Relaxed);
        if c.consecutive_failures.load(Ordering::Relaxed) != 0 {
            c.consecutive_failures.store(0, Ordering::Relaxed);
        }
        #[allow(clippy::cast_precision_loss)]
        self.observe(c, nanos(latency) as f64, self.now());
    }

    pub(crate) fn on_failure(&self, c: &Counters, id: BackendId) {
        c.failures.fetch_add(1, Ordering::Relaxed);
        let now = self.now();
        let decayed = self.decayed_latency(c, now);
        self.observe(c, self.failure_penalty_nanos.max(decayed * 2.0), now);
        let streak = c.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
        if let Some(od) = self.outlier
            && streak >= od.consecutive_failures
        {
            self.try_eject(c, id, od);
        }
    }

    fn try_eject(&self, c: &Counters, id: BackendId, od: OutlierDetection) {
        let members = self.members.load(Ordering::Relaxed);
        let allowed = (members * usize::from(od.max_ejected_percent) / 100).max(1);
        if self.ejected.load(Ordering::Relaxed) >= allowed {
            tracing::warn!(backend = %id, allowed, "ejection skipped: max ejected percent reached");
            c.consecutive_failures.store(0, Ordering::Relaxed);
            return;
        }
        if c.health
            .compare_exchange(
                HEALTH_HEALTHY,
                HEALTH_EJECTED,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_err()
        {
            return;
        }
        self.ejected.fetch_add(1, Ordering::Relaxed);
        let times = c.ejections.fetch_add(1, Ordering::Relaxed) + 1;
        let length = od.base_ejection.saturating_mul(times).min(od.max_ejection);
        c.ejected_until
            .store(self.now().saturating_add(nanos(length)), Ordering::Release);
        c.consecutive_failures.store(0, Ordering::Relaxed);
        tracing::warn!(backend = %id, times, ejected_for = ?length, "backend ejected");
        self.mark_dirty();
    }
}

/// `e^-x` for `x` in `[0, 1]` (clamped), relative error below 3e-6: `e^-1/2 x e^(1/2 - x)` with a
/// degree-6 Taylor polynomial for the second factor (`|1/2 - x| <= 1/2`). The latency decay runs
/// on every least-latency pick; a libm `exp` call costs several times more, and the decay needs
/// no more precision than this.
#[inline]
pub(crate) fn exp_neg_unit(x: f64) -> f64 {
    let t = 0.5 - x.clamp(0.0, 1.0);
    let p = 1.0
        + t * (1.0
            + t * (1.0 / 2.0
                + t * (1.0 / 6.0 + t * (1.0 / 24.0 + t * (1.0 / 120.0 + t * (1.0 / 720.0))))));
    p * 0.606_530_659_712_633_4
}

#[cfg(test)]
mod tests {
    use super::exp_neg_unit;

    #[test]
    fn exp_neg_unit_matches_exp() {
        for k in 0..=10_000 {
            let x = f64::from(k) / 10_000.0;
            let (got, want) = (exp_neg_unit(x), (-x).exp());
            assert!(((got - want) / want).abs() < 3e-6, "x {x}: {got} vs {want}");
        }
        assert_eq!(exp_neg_unit(-1.0), exp_neg_unit(0.0));
        assert_eq!(exp_neg_unit(2.0), exp_neg_unit(1.0));
    }
}
