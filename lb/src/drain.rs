//! [`Drain`]: waiting for a draining backend's last request.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::BackendId;
use crate::backend::Member;

/// A backend being drained: no new picks; complete when its in-flight count reaches zero.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use tierkit_lb::{Backend, Balancer, Context, RoundRobin};
///
/// let lb = Balancer::builder(RoundRobin::new()).backends((0..2).map(|i| Backend::new(i, i))).build()?;
/// let lease = lb.pick(&Context::new())?;
/// let drain = lb.drain(lease.id())?;
/// assert!(!drain.is_complete());
/// drop(lease);
/// assert!(drain.wait_timeout(Duration::from_secs(1)));
/// # Ok::<(), tierkit_lb::Error>(())
/// ```
pub struct Drain<B> {
    member: Arc<Member<B>>,
}

impl<B> Drain<B> {
    pub(crate) fn new(member: Arc<Member<B>>) -> Self {
        Self { member }
    }

    /// The draining backend.
    #[must_use]
    pub fn id(&self) -> BackendId {
        self.member.id
    }

    /// Requests still in flight.
    #[must_use]
    pub fn in_flight(&self) -> u64 {
        self.member.in_flight()
    }

    /// Whether the last lease has dropped.
    #[must_use]
    pub fn is_complete(&self) -> bool {
        self.in_flight() == 0
    }

    /// Blocks until complete or `timeout` passes; returns whether it completed.
    #[must_use]
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while !self.is_complete() {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            // Short slices: a wake-up between the check and the wait is never lost for long.
            self.member
                .control
                .wait_drain((deadline - now).min(Duration::from_millis(5)));
        }
        true
    }

    /// Completes when the last lease drops (cancellation-safe).
    #[cfg(feature = "tokio")]
    pub async fn wait(&self) {
        loop {
            let notified = self.member.control.drain_notify.notified();
            if self.is_complete() {
                return;
            }
            // A bounded wait covers a notification sent between the check and `notified`.
            let _ = tokio::time::timeout(Duration::from_millis(50), notified).await;
        }
    }
}

impl<B> fmt::Debug for Drain<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Drain")
            .field("id", &self.member.id)
            .field("in_flight", &self.in_flight())
            .finish()
    }
}
