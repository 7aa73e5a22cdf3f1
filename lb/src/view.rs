//! [`View`]: what a policy sees of one snapshot.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::backend::Member;
use crate::health::Control;
use crate::{BackendId, Context};

/// The backends a policy chooses from: the snapshot's eligible members (healthy, not draining,
/// weight above zero; or every serving member in panic mode) with their effective weights, plus
/// every member for policies that need the whole pool (locality health).
///
/// Indices are positions in the eligible list, `0..len()`.
pub struct View<'a, B> {
    pub(crate) eligible: &'a [Arc<Member<B>>],
    pub(crate) weights: &'a [u32],
    pub(crate) all: &'a [Arc<Member<B>>],
    pub(crate) control: &'a Control,
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
        eligible: &'a [Arc<Member<B>>],
        weights: &'a [u32],
        all: &'a [Arc<Member<B>>],
        control: &'a Control,
    ) -> Self {
        Self {
            eligible,
            weights,
            all,
            control,
        }
    }

    pub(crate) fn control(&self) -> &'a Control {
        self.control
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
            .decayed_latency(&self.eligible[i].counters, now)
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
        self.eligible[i].id
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

    /// Requests in flight at the backend at `i`.
    #[inline]
    #[must_use]
    pub fn in_flight(&self, i: usize) -> u64 {
        self.eligible[i].counters.in_flight.load(Ordering::Relaxed)
    }

    /// The peak-EWMA latency of the backend at `i`, in nanoseconds (0 = not observed yet).
    #[inline]
    #[must_use]
    pub fn latency_nanos(&self, i: usize) -> f64 {
        f64::from_bits(self.eligible[i].counters.ewma_bits.load(Ordering::Relaxed))
    }

    /// Every member of the pool, eligible or not.
    #[must_use]
    pub fn all_members(&self) -> &'a [Arc<Member<B>>] {
        self.all
    }

    /// The first index at or after `start` (wrapping) that `ctx` allows, if any.
    #[must_use]
    pub fn first_allowed_from(&self, start: usize, ctx: &Context<'_>) -> Option<usize> {
        let n = self.len();
        (0..n)
            .map(|k| (start + k) % n)
            .find(|&i| ctx.allows(self.eligible[i].id))
    }

    pub(crate) fn eligible_slice(&self) -> &'a [Arc<Member<B>>] {
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
