//! [`Control`]: the balancer-wide settings and signals every member and lease points to
//! (clock, outlier detection, slow start, latency decay, the refresh word and the ejection
//! count), and the failure path that ejects.

use std::fmt;
use std::sync::atomic::AtomicBool;
use std::sync::{OnceLock, Weak};
use std::time::Duration;

use crossbeam_utils::CachePadded;

use crate::backend::Counters;
use crate::eject;
use crate::sync::{AtomicU64, AtomicUsize, Ordering};
use crate::{BackendId, Clock, OutlierDetection, Result, SlowStart};

/// Nanoseconds in `d`, saturating.
pub(crate) fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// A balancer's shared core as the failure path and the background refresher see it.
pub(crate) trait Republish: Send + Sync {
    /// Publishes a snapshot now (blocking on the membership lock).
    fn republish(&self);
    /// Publishes if stale or asked to; the clock time of the next time-driven change, if any.
    fn refresh_if_due(&self) -> Option<u64>;
    /// The balancer's clock.
    fn clock_now(&self) -> u64;
}

/// Balancer-wide settings and signals, shared by every member and lease.
pub(crate) struct Control {
    pub(crate) clock: Box<dyn Clock>,
    pub(crate) outlier: Option<OutlierDetection>,
    pub(crate) slow_start: Option<SlowStart>,
    /// Latency EWMA time constant in nanoseconds, and its inverse (for the decay formula).
    decay_nanos: u64,
    inv_decay_nanos: f64,
    pub(crate) failure_penalty_nanos: f64,
    /// Clock nanos at which the published snapshot goes stale: the next time-driven change
    /// (ejection end, slow-start step); 0 = now (a health change on the pick path); `u64::MAX` =
    /// never. Picks read this one word (and the clock only when it is a time) to decide whether
    /// to republish.
    pub(crate) refresh_at: CachePadded<AtomicU64>,
    /// Ejection slots taken (`eject.rs`).
    pub(crate) ejected: AtomicUsize,
    pub(crate) members: AtomicUsize,
    /// A pick found the snapshot stale and asked the background refresher for a publish.
    pub(crate) refresh_requested: AtomicBool,
    /// A thread let go of a replaced snapshot: the refresher frees what no one holds.
    pub(crate) reap_requested: AtomicBool,
    /// The balancer's core, for publishing an ejection from the failure path.
    pub(crate) republish: OnceLock<Weak<dyn Republish>>,
    /// The clock reading of the most recent latency observation (any backend): the "now" that
    /// picks decay latency estimates to, so a pick reads no clock.
    latest: CachePadded<AtomicU64>,
    /// Whether leases maintain `total_in_flight` ([`Policy::counts_total_in_flight`]; set
    /// before any member exists).
    ///
    /// [`Policy::counts_total_in_flight`]: crate::Policy::counts_total_in_flight
    pub(crate) count_total: bool,
    /// Leases alive on this balancer's members (removed, draining and ejected ones included),
    /// kept only when `count_total`: incremented on a pick before its lease exists, decremented
    /// by a lease's drop before it releases its backend.
    pub(crate) total_in_flight: CachePadded<AtomicU64>,
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
            return Err(crate::Error::invalid("latency_decay", "0 s", "must be > 0"));
        }
        if let Some(od) = &outlier {
            od.validate()?;
        }
        if let Some(ss) = &slow_start {
            ss.validate()?;
        }
        #[allow(clippy::cast_precision_loss)]
        Ok(Self {
            clock,
            outlier,
            slow_start,
            decay_nanos: nanos(decay),
            inv_decay_nanos: 1.0 / nanos(decay) as f64,
            failure_penalty_nanos: nanos(failure_penalty) as f64,
            refresh_at: CachePadded::new(AtomicU64::new(u64::MAX)),
            ejected: AtomicUsize::new(0),
            members: AtomicUsize::new(0),
            refresh_requested: AtomicBool::new(false),
            reap_requested: AtomicBool::new(false),
            republish: OnceLock::new(),
            latest: CachePadded::new(AtomicU64::new(0)),
            count_total: false,
            total_in_flight: CachePadded::new(AtomicU64::new(0)),
        })
    }

    #[inline]
    pub(crate) fn now(&self) -> u64 {
        self.clock.now_nanos()
    }

    pub(crate) fn mark_dirty(&self) {
        self.refresh_at.store(0, Ordering::Release);
    }

    /// Whether the published snapshot is stale (a pick's check: one load, and a clock read
    /// only when a time-driven change is pending).
    #[inline]
    pub(crate) fn is_stale(&self) -> bool {
        let at = self.refresh_at.load(Ordering::Relaxed);
        at != u64::MAX && (at == 0 || self.now() >= at)
    }

    /// Asks the background refresher for a publish (a pick that found the snapshot stale): one
    /// flag and, the first time, an unpark; no lock, no allocation, no rebuild.
    #[cold]
    pub(crate) fn request_refresh(&self) {
        if !self.refresh_requested.swap(true, Ordering::AcqRel) {
            crate::refresher::wake();
        }
    }

    /// Asks the background refresher to free replaced snapshots (a thread dropped its cached
    /// copy of one): one flag and, the first time, an unpark.
    #[cold]
    pub(crate) fn request_reap(&self) {
        if !self.reap_requested.swap(true, Ordering::AcqRel) {
            crate::refresher::wake();
        }
    }

    /// The EWMA decayed to `now`: `ewma x exp(-elapsed / tau)`. An estimate not refreshed for
    /// longer than `tau` counts as unknown (0), so a backend that was penalised and then left
    /// alone gets probed again instead of waiting for the decay to reach its peers' latency.
    #[inline]
    pub(crate) fn decayed_latency(&self, c: &Counters, now: u64) -> f64 {
        self.decay(c, now).0
    }

    /// The decayed EWMA and the decay factor `exp(-elapsed / tau)`; `(0, 0)` when unknown.
    #[inline]
    fn decay(&self, c: &Counters, now: u64) -> (f64, f64) {
        let ewma = f64::from_bits(c.ewma_bits.load(Ordering::Relaxed));
        if ewma == 0.0 {
            return (0.0, 0.0);
        }
        let elapsed = now.saturating_sub(c.ewma_at.load(Ordering::Relaxed));
        if elapsed > self.decay_nanos {
            return (0.0, 0.0);
        }
        // Through `i64`: x86-64 converts signed integers to floats in one instruction, unsigned
        // ones in four (`elapsed` fits unless `tau` exceeds 292 years).
        #[allow(clippy::cast_precision_loss)]
        let elapsed = i64::try_from(elapsed).unwrap_or(i64::MAX) as f64;
        let factor = exp_neg_unit(elapsed * self.inv_decay_nanos);
        (ewma * factor, factor)
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
        let (decayed, factor) = self.decay(c, now);
        let next = if rtt_nanos >= decayed || decayed == 0.0 {
            rtt_nanos
        } else {
            // Weight of the new sample grows with the time since the last one.
            let w_new = (1.0 - factor).max(0.05);
            decayed * (1.0 - w_new) + rtt_nanos * w_new
        };
        c.ewma_bits.store(next.to_bits(), Ordering::Relaxed);
        c.ewma_at.store(now, Ordering::Relaxed);
    }

    /// A success after `latency_nanos`, observed at `now` (a reading of the balancer's clock).
    pub(crate) fn on_success(&self, c: &Counters, latency_nanos: u64, now: u64) {
        c.successes.fetch_add(1, Ordering::Relaxed);
        if c.consecutive_failures.load(Ordering::Relaxed) != 0 {
            c.consecutive_failures.store(0, Ordering::Relaxed);
        }
        #[allow(clippy::cast_precision_loss)]
        self.observe(c, latency_nanos as f64, now);
    }

    pub(crate) fn on_failure(&self, c: &Counters, id: BackendId) {
        c.failures.fetch_add(1, Ordering::Relaxed);
        let now = self.now();
        let decayed = self.decayed_latency(c, now);
        self.observe(c, self.failure_penalty_nanos.max(decayed * 2.0), now);
        let streak = c.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
        if let Some(od) = self.outlier
            && streak == od.failure_threshold()
        {
            self.try_eject(c, id, od);
        }
    }

    fn try_eject(&self, c: &Counters, id: BackendId, od: OutlierDetection) {
        let allowed = od.allowed(self.members.load(Ordering::Relaxed));
        // Only the failure that completed the streak ejects; the others see a larger streak.
        if !eject::reserve_slot(&self.ejected, allowed) {
            tracing::warn!(backend = %id, allowed, "ejection skipped: max ejected percent reached");
            c.consecutive_failures.store(0, Ordering::Relaxed);
            return;
        }
        let times = c.ejections.load(Ordering::Relaxed).saturating_add(1);
        let length = od.ejection_length(times);
        let deadline = self.now().saturating_add(nanos(length));
        if !eject::eject(&c.health, &c.ejected_until, deadline) {
            // Not healthy (already ejected, failing checks) or raced: give the slot back.
            eject::release_slot(&self.ejected);
            return;
        }
        c.ejections.fetch_add(1, Ordering::Relaxed);
        c.consecutive_failures.store(0, Ordering::Relaxed);
        tracing::warn!(backend = %id, times, ejected_for = ?length, "backend ejected");
        self.mark_dirty();
        // Published on this (the mutating) call, never by a pick.
        if let Some(core) = self.republish.get().and_then(Weak::upgrade) {
            core.republish();
        }
    }
}

/// `e^-x` for `x` in `[0, 1]` (clamped), relative error below 7e-7: a degree-5 minimax
/// polynomial (coefficients from a Remez fit of the relative error on `[0, 1]`), evaluated by
/// Estrin's scheme, whose dependency chain is about half as long as Horner's (three
/// multiply-add levels instead of five). The latency decay runs on every least-latency pick, on
/// its critical path; a libm `exp` call costs several times more, and the decay needs no more
/// precision than this.
#[inline]
pub(crate) fn exp_neg_unit(x: f64) -> f64 {
    const C: [f64; 6] = [
        0.999_999_327_003_135,
        -0.999_957_515_913_296_2,
        0.499_543_064_358_309_86,
        -0.164_803_922_556_817_7,
        0.038_107_717_125_884_89,
        -0.005_009_476_427_484_095_6,
    ];
    let x = x.clamp(0.0, 1.0);
    let x2 = x * x;
    let x4 = x2 * x2;
    (C[0] + C[1] * x) + x2 * (C[2] + C[3] * x) + x4 * (C[4] + C[5] * x)
}

#[cfg(test)]
mod tests {
    use super::exp_neg_unit;

    #[test]
    fn exp_neg_unit_matches_exp() {
        for k in 0..=10_000 {
            let x = f64::from(k) / 10_000.0;
            let (got, want) = (exp_neg_unit(x), (-x).exp());
            assert!(((got - want) / want).abs() < 7e-7, "x {x}: {got} vs {want}");
        }
        assert_eq!(exp_neg_unit(-1.0), exp_neg_unit(0.0));
        assert_eq!(exp_neg_unit(2.0), exp_neg_unit(1.0));
    }
}
