//! [`WeightedRoundRobin`]: nginx's smooth weighted round robin, precomputed per snapshot.

use std::sync::atomic::AtomicUsize;

use crossbeam_utils::CachePadded;

use crate::policy::gcd;
use crate::{Context, Policy, View};

/// The longest schedule kept per snapshot; larger weight sums are scaled down to fit.
const MAX_SCHEDULE: u64 = 1 << 16;

/// Smooth weighted round robin (the sequence of nginx's `ngx_http_upstream_get_peer`): over one
/// cycle each backend gets exactly its weight's share, spread out rather than in bursts. For
/// weights 5, 1, 1 the cycle is `a a b a c a a`.
///
/// Instead of nginx's O(n) scan per pick under a lock, the cycle is computed once per snapshot
/// (weights divided by their gcd; sums above 65,536 are scaled down proportionally) and a pick is
/// an array read: O(1) at any pool size, no shared write. As with
/// [`RoundRobin`](crate::RoundRobin), each thread walks the cycle with its own cursor (its first
/// pick takes the next start position of a shared rotation), so the smoothness guarantee (no
/// backend more than `ceil(w_i / w_min)` times in a row, exact shares over a cycle) holds for
/// each thread's sequence of picks.
///
/// # Examples
///
/// ```
/// use tierkit_lb::{Backend, Balancer, Context, WeightedRoundRobin};
///
/// let lb = Balancer::builder(WeightedRoundRobin::new())
///     .backend(Backend::new(0, 'a').weight(5))
///     .backend(Backend::new(1, 'b').weight(1))
///     .backend(Backend::new(2, 'c').weight(1))
///     .build()?;
/// let cycle: String = (0..7).map(|_| lb.pick(&Context::new()).map(|l| *l)).collect::<Result<_, _>>()?;
/// assert_eq!(cycle, "aabacaa");
/// # Ok::<(), tierkit_lb::Error>(())
/// ```
#[derive(Debug, Default)]
pub struct WeightedRoundRobin {
    cursor: CachePadded<AtomicUsize>,
}

impl WeightedRoundRobin {
    /// A policy whose cycle starts at the beginning.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }
}

/// The smooth weighted round-robin cycle for `weights` (indices into it).
pub(crate) fn smooth_schedule(weights: &[u32]) -> Vec<u32> {
    let g = weights.iter().copied().filter(|&w| w > 0).fold(0, gcd);
    if g == 0 {
        return Vec::new();
    }
    let mut w: Vec<u64> = weights.iter().map(|&x| u64::from(x / g)).collect();
    let total: u64 = w.iter().sum();
    if total > MAX_SCHEDULE {
        let n = w.len() as u64;
        let budget = MAX_SCHEDULE.saturating_sub(n).max(1);
        for x in &mut w {
            if *x > 0 {
                *x = (*x * budget / total).max(1);
            }
        }
    }
    let total: u64 = w.iter().sum();
    let total_i = i64::try_from(total).unwrap_or(i64::MAX);
    let weights_i: Vec<i64> = w
        .iter()
        .map(|&x| i64::try_from(x).unwrap_or(i64::MAX))
        .collect();
    let mut current = vec![0i64; w.len()];
    let mut out = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
    for _ in 0..total {
        let mut best = 0;
        for (i, c) in current.iter_mut().enumerate() {
            *c += weights_i[i];
        }
        for i in 1..current.len() {
            if current[i] > current[best] {
                best = i;
            }
        }
        current[best] -= total_i;
        out.push(u32::try_from(best).unwrap_or(u32::MAX));
    }
    out
}

impl<B> Policy<B> for WeightedRoundRobin {
    type Prepared = Vec<u32>;

    fn prepare(&self, view: &View<'_, B>) -> Vec<u32> {
        smooth_schedule(view.weights())
    }

    #[inline]
    fn pick(&self, schedule: &Vec<u32>, view: &View<'_, B>, ctx: &Context<'_>) -> Option<usize> {
        if schedule.is_empty() {
            return view.first_allowed_from(0, ctx);
        }
        let k = view.rotate(schedule.len(), &self.cursor);
        let i = schedule[k] as usize;
        if ctx.is_unrestricted() || ctx.allows(view.id(i)) {
            return Some(i);
        }
        // Walk the schedule on until an allowed backend comes up.
        (1..schedule.len())
            .map(|d| schedule[(k + d) % schedule.len()] as usize)
            .find(|&i| ctx.allows(view.id(i)))
    }

    fn name(&self) -> &'static str {
        "weighted_round_robin"
    }
}
