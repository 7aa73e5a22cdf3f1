//! [`View`]: what a policy sees of one snapshot.

use std::cell::Cell;
use std::fmt;
use std::sync::atomic::Ordering;

use crate::control::Control;
use crate::{BackendId, Context, Member};

/// The backends a policy chooses from: the snapshot's eligible members (healthy, not draining,
/// weight above zero; or every serving member in panic mode) with their effective weights, plus
/// every member for policies that need the whole pool (locality health).
///
/// Indices are positions in the eligible list, `0..len()`.
pub struct View<'a, B> {
    pub(crate) eligible: &'a [Member<B>],
    pub(crate) weights: &'a [u32],
    pub(crate) full: &'a [u32],
    pub(crate) all: &'a [Member<B>],
    pub(crate) control: &'a Control,
    /// The picking thread's own rotation position for this balancer, when it has one.
    cursor: Option<&'a Cell<usize>>,
}

impl<B> Clone for View<'_, B> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<B> Copy for View<'_, B> {}

impl<'a, B> View<'a, B> {
    /// A view over explicit lists (used by composite policies for their sub-pools).
    pub(crate) fn new(
        eligible: &'a [Member<B>],
        weights: &'a [u32],
        full: &'a [u32],
        all: &'a [Member<B>],
        control: &'a Control,
    ) -> Self {
        Self {
            eligible,
            weights,
            full,
            all,
            control,
            cursor: None,
        }
    }

    /// This view with the picking thread's rotation cursor.
    #[inline]
    pub(crate) fn with_cursor(mut self, cursor: &'a Cell<usize>) -> Self {
        self.cursor = Some(cursor);
        self
    }

    /// A view of a sub-pool (composite policies), keeping the pool and the thread's cursor.
    #[inline]
    pub(crate) fn sub(
        &self,
        eligible: &'a [Member<B>],
        weights: &'a [u32],
        full: &'a [u32],
    ) -> Self {
        Self {
            eligible,
            weights,
            full,
            ..*self
        }
    }

    /// Advances a rotation of length `n` (> 0) by one and returns the position it was at: on the
    /// picking thread's own cursor when it has one (no shared write), else on `shared`.
    #[inline]
    pub(crate) fn rotate(&self, n: usize, shared: &std::sync::atomic::AtomicUsize) -> usize {
        match self.cursor {
            Some(c) => {
                let mut i = c.get();
                if i >= n {
                    // The pool shrank (or a sub-pool of another size used the cursor).
                    i %= n;
                }
                c.set(if i + 1 < n { i + 1 } else { 0 });
                i
            }
            None => shared.fetch_add(1, Ordering::Relaxed) % n,
        }
    }

    /// Where picks decay latency estimates to: the most recent observation's time.
    #[inline]
    pub(crate) fn latest_observation(&self) -> u64 {
        self.control.latest_observation()
    }

    /// The balancer clock's current time in nanoseconds (one clock read).
    #[inline]
    #[must_use]
    pub fn now_nanos(&self) -> u64 {
        self.control.now()
    }

    /// The peak-EWMA latency of the backend at `i` decayed to `now` (nanoseconds; 0 = not
    /// observed yet), as [`LeastLatency`](crate::LeastLatency) weighs it.
    #[inline]
    #[must_use]
    pub fn decayed_latency(&self, i: usize, now: u64) -> f64 {
        self.control
            .decayed_latency(self.eligible[i].counters(), now)
    }

    /// Number of eligible backends.
    #[inline]
    #[must_use]
    pub fn len(&self) -> usize {
        self.eligible.len()
    }

    /// Whether no backend is eligible.
    #[inline]
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.eligible.is_empty()
    }

    /// The eligible backend at `i`.
    ///
    /// # Panics
    /// If `i >= len()` (policies only pass indices they drew from `0..len()`).
    #[inline]
    #[must_use]
    pub fn member(&self, i: usize) -> &'a Member<B> {
        &self.eligible[i]
    }

    /// The id of the eligible backend at `i` (panics like [`member`](Self::member)).
    #[inline]
    #[must_use]
    pub fn id(&self, i: usize) -> BackendId {
        self.eligible[i].id()
    }

    /// The effective weight (slow start applied) of the backend at `i`: at least 1.
    #[inline]
    #[must_use]
    pub fn weight(&self, i: usize) -> u32 {
        self.weights[i]
    }

    /// All effective weights, parallel to the eligible list.
    #[must_use]
    pub fn weights(&self) -> &'a [u32] {
        self.weights
    }

    /// The configured weight of the backend at `i`, on the same scale as
    /// [`weight`](Self::weight) but without slow start: what a placement that must not move
    /// keys during a ramp (consistent hashing) uses.
    #[inline]
    #[must_use]
    pub fn configured_weight(&self, i: usize) -> u32 {
        self.full[i]
    }

    /// All configured weights, parallel to the eligible list.
    #[must_use]
    pub fn configured_weights(&self) -> &'a [u32] {
        self.full
    }

    /// Requests in flight at the backend at `i`.
    #[inline]
    #[must_use]
    pub fn in_flight(&self, i: usize) -> u64 {
        self.eligible[i].counters().refs.in_flight()
    }

    /// The peak-EWMA latency of the backend at `i`, in nanoseconds (0 = not observed yet).
    #[inline]
    #[must_use]
    pub fn latency_nanos(&self, i: usize) -> f64 {
        f64::from_bits(
            self.eligible[i]
                .counters()
                .ewma_bits
                .load(Ordering::Relaxed),
        )
    }

    /// Every member of the pool, eligible or not.
    #[must_use]
    pub fn all_members(&self) -> &'a [Member<B>] {
        self.all
    }

    /// The first index at or after `start` (wrapping) that `ctx` allows, if any.
    #[inline]
    #[must_use]
    pub fn first_allowed_from(&self, start: usize, ctx: &Context<'_>) -> Option<usize> {
        // Only the slice crosses the call: the view itself need not be written to memory on
        // the pick path (stores ahead of the lease's atomic increment delay it).
        first_allowed(self.eligible, start, ctx)
    }

    pub(crate) fn eligible_slice(&self) -> &'a [Member<B>] {
        self.eligible
    }
}

impl<B> fmt::Debug for View<'_, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("View")
            .field("eligible", &self.eligible.len())
            .field("members", &self.all.len())
            .finish()
    }
}

#[inline(never)]
fn first_allowed<B>(eligible: &[Member<B>], start: usize, ctx: &Context<'_>) -> Option<usize> {
    let n = eligible.len();
    (0..n)
        .map(|k| (start + k) % n)
        .find(|&i| ctx.allows(eligible[i].id()))
}
