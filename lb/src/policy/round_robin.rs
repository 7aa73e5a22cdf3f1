//! [`RoundRobin`]: each backend in turn.

use std::sync::atomic::AtomicUsize;

use crossbeam_utils::CachePadded;

use crate::{Context, Policy, View};

/// Picks eligible backends in turn, ignoring weights and load.
///
/// Each thread walks the rotation with its own cursor, so a pick writes nothing shared; a
/// thread's first pick from a balancer takes the next start position of a shared rotation (the
/// first thread starts at the first backend, the second at the second, ...), which spreads
/// threads apart. One thread's picks are exact round robin; over all threads every backend's
/// count is within the number of threads of the others. The cursors survive membership changes,
/// so a rebuild does not restart the rotation at the first backend. A pick made from inside a
/// [`Context::only`](crate::Context::only) filter (re-entrant) uses a shared cursor instead.
///
/// # Examples
///
/// ```
/// use tierkit_lb::{Backend, Balancer, Context, RoundRobin};
///
/// let lb = Balancer::builder().policy(RoundRobin::new())
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
        let i = view.rotate(view.len(), &self.cursor);
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
