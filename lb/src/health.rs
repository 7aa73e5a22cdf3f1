//! Health settings: passive outlier detection ([`OutlierDetection`]) and [`SlowStart`].

use std::time::Duration;

use crate::{Error, Result};

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
/// assert_eq!(od.failure_threshold(), 3);
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

    /// Failures in a row that eject a backend (at least 1, which
    /// [`BalancerBuilder::build`](crate::BalancerBuilder::build) checks).
    pub fn consecutive_failures(mut self, n: u32) -> Self {
        self.consecutive_failures = n;
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

    /// The largest share of the pool ejected at once, in percent (0..=100, checked by
    /// [`BalancerBuilder::build`](crate::BalancerBuilder::build)); at least one backend may always
    /// be ejected.
    pub fn max_ejected_percent(mut self, pct: u8) -> Self {
        self.max_ejected_percent = pct;
        self
    }

    /// The configured failure threshold.
    #[must_use]
    pub fn failure_threshold(&self) -> u32 {
        self.consecutive_failures
    }

    /// The configured ejection cap, in percent of the pool.
    #[must_use]
    pub fn max_ejected(&self) -> u8 {
        self.max_ejected_percent
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if self.consecutive_failures == 0 {
            return Err(Error::invalid(
                "consecutive_failures",
                self.consecutive_failures,
                "must be >= 1",
            ));
        }
        if self.max_ejected_percent > 100 {
            return Err(Error::invalid(
                "max_ejected_percent",
                self.max_ejected_percent,
                "must be a percentage (0..=100)",
            ));
        }
        Ok(())
    }

    /// How many of `members` may be ejected at once (at least one).
    pub(crate) fn allowed(&self, members: usize) -> usize {
        (members * usize::from(self.max_ejected_percent) / 100).max(1)
    }

    /// The length of the `times`-th ejection.
    pub(crate) fn ejection_length(&self, times: u32) -> Duration {
        self.base_ejection
            .saturating_mul(times)
            .min(self.max_ejection)
    }
}

impl Default for OutlierDetection {
    fn default() -> Self {
        Self::new()
    }
}

/// Steps of a slow-start ramp: effective weights move in multiples of 1/20 of the full weight.
pub(crate) const RAMP_STEPS: u32 = 20;

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

    /// The starting share of the full weight, in percent (1..=100, checked by
    /// [`BalancerBuilder::build`](crate::BalancerBuilder::build)).
    pub fn min_percent(mut self, pct: u8) -> Self {
        self.min_percent = pct;
        self
    }

    /// The ramp's shape: the weight follows `(elapsed / window)^(1 / aggression)` (Envoy's
    /// `aggression`; 1 = linear, the default). Must be finite and above zero, which
    /// [`BalancerBuilder::build`](crate::BalancerBuilder::build) checks.
    pub fn aggression(mut self, aggression: f64) -> Self {
        self.aggression = aggression;
        self
    }

    /// The weight factor `elapsed` into the window (`elapsed < window`), in `(0, 1]`, rounded
    /// down to a multiple of `1 / RAMP_STEPS` (never below `min_percent`). Quantized so that
    /// the effective weights of a ramp keep a large common divisor: a weighted schedule built
    /// from them (smooth WRR's cycle) stays as short as the configured weights allow, and a
    /// ramp publishes at most `RAMP_STEPS` snapshots.
    pub(crate) fn factor(&self, elapsed: u64, window: u64) -> f64 {
        #[allow(clippy::cast_precision_loss)]
        let t = elapsed as f64 / window as f64;
        let shaped = if self.aggression == 1.0 {
            t
        } else {
            t.powf(1.0 / self.aggression)
        };
        let steps = f64::from(RAMP_STEPS);
        // (The nudge keeps a step that `ramp_from`'s 1 ns offset puts a hair short.)
        let stepped = (shaped * steps + 1e-6).floor() / steps;
        stepped.max(f64::from(self.min_percent) / 100.0).min(1.0)
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if self.window.is_zero() {
            return Err(Error::invalid(
                "slow_start",
                "window 0",
                "window must be > 0",
            ));
        }
        if !(1..=100).contains(&self.min_percent) {
            return Err(Error::invalid(
                "min_percent",
                self.min_percent,
                "must be a percentage (1..=100)",
            ));
        }
        if !(self.aggression.is_finite() && self.aggression > 0.0) {
            return Err(Error::invalid(
                "aggression",
                self.aggression,
                "must be finite and > 0",
            ));
        }
        Ok(())
    }
}
