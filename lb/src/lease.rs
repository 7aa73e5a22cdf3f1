//! [`Lease`]: one request's hold on a backend.

use std::fmt;
use std::ops::Deref;
use std::time::Duration;

use crate::BackendId;
use crate::refcount::Refused;
use crate::shared::{LeaseRef, Member};

/// A picked backend, counted as one request in flight until the lease is dropped.
///
/// Report how the request went with [`success`](Lease::success) (with its latency, which
/// latency-aware policies learn from) or [`failure`](Lease::failure) (which outlier detection
/// counts). Dropping the lease without either counts the request as cancelled: it leaves the
/// in-flight count and nothing else. The lease keeps the backend's value alive even if the
/// backend is removed (or the balancer dropped) meanwhile, and it is `Send` and `'static`: hold
/// it across `.await`, move it into a spawned task.
///
/// Cost: taking a lease is one atomic increment of the backend's state word (in flight and the
/// pick counter together) and dropping it one decrement; the in-flight count is also what keeps
/// the backend's state alive, so there is no separate reference count.
///
/// Derefs to the backend's value `B`.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use tierkit_lb::{Backend, Balancer, Context, RoundRobin};
///
/// let lb = Balancer::builder().policy(RoundRobin::new()).backend(Backend::new(1, "10.0.0.1:80")).build()?;
/// let lease = lb.pick(&Context::new())?;
/// assert_eq!(*lease, "10.0.0.1:80");
/// assert_eq!(lb.stats().backends[0].in_flight, 1);
/// lease.success(Duration::from_millis(4));
/// assert_eq!(lb.stats().backends[0].in_flight, 0);
/// # Ok::<(), tierkit_lb::Error>(())
/// ```
#[must_use = "a lease counts a request in flight until dropped; report its outcome"]
pub struct Lease<B> {
    inner: LeaseRef<B>,
}

impl<B> Lease<B> {
    /// Counts a pick of `member` and one request in flight, unless refused (saturated, or
    /// draining since the caller's snapshot).
    #[inline]
    pub(crate) fn new(member: &Member<B>) -> Result<Self, Refused> {
        LeaseRef::new(member).map(|inner| Self { inner })
    }

    /// The backend's id.
    #[must_use]
    pub fn id(&self) -> BackendId {
        self.inner.shared().id
    }

    /// The backend's value.
    #[must_use]
    pub fn backend(&self) -> &B {
        &self.inner.shared().value
    }

    /// The backend's zone, if any.
    #[must_use]
    pub fn zone(&self) -> Option<&str> {
        self.inner.shared().zone.as_deref()
    }

    /// The request succeeded after `latency`: resets the failure streak and feeds the latency
    /// estimate (one clock read, to timestamp the observation).
    pub fn success(self, latency: Duration) {
        let s = self.inner.shared();
        s.control
            .on_success(&s.counters, crate::control::nanos(latency), s.control.now());
    }

    /// A reading of the balancer's clock (nanoseconds since its origin): the tower future
    /// times a request with two of these, the second also timestamping the observation.
    #[cfg(feature = "tower")]
    #[inline]
    pub(crate) fn clock_now(&self) -> u64 {
        self.inner.shared().control.now()
    }

    /// A success after `latency_nanos`, observed at `now` (a [`clock_now`](Self::clock_now)
    /// reading).
    #[cfg(feature = "tower")]
    #[inline]
    pub(crate) fn success_at(self, latency_nanos: u64, now: u64) {
        let s = self.inner.shared();
        s.control.on_success(&s.counters, latency_nanos, now);
    }

    /// The request failed: counts toward ejection and records a latency penalty.
    pub fn failure(self) {
        let s = self.inner.shared();
        s.control.on_failure(&s.counters, s.id);
    }
}

impl<B> Deref for Lease<B> {
    type Target = B;

    #[inline]
    fn deref(&self) -> &B {
        &self.inner.shared().value
    }
}

impl<B: fmt::Debug> fmt::Debug for Lease<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lease")
            .field("id", &self.id())
            .field("backend", self.backend())
            .finish()
    }
}
