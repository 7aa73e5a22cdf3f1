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
    // nginx's step is "every current += weight; take the first maximum; it loses the total",
    // O(n) per step. Backends of equal weight are taken in turn (their currents differ only by
    // how often each was taken), so one candidate per distinct weight suffices: the member at
    // its class's cursor, whose current is `(t + 1) x w - total x (taken / size)`. O(classes)
    // per step, the same sequence.
    let mut classes: Vec<Class> = Vec::new();
    for (i, &x) in w.iter().enumerate() {
        if x == 0 {
            continue;
        }
        let idx = u32::try_from(i).unwrap_or(u32::MAX);
        match classes.iter_mut().find(|c| c.weight == x) {
            Some(c) => c.members.push(idx),
            None => classes.push(Class {
                weight: x,
                members: vec![idx],
                taken: 0,
            }),
        }
    }
    let mut out = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
    for t in 1..=u128::from(total) {
        let mut best: Option<(i128, u32, usize)> = None;
        for (ci, c) in classes.iter().enumerate() {
            let size = c.members.len() as u64;
            let (base, cursor) = (c.taken / size, c.taken % size);
            #[allow(clippy::cast_possible_truncation)]
            let idx = c.members[cursor as usize];
            #[allow(clippy::cast_possible_wrap)]
            let current =
                (t * u128::from(c.weight)) as i128 - (u128::from(total) * u128::from(base)) as i128;
            let better = match best {
                None => true,
                Some((bc, bi, _)) => current > bc || (current == bc && idx < bi),
            };
            if better {
                best = Some((current, idx, ci));
            }
        }
        let Some((_, idx, ci)) = best else { break };
        classes[ci].taken += 1;
        out.push(idx);
    }
    out
}

/// Backends of one weight in a smooth WRR schedule, and how often the class was taken.
struct Class {
    weight: u64,
    members: Vec<u32>,
    taken: u64,
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

#[cfg(all(test, not(tierkit_loom)))]
mod tests {
    use super::*;

    /// nginx's own loop (`ngx_http_upstream_get_peer`), O(n) per step: the model.
    #[allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap)]
    fn nginx(w: &[u64]) -> Vec<u32> {
        let total: u64 = w.iter().sum();
        let mut current = vec![0i64; w.len()];
        let mut out = Vec::new();
        for _ in 0..total {
            let mut best = usize::MAX;
            for i in 0..w.len() {
                if w[i] == 0 {
                    continue;
                }
                current[i] += w[i] as i64;
                if best == usize::MAX || current[i] > current[best] {
                    best = i;
                }
            }
            current[best] -= total as i64;
            out.push(best as u32);
        }
        out
    }

    #[test]
    fn class_schedule_matches_nginx() {
        let mut g = tierkit_core::SplitMix64::new(17);
        for round in 0..300 {
            let n = 1 + (g.next_u64() % 12) as usize;
            let w: Vec<u32> = (0..n)
                .map(|_| match round % 3 {
                    0 => (g.next_u64() % 6) as u32,
                    1 => 1 + (g.next_u64() % 3) as u32,
                    _ => (g.next_u64() % 40) as u32,
                })
                .collect();
            let gcd_all = w.iter().copied().filter(|&x| x > 0).fold(0, gcd);
            let expected = if gcd_all == 0 {
                Vec::new()
            } else {
                nginx(
                    &w.iter()
                        .map(|&x| u64::from(x / gcd_all))
                        .collect::<Vec<_>>(),
                )
            };
            assert_eq!(smooth_schedule(&w), expected, "weights {w:?}");
        }
        assert_eq!(smooth_schedule(&[5, 1, 1]), [0, 0, 1, 0, 2, 0, 0]);
    }
}
