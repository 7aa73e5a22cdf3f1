//! [`LeastLatency`]: power of two choices weighed by peak-EWMA latency.

use crate::error::Result;
use crate::policy::p2c::{MAX_CHOICES, PowerOfTwoChoices, least, sample_distinct};
use crate::{Context, Policy, View};

/// Power of two choices where a backend's cost is its peak-EWMA latency times its load:
/// `ewma * (in_flight + 1) / weight`, the cost model of Finagle's and Linkerd's `PeakEwma`.
///
/// - **Peak**: a latency above the average replaces it at once, so a backend that turns slow
///   is avoided after one slow response; lower latencies pull the average down gradually.
/// - **Decay**: the average decays exponentially with the time since the last observation (time
///   constant `tau` from [`BalancerBuilder::latency_decay`](crate::BalancerBuilder::latency_decay),
///   10 s by default), and an estimate older than `tau` counts as unknown, so a backend that was
///   penalised and then left alone is probed again after at most `tau`. A backend returning from
///   ejection or failed health checks starts with no estimate. A pick reads no clock: it decays
///   estimates to the time of the balancer's most recent observation (any backend's
///   [`success`](crate::Lease::success) or [`failure`](crate::Lease::failure), which read the
///   clock once each), which trails the present by the gap between two responses. While no
///   response arrives at all, estimates stop ageing.
/// - **Failures count as slow**: a failure is recorded as a latency of
///   [`failure_penalty`](crate::BalancerBuilder::failure_penalty), so a backend that fails fast
///   does not look fast.
/// - A backend with no observation yet is costed at its competitor's latency, so it competes on
///   load alone instead of attracting a burst.
///
/// Latencies come from [`Lease::success`](crate::Lease::success).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use tierkit_lb::{Backend, Balancer, Context, LeastLatency};
///
/// let lb = Balancer::builder(LeastLatency::new()).backends((0..2).map(|i| Backend::new(i, i))).build()?;
/// lb.pick(&Context::new())?.success(Duration::from_millis(2));
/// # Ok::<(), tierkit_lb::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct LeastLatency {
    p2c: PowerOfTwoChoices,
}

impl LeastLatency {
    /// Two choices.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Best of `k` distinct choices.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`](crate::Error::InvalidConfig) unless `2 <= k <= 8`.
    pub fn with_choices(k: usize) -> Result<Self> {
        Ok(Self {
            p2c: PowerOfTwoChoices::with_choices(k)?,
        })
    }
}

impl<B> Policy<B> for LeastLatency {
    type Prepared = ();

    fn prepare(&self, _view: &View<'_, B>) {}

    #[inline]
    fn pick(&self, _: &(), view: &View<'_, B>, ctx: &Context<'_>) -> Option<usize> {
        let mut cands = [0; MAX_CHOICES];
        let k = sample_distinct(view.len(), self.p2c.choices(), &mut cands);
        let cands = &cands[..k];
        // No clock read: estimates decay to the latest observation (see the type's docs).
        let now = view.latest_observation();
        let mut lat = [0.0f64; MAX_CHOICES];
        let mut known = 0.0f64;
        for (slot, &i) in lat.iter_mut().zip(cands) {
            *slot = view.decayed_latency(i, now);
            known = known.max(*slot);
        }
        if known == 0.0 {
            known = 1.0;
        }
        #[allow(clippy::cast_precision_loss)]
        least(view, ctx, cands, |j, i| {
            let l = if lat[j] > 0.0 { lat[j] } else { known };
            (
                l * (view.in_flight(i) + 1) as f64,
                f64::from(view.weight(i)),
            )
        })
    }

    fn name(&self) -> &'static str {
        "least_latency"
    }
}
