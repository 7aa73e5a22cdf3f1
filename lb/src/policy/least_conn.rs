//! [`LeastConnections`] and [`WeightedLeastConnections`]: a full scan for the least loaded.

use crate::policy::{below, rng};
use crate::{Context, Policy, View};

/// Picks the eligible backend with the fewest requests in flight, scanning every backend (O(n)
/// atomic loads, no lock, no writes). Ties go to the first found from a random starting point,
/// so equal backends share the load.
///
/// For large pools prefer [`PowerOfTwoChoices`](crate::PowerOfTwoChoices): O(1) and, by the
/// power of two choices result (Mitzenmacher, 2001), nearly as well balanced.
///
/// # Examples
///
/// ```
/// use tierkit_lb::{Backend, Balancer, Context, LeastConnections};
///
/// let lb = Balancer::builder().policy(LeastConnections::new()).backends((0..2).map(|i| Backend::new(i, i))).build()?;
/// let first = lb.pick(&Context::new())?; // held: one request in flight
/// let second = lb.pick(&Context::new())?;
/// assert_ne!(*first, *second);
/// # Ok::<(), tierkit_lb::Error>(())
/// ```
#[derive(Debug, Default, Clone, Copy)]
pub struct LeastConnections;

impl LeastConnections {
    /// The least-connections policy.
    #[must_use]
    pub fn new() -> Self {
        Self
    }
}

/// Picks the backend with the least `(in_flight + 1) / weight`: weighted least connections as
/// in HAProxy's `leastconn` with weights. Same scan and tie-break as [`LeastConnections`].
///
/// # Examples
///
/// ```
/// use tierkit_lb::{Backend, Balancer, Context, WeightedLeastConnections};
///
/// let lb = Balancer::builder().policy(WeightedLeastConnections::new())
///     .backend(Backend::new(0, "big").weight(3))
///     .backend(Backend::new(1, "small").weight(1))
///     .build()?;
/// let held: Vec<_> = (0..4).map(|_| lb.pick(&Context::new())).collect::<Result<_, _>>()?;
/// assert_eq!(held.iter().filter(|l| ***l == "big").count(), 3);
/// # Ok::<(), tierkit_lb::Error>(())
/// ```
#[derive(Debug, Default, Clone, Copy)]
pub struct WeightedLeastConnections;

impl WeightedLeastConnections {
    /// The weighted least-connections policy.
    #[must_use]
    pub fn new() -> Self {
        Self
    }
}

/// Scans from a random start for the minimum of `cost`, comparing `(a, wa) < (b, wb)` as
/// `a * wb < b * wa` (no division, no float).
fn scan<B>(view: &View<'_, B>, ctx: &Context<'_>, weighted: bool) -> Option<usize> {
    let n = view.len();
    let start = below(rng::next_u64(), n);
    let unrestricted = ctx.is_unrestricted();
    let mut best: Option<(usize, u128, u128)> = None;
    for k in 0..n {
        let i = if start + k >= n {
            start + k - n
        } else {
            start + k
        };
        if !unrestricted && !ctx.allows(view.id(i)) {
            continue;
        }
        let load = u128::from(view.in_flight(i)) + 1;
        let w = if weighted {
            u128::from(view.weight(i))
        } else {
            1
        };
        match best {
            Some((_, bl, bw)) if load * bw >= bl * w => {}
            _ => best = Some((i, load, w)),
        }
    }
    best.map(|(i, _, _)| i)
}

impl<B> Policy<B> for LeastConnections {
    type Prepared = ();

    fn prepare(&self, _view: &View<'_, B>) {}

    fn pick(&self, _: &(), view: &View<'_, B>, ctx: &Context<'_>) -> Option<usize> {
        scan(view, ctx, false)
    }

    fn name(&self) -> &'static str {
        "least_connections"
    }
}

impl<B> Policy<B> for WeightedLeastConnections {
    type Prepared = ();

    fn prepare(&self, _view: &View<'_, B>) {}

    fn pick(&self, _: &(), view: &View<'_, B>, ctx: &Context<'_>) -> Option<usize> {
        scan(view, ctx, true)
    }

    fn name(&self) -> &'static str {
        "weighted_least_connections"
    }
}
