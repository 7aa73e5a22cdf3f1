//! [`LeastLatency`]: the least `peak-EWMA latency x load` among a few (or all) backends; the
//! recommended default policy.

use crate::error::{Error, Result};
use crate::policy::p2c::{MAX_CHOICES, least, sample_distinct};
use crate::policy::{below, rng, two_distinct};
use crate::{Context, Policy, View};

/// Pools up to this size are scanned in full by the default [`LeastLatency::new`].
pub(crate) const FULL_SCAN_UP_TO: usize = 16;
/// Choices per pick of the default [`LeastLatency::new`] above [`FULL_SCAN_UP_TO`] backends.
pub(crate) const LARGE_POOL_CHOICES: usize = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Choices {
    /// All up to `FULL_SCAN_UP_TO`, else `LARGE_POOL_CHOICES`.
    Adaptive,
    /// `k` random distinct backends.
    Fixed(usize),
    /// Every backend.
    All,
}

/// The least-latency policy, and the recommended default: a backend's cost is its peak-EWMA
/// latency times its load, `ewma * (in_flight + 1) / weight` (the cost model of Finagle's and
/// Linkerd's `PeakEwma`), and a pick takes the cheapest of
///
/// - **every** eligible backend when the pool has at most 16 ([`new`](Self::new), the default):
///   a small pool is where two random choices fail (with two of four backends slow, both
///   choices are slow a quarter of the time), and 16 loads cost less than a cache miss;
/// - **2 distinct random** backends above 16 ([`new`](Self::new)): O(1) at any size and as cheap
///   as power of two choices (4 choices cost ~1.7x as much per pick and gained nothing in the
///   1,000-backend situation); a large pool where most backends are slow is its weak spot;
/// - `k` random ones with [`with_choices`](Self::with_choices) (2 = classic P2C), or all of
///   them at any size with [`full_scan`](Self::full_scan) (the full-information reference of
///   the simulator; O(n)).
///
/// The crate README's situation table (`cargo run --release --example lb_sim -- --situations`)
/// compares these and the other policies in seven situations.
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
/// let lb = Balancer::builder().policy(LeastLatency::new()).backends((0..2).map(|i| Backend::new(i, i))).build()?;
/// lb.pick(&Context::new())?.success(Duration::from_millis(2));
/// # Ok::<(), tierkit_lb::Error>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct LeastLatency {
    choices: Choices,
}

impl Default for LeastLatency {
    fn default() -> Self {
        Self::new()
    }
}

impl LeastLatency {
    /// The default: every backend of a pool of up to 16, two random ones above.
    #[must_use]
    pub fn new() -> Self {
        Self {
            choices: Choices::Adaptive,
        }
    }

    /// Best of `k` distinct random choices at every pool size (2 is power of two choices).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`](crate::Error::InvalidConfig) unless `2 <= k <= 8`.
    pub fn with_choices(k: usize) -> Result<Self> {
        if !(2..=MAX_CHOICES).contains(&k) {
            return Err(Error::invalid("choices", k, "must be between 2 and 8"));
        }
        Ok(Self {
            choices: Choices::Fixed(k),
        })
    }

    /// Every eligible backend on every pick (O(n)): the full-information policy.
    #[must_use]
    pub fn full_scan() -> Self {
        Self {
            choices: Choices::All,
        }
    }

    /// Backends compared per pick in a pool of `n`.
    #[must_use]
    pub fn choices_for(&self, n: usize) -> usize {
        match self.choices {
            Choices::Adaptive if n <= FULL_SCAN_UP_TO => n,
            Choices::Adaptive => LARGE_POOL_CHOICES.min(n),
            Choices::Fixed(k) => k.min(n),
            Choices::All => n,
        }
    }
}

/// The cost of the backend at `i` with latency `l` (unknown: `known`), as a (numerator,
/// denominator) pair.
#[inline]
#[allow(clippy::cast_precision_loss)]
fn cost<B>(view: &View<'_, B>, i: usize, l: f64, known: f64) -> (f64, f64) {
    let l = if l > 0.0 { l } else { known };
    (
        l * (view.in_flight(i) + 1) as f64,
        f64::from(view.weight(i)),
    )
}

/// The cheapest allowed backend of the whole view, from a random start (ties spread).
fn scan_all<B>(view: &View<'_, B>, ctx: &Context<'_>) -> Option<usize> {
    let n = view.len();
    let now = view.latest_observation();
    // An unknown backend costs the largest latency known (first pass), so it competes on load.
    // Small pools (the default's full scans) keep the latencies on the stack: one decay each.
    let mut lat = [0.0f64; FULL_SCAN_UP_TO];
    let mut known = 0.0f64;
    for i in 0..n {
        let l = view.decayed_latency(i, now);
        if let Some(slot) = lat.get_mut(i) {
            *slot = l;
        }
        known = known.max(l);
    }
    if known == 0.0 {
        known = 1.0;
    }
    let start = below(rng::next_u64(), n);
    let unrestricted = ctx.is_unrestricted();
    let mut best: Option<(usize, f64, f64)> = None;
    for k in 0..n {
        let i = if start + k >= n {
            start + k - n
        } else {
            start + k
        };
        if !unrestricted && !ctx.allows(view.id(i)) {
            continue;
        }
        let l = match lat.get(i) {
            Some(&l) if n <= FULL_SCAN_UP_TO => l,
            _ => view.decayed_latency(i, now),
        };
        let (num, den) = cost(view, i, l, known);
        match best {
            Some((_, bn, bd)) if num * bd >= bn * den => {}
            _ => best = Some((i, num, den)),
        }
    }
    best.map(|(i, _, _)| i)
}

/// The cheaper of two distinct random backends, for a pick without exclusions: the general path
/// below without its arrays and loops (the default's pick above 16 backends, so the hot one).
/// Ties go to the first drawn, as in [`least`].
#[inline]
fn best_of_two<B>(view: &View<'_, B>) -> usize {
    let (a, b) = two_distinct(view.len());
    let now = view.latest_observation();
    let (la, lb) = (view.decayed_latency(a, now), view.decayed_latency(b, now));
    let known = la.max(lb);
    let known = if known == 0.0 { 1.0 } else { known };
    let (na, da) = cost(view, a, la, known);
    let (nb, db) = cost(view, b, lb, known);
    if nb * da < na * db { b } else { a }
}

impl<B> Policy<B> for LeastLatency {
    type Prepared = ();

    fn prepare(&self, _view: &View<'_, B>) {}

    #[inline]
    fn pick(&self, _: &(), view: &View<'_, B>, ctx: &Context<'_>) -> Option<usize> {
        let n = view.len();
        let k = self.choices_for(n);
        if k >= n && n > 2 {
            return scan_all(view, ctx);
        }
        if k == 2 && n > 2 && ctx.is_unrestricted() {
            return Some(best_of_two(view));
        }
        let mut cands = [0; MAX_CHOICES];
        let k = sample_distinct(n, k, &mut cands);
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
        least(view, ctx, cands, |j, i| cost(view, i, lat[j], known))
    }

    fn name(&self) -> &'static str {
        match self.choices {
            Choices::Adaptive => "least_latency",
            Choices::All => "peak_ewma_full_scan",
            Choices::Fixed(k) => {
                const NAMES: [&str; MAX_CHOICES + 1] = [
                    "least_latency_k0",
                    "least_latency_k1",
                    "least_latency_p2c",
                    "least_latency_k3",
                    "least_latency_k4",
                    "least_latency_k5",
                    "least_latency_k6",
                    "least_latency_k7",
                    "least_latency_k8",
                ];
                NAMES[k.min(MAX_CHOICES)]
            }
        }
    }
}
