//! [`Lease`]: one request's hold on a backend.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::BackendId;
use crate::backend::Member;

/// A picked backend, counted as one request in flight until the lease is dropped.
///
/// Report how the request went with [`success`](Lease::success) (with its latency, which
/// latency-aware policies learn from) or [`failure`](Lease::failure) (which outlier detection
/// counts). Dropping the lease without either counts the request as cancelled: it leaves the
/// in-flight count and nothing else. The lease keeps the backend's value alive even if the
/// backend is removed meanwhile, and it is `Send`: hold it across `.await`.
///
/// Derefs to the backend's value `B`.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use tierkit_lb::{Backend, Balancer, Context, RoundRobin};
///
/// let lb = Balancer::builder(RoundRobin::new()).backend(Backend::new(1, "10.0.0.1:80")).build()?;
/// let lease = lb.pick(&Context::new())?;
/// assert_eq!(*lease, "10.0.0.1:80");
/// assert_eq!(lb.stats().backends[0].in_flight, 1);
/// lease.success(Duration::from_millis(4));
/// assert_eq!(lb.stats().backends[0].in_flight, 0);
/// # Ok::<(), tierkit_lb::Error>(())
/// ```
#[must_use = "a lease counts a request in flight until dropped; report its outcome"]
pub struct Lease<B> {
    member: Arc<Member<B>>,
}

impl<B> Lease<B> {
    #[inline]
    pub(crate) fn new(member: Arc<Member<B>>) -> Self {
        let c = &member.counters;
        c.in_flight.fetch_add(1, Ordering::Relaxed);
        c.picks.fetch_add(1, Ordering::Relaxed);
        Self { member }
    }

    /// The backend's id.
    #[must_use]
    pub fn id(&self) -> BackendId {
        self.member.id
    }

    /// The backend's value.
    #[must_use]
    pub fn backend(&self) -> &B {
        &self.member.value
    }

    /// The backend's zone, if any.
    #[must_use]
    pub fn zone(&self) -> Option<&str> {
        self.member.zone.as_deref()
    }

    /// The request succeeded after `latency`: resets the failure streak and feeds the latency
    /// estimate.
    pub fn success(self, latency: Duration) {
        self.member
            .control
            .on_success(&self.member.counters, latency);
    }

    /// The request failed: counts toward ejection and records a latency penalty.
    pub fn failure(self) {
        self.member
            .control
            .on_failure(&self.member.counters, self.member.id);
    }
}

impl<B> Deref for Lease<B> {
    type Target = B;

    fn deref(&self) -> &B {
        &self.member.value
    }
}

impl<B> Drop for Lease<B> {
    #[inline]
    fn drop(&mut self) {
        let c = &self.member.counters;
        let before = c.in_flight.fetch_sub(1, Ordering::Release);
        if before == 1 && c.draining.load(Ordering::Acquire) != 0 {
            self.member.control.notify_drained();
        }
    }
}

impl<B: fmt::Debug> fmt::Debug for Lease<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lease")
            .field("id", &self.member.id)
            .field("backend", &self.member.value)
            .finish()
    }
}
