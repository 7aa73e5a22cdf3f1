//! [`PowerOfTwoChoices`]: least request among k distinct random backends.

use crate::error::{Error, Result};
use crate::policy::{below, rng, two_distinct};
use crate::{Context, Policy, View};

/// The most choices [`PowerOfTwoChoices::with_choices`] accepts.
pub(crate) const MAX_CHOICES: usize = 8;

/// Draws `k` DISTINCT random eligible backends (2 by default) and picks the one with the least
/// `(in_flight + 1) / weight` (Envoy's least request, Mitzenmacher's power of two choices). O(k)
/// per pick at any pool size; with two choices the most loaded backend's excess load drops from
/// `log n / log log n` to `log log n`.
///
/// Best-of-k with a larger `k` suits small pools, where two random draws often both land on busy
/// backends.
///
/// # Examples
///
/// ```
/// use tierkit_lb::{Backend, Balancer, Context, PowerOfTwoChoices};
///
/// let lb = Balancer::builder().policy(PowerOfTwoChoices::with_choices(3)?)
///     .backends((0..10).map(|i| Backend::new(i, i)))
///     .build()?;
/// let lease = lb.pick(&Context::new())?;
/// assert!(*lease < 10);
/// # Ok::<(), tierkit_lb::Error>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct PowerOfTwoChoices {
    choices: usize,
}

impl PowerOfTwoChoices {
    /// Two choices.
    #[must_use]
    pub fn new() -> Self {
        Self { choices: 2 }
    }

    /// Best of `k` distinct choices.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] unless `2 <= k <= MAX_CHOICES`.
    pub fn with_choices(k: usize) -> Result<Self> {
        if !(2..=MAX_CHOICES).contains(&k) {
            return Err(Error::invalid("choices", k, "must be between 2 and 8"));
        }
        Ok(Self { choices: k })
    }

    /// The number of choices per pick.
    #[must_use]
    pub fn choices(&self) -> usize {
        self.choices
    }
}

impl Default for PowerOfTwoChoices {
    fn default() -> Self {
        Self::new()
    }
}

/// Fills `out` with up to `k` distinct indices of `0..n` (Floyd's sampling) and returns how many.
#[inline]
pub(crate) fn sample_distinct(n: usize, k: usize, out: &mut [usize; MAX_CHOICES]) -> usize {
    if n <= k {
        // All of them, from a random start so ties do not always go to the first.
        let start = below(rng::next_u64(), n);
        for (i, slot) in out.iter_mut().enumerate().take(n) {
            *slot = (start + i) % n;
        }
        return n;
    }
    if k == 2 {
        let (a, b) = two_distinct(n);
        out[0] = a;
        out[1] = b;
        return 2;
    }
    let mut len = 0;
    for j in n - k..n {
        let t = below(rng::next_u64(), j + 1);
        out[len] = if out[..len].contains(&t) { j } else { t };
        len += 1;
    }
    len
}

/// The candidate with the least cost among `cands`, skipping disallowed ones; `cost(j, i)` (the
/// candidate's position in `cands` and its index) returns a `(numerator, denominator)` pair
/// compared by cross-multiplication.
#[inline]
pub(crate) fn least<B>(
    view: &View<'_, B>,
    ctx: &Context<'_>,
    cands: &[usize],
    cost: impl Fn(usize, usize) -> (f64, f64),
) -> Option<usize> {
    let unrestricted = ctx.is_unrestricted();
    let mut best: Option<(usize, f64, f64)> = None;
    for (j, &i) in cands.iter().enumerate() {
        if !unrestricted && !ctx.allows(view.id(i)) {
            continue;
        }
        let (num, den) = cost(j, i);
        match best {
            Some((_, bn, bd)) if num * bd >= bn * den => {}
            _ => best = Some((i, num, den)),
        }
    }
    match best {
        Some((i, _, _)) => Some(i),
        None => view.first_allowed_from(below(rng::next_u64(), view.len()), ctx),
    }
}

impl<B> Policy<B> for PowerOfTwoChoices {
    type Prepared = ();

    fn prepare(&self, _view: &View<'_, B>) {}

    #[inline]
    fn pick(&self, _: &(), view: &View<'_, B>, ctx: &Context<'_>) -> Option<usize> {
        #[allow(clippy::cast_precision_loss)]
        let cost = |i: usize| ((view.in_flight(i) + 1) as f64, f64::from(view.weight(i)));
        if self.choices == 2 && view.len() > 2 && ctx.is_unrestricted() {
            // The general path below without arrays or loops: same draws, same tie rule.
            let (a, b) = two_distinct(view.len());
            let ((na, da), (nb, db)) = (cost(a), cost(b));
            return Some(if nb * da < na * db { b } else { a });
        }
        let mut cands = [0; MAX_CHOICES];
        let k = sample_distinct(view.len(), self.choices, &mut cands);
        least(view, ctx, &cands[..k], |_, i| cost(i))
    }

    fn name(&self) -> &'static str {
        "p2c_least_request"
    }
}
