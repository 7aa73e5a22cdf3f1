//! [`RoundRobin`]: each backend in turn.

use std::sync::atomic::{AtomicUsize, Ordering};

use crossbeam_utils::CachePadded;

use crate::{Context, Policy, View};

/// Picks eligible backends in turn, ignoring weights and load.
///
/// One shared cursor (cache-padded, one `fetch_add` per pick); the cursor survives membership
/// changes, so a rebuild does not restart the rotation at the first backend.
///
/// # Examples
///
/// ```
/// use tierkit_lb::{Backend, Balancer, Context, RoundRobin};
///
/// let lb = Balancer::builder(RoundRobin::new())
///     .backends((0..3).map(|i| Backend::new(i, format!("10.0.0.{i}"))))
///     .build()?;
/// let order: Vec<String> = (0..3).map(|_| lb.pick(&Context::new()).map(|l| l.clone())).collect::<Result<_, _>>()?;
/// assert_eq!(order, ["10.0.0.0", "10.0.0.1", "10.0.0.2"]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Default)]
pub struct RoundRobin {
    cursor: CachePadded<AtomicUsize>,
}

impl RoundRobin {
    /// A rotation starting at the first backend.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }
}

impl<B> Policy<B> for RoundRobin {
    type Prepared = ();

    fn prepare(&self, _view: &View<'_, B>) {}

    #[inline]
    fn pick(&self, _: &(), view: &View<'_, B>, ctx: &Context<'_>) -> Option<usize> {
        let i = self.cursor.fetch_add(1, Ordering::Relaxed) % view.len();
        if ctx.is_unrestricted() {
            Some(i)
        } else {
            view.first_allowed_from(i, ctx)
        }
    }

    fn name(&self) -> &'static str {
        "round_robin"
    }
}
