//! Passive health: outlier detection (ejection), latency tracking, slow start, and the shared
//! control block every member points to.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use crossbeam_utils::CachePadded;
use parking_lot::{Condvar, Mutex};

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
/// failed health checks ramps its effective weight linearly from `min_percent` to 100% over
/// `window` (Envoy's slow start with aggression 1). Weighted policies see the ramp through
/// [`View::weight`](crate::View::weight); it has no effect on unweighted ones (round robin,
/// random, least connections).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct SlowStart {
    pub(crate) window: Duration,
    pub(crate) min_percent: u8,
}

impl SlowStart {
    /// Ramp over `window`, starting at 10%.
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            min_percent: 10,
        }
    }

    /// The starting share of the full weight, in percent (1..=100).
    pub fn min_percent(mut self, pct: u8) -> Self {
        self.min_percent = pct.clamp(1, 100);
        self
    }
}

/// Balancer-wide settings and signals, shared by every member and lease.
pub(crate) struct Control {
    pub(crate) clock: Box<dyn Clock>,
    pub(crate) outlier: Option<OutlierDetection>,
    pub(crate) slow_start: Option<SlowStart>,
    /// Latency EWMA time constant, nanoseconds (as f64 for the decay formula).
    pub(crate) decay_nanos: f64,
    pub(crate) failure_penalty_nanos: f64,
    /// Set when health changed and the snapshot must be republished.
    pub(crate) dirty: CachePadded<AtomicBool>,
    pub(crate) ejected: AtomicUsize,
    pub(crate) members: AtomicUsize,
    drain_lock: Mutex<()>,
    drain_cv: Condvar,
    #[cfg(feature = "tokio")]
    pub(crate) drain_notify: tokio::sync::Notify,
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
        #[allow(clippy::cast_precision_loss)]
        Ok(Self {
            clock,
            outlier,
            slow_start,
            decay_nanos: nanos(decay) as f64,
            failure_penalty_nanos: nanos(failure_penalty) as f64,
            dirty: CachePadded::new(AtomicBool::new(false)),
            ejected: AtomicUsize::new(0),
            members: AtomicUsize::new(0),
            drain_lock: Mutex::new(()),
            drain_cv: Condvar::new(),
            #[cfg(feature = "tokio")]
            drain_notify: tokio::sync::Notify::new(),
        })
    }

    #[inline]
    pub(crate) fn now(&self) -> u64 {
        self.clock.now_nanos()
    }

    pub(crate) fn mark_dirty(&self) {
        self.dirty.store(true, Ordering::Release);
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
        ewma * (-elapsed / self.decay_nanos).exp()
    }

    /// Folds one latency observation into the member's peak EWMA.
    pub(crate) fn observe(&self, c: &Counters, rtt_nanos: f64) {
        let now = self.now();
        let decayed = self.decayed_latency(c, now);
        let next = if rtt_nanos >= decayed || decayed == 0.0 {
            rtt_nanos
        } else {
            #[allow(clippy::cast_precision_loss)]
            let elapsed = now.saturating_sub(c.ewma_at.load(Ordering::Relaxed)) as f64;
            // Weight of the new sample grows with the time since the last one.
            let w_new = (1.0 - (-elapsed / self.decay_nanos).exp()).max(0.05);
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
        self.observe(c, nanos(latency) as f64);
    }

    pub(crate) fn on_failure(&self, c: &Counters, id: BackendId) {
        c.failures.fetch_add(1, Ordering::Relaxed);
        let decayed = self.decayed_latency(c, self.now());
        self.observe(c, self.failure_penalty_nanos.max(decayed * 2.0));
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

    pub(crate) fn notify_drained(&self) {
        let _guard = self.drain_lock.lock();
        self.drain_cv.notify_all();
        #[cfg(feature = "tokio")]
        self.drain_notify.notify_waiters();
    }

    /// Waits up to `slice` for a drain notification.
    pub(crate) fn wait_drain(&self, slice: Duration) {
        let mut guard = self.drain_lock.lock();
        let _ = self.drain_cv.wait_for(&mut guard, slice);
    }
}
