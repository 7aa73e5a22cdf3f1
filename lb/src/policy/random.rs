//! [`Random`] and [`WeightedRandom`] (Vose's alias method: O(1) per pick).

use crate::policy::{below, rng};
use crate::{Context, Policy, View};

/// Picks a uniformly random eligible backend (per-thread generator; no shared writes at all).
///
/// # Examples
///
/// ```
/// use tierkit_lb::{Backend, Balancer, Context, Random};
///
/// let lb = Balancer::builder().policy(Random::new()).backends((0..4).map(|i| Backend::new(i, i))).build()?;
/// assert!(*lb.pick(&Context::new())? < 4);
/// # Ok::<(), tierkit_lb::Error>(())
/// ```
#[derive(Debug, Default, Clone, Copy)]
pub struct Random;

impl Random {
    /// The uniform random policy.
    #[must_use]
    pub fn new() -> Self {
        Self
    }
}

impl<B> Policy<B> for Random {
    type Prepared = ();

    fn prepare(&self, _view: &View<'_, B>) {}

    #[inline]
    fn pick(&self, _: &(), view: &View<'_, B>, ctx: &Context<'_>) -> Option<usize> {
        let i = below(rng::next_u64(), view.len());
        if ctx.is_unrestricted() {
            Some(i)
        } else {
            view.first_allowed_from(i, ctx)
        }
    }

    fn name(&self) -> &'static str {
        "random"
    }
}

/// Picks a random eligible backend with probability proportional to its effective weight, in
/// O(1) per pick via an alias table built per snapshot (Vose, 1991).
///
/// # Examples
///
/// ```
/// use tierkit_lb::{Backend, Balancer, Context, WeightedRandom};
///
/// let lb = Balancer::builder().policy(WeightedRandom::new())
///     .backend(Backend::new(0, "big").weight(9))
///     .backend(Backend::new(1, "small").weight(1))
///     .build()?;
/// let big = (0..1000).filter(|_| *lb.pick(&Context::new()).unwrap() == "big").count();
/// assert!(big > 800);
/// # Ok::<(), tierkit_lb::Error>(())
/// ```
#[derive(Debug, Default, Clone, Copy)]
pub struct WeightedRandom;

impl WeightedRandom {
    /// The weighted random policy.
    #[must_use]
    pub fn new() -> Self {
        Self
    }
}

/// Alias table: column `i` keeps itself with probability `prob[i] / 2^32`, else `alias[i]`.
#[derive(Debug, Default)]
pub struct AliasTable {
    prob: Vec<u32>,
    alias: Vec<u32>,
}

impl AliasTable {
    pub(crate) fn new(weights: &[u32]) -> Self {
        let n = weights.len();
        let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
        if n == 0 || total == 0 {
            return Self::default();
        }
        // Scaled so that the mean column holds exactly `n * 2^32 / n` = 2^32 units.
        let scale = 1u128 << 32;
        let mut scaled: Vec<u128> = weights
            .iter()
            .map(|&w| u128::from(w) * scale * n as u128 / u128::from(total))
            .collect();
        let mut small: Vec<usize> = (0..n).filter(|&i| scaled[i] < scale).collect();
        let mut large: Vec<usize> = (0..n).filter(|&i| scaled[i] >= scale).collect();
        let mut prob = vec![u32::MAX; n];
        let mut alias: Vec<u32> = (0..n).map(|i| u32::try_from(i).unwrap_or(0)).collect();
        while let (Some(s), Some(&l)) = (small.pop(), large.last()) {
            prob[s] = u32::try_from(scaled[s]).unwrap_or(u32::MAX);
            alias[s] = u32::try_from(l).unwrap_or(0);
            scaled[l] = scaled[l] + scaled[s] - scale;
            if scaled[l] < scale {
                large.pop();
                small.push(l);
            }
        }
        Self { prob, alias }
    }

    #[inline]
    pub(crate) fn sample(&self, r: u64) -> Option<usize> {
        if self.prob.is_empty() {
            return None;
        }
        let col = below(r, self.prob.len());
        // The low 32 bits are independent of the high bits `below` consumed.
        #[allow(clippy::cast_possible_truncation)]
        let coin = r as u32;
        Some(if coin < self.prob[col] {
            col
        } else {
            self.alias[col] as usize
        })
    }
}

impl<B> Policy<B> for WeightedRandom {
    type Prepared = AliasTable;

    fn prepare(&self, view: &View<'_, B>) -> AliasTable {
        AliasTable::new(view.weights())
    }

    #[inline]
    fn pick(&self, table: &AliasTable, view: &View<'_, B>, ctx: &Context<'_>) -> Option<usize> {
        let i = table.sample(rng::next_u64())?;
        if ctx.is_unrestricted() || ctx.allows(view.id(i)) {
            return Some(i);
        }
        // A few more draws keep the weighting; then any allowed backend.
        for _ in 0..8 {
            let j = table.sample(rng::next_u64())?;
            if ctx.allows(view.id(j)) {
                return Some(j);
            }
        }
        view.first_allowed_from(i, ctx)
    }

    fn name(&self) -> &'static str {
        "weighted_random"
    }
}
