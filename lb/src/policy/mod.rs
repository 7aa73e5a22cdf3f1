//! The shared trait, [`Policy`], and its implementations (one file each).

mod hash;
mod least_conn;
mod least_latency;
mod locality;
mod p2c;
mod random;
pub(crate) mod rng;
mod round_robin;
mod sticky;
mod weighted_rr;

pub use hash::{ConsistentHash, HashAlgorithm};
pub use least_conn::{LeastConnections, WeightedLeastConnections};
pub use least_latency::LeastLatency;
pub use locality::{Locality, Tier};
pub use p2c::PowerOfTwoChoices;
pub use random::{Random, WeightedRandom};
pub use rng::seed_thread_rng;
pub use round_robin::RoundRobin;
pub use sticky::Sticky;
pub use weighted_rr::WeightedRoundRobin;

use crate::{Context, View};

/// Chooses one backend per request from a snapshot of eligible backends.
///
/// A balancer calls [`prepare`](Policy::prepare) whenever it publishes a new snapshot
/// (membership, weight or health change) and keeps the result beside the snapshot; every
/// [`pick`](Policy::pick) then reads both without locks. `pick` must allocate nothing on its
/// common path, must honour [`Context::allows`], and returns an index into the view (`0..len`),
/// or `None` when nothing allowed fits.
///
/// Policy state that must persist across snapshots (a round-robin cursor, a sticky table) lives
/// in the policy value itself; per-backend state (in flight, latency) lives in the members.
///
/// # Examples
///
/// A policy that always picks the first allowed backend:
///
/// ```
/// use tierkit_lb::{Backend, Balancer, Context, Policy, View};
///
/// #[derive(Debug)]
/// struct First;
///
/// impl<B> Policy<B> for First {
///     type Prepared = ();
///     fn prepare(&self, _view: &View<'_, B>) {}
///     fn pick(&self, _: &(), view: &View<'_, B>, ctx: &Context<'_>) -> Option<usize> {
///         view.first_allowed_from(0, ctx)
///     }
///     fn name(&self) -> &'static str {
///         "first"
///     }
/// }
///
/// let lb = Balancer::builder().policy(First).backend(Backend::new(1, "a")).backend(Backend::new(2, "b")).build()?;
/// assert_eq!(*lb.pick(&Context::new())?, "a");
/// # Ok::<(), tierkit_lb::Error>(())
/// ```
pub trait Policy<B>: Send + Sync + 'static {
    /// Data derived from one snapshot (a schedule, a hash table), rebuilt on every change.
    type Prepared: Send + Sync + 'static;

    /// Derives this policy's data for a new snapshot.
    fn prepare(&self, view: &View<'_, B>) -> Self::Prepared;

    /// Chooses an index in `0..view.len()`, or `None`. `view` is never empty.
    fn pick(
        &self,
        prepared: &Self::Prepared,
        view: &View<'_, B>,
        ctx: &Context<'_>,
    ) -> Option<usize>;

    /// A short name for logs and stats (`"round_robin"`).
    fn name(&self) -> &'static str;

    /// Whether picks read [`View::total_in_flight`] (default `false`). When `true`, the
    /// balancer keeps a running total of its leases: one more atomic add per pick and per
    /// lease drop, on a line all threads share.
    fn counts_total_in_flight(&self) -> bool {
        false
    }
}

/// Maps a uniform `u64` onto `0..n` without division (Lemire's multiply-shift).
#[inline]
pub(crate) fn below(r: u64, n: usize) -> usize {
    let n64 = n as u64;
    // The product's high half is < n, which came from a usize.
    #[allow(clippy::cast_possible_truncation)]
    let i = ((u128::from(r) * u128::from(n64)) >> 64) as usize;
    i
}

/// Greatest common divisor (0 with 0 is 0): weight schedules divide weights by it.
pub(crate) fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// Two distinct uniform indices in `0..n` (`n >= 2`).
#[inline]
pub(crate) fn two_distinct(n: usize) -> (usize, usize) {
    let r = rng::next_u64();
    let a = below(r, n);
    // a + 1 + (0..n-1) spans a+1 ..= a+n-1: wrap once instead of dividing.
    let b = a + 1 + below(r.rotate_left(32), n - 1);
    let b = if b >= n { b - n } else { b };
    (a, b)
}
