//! [`Drain`]: waiting for a draining backend's last request.

use std::fmt;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::BackendId;
use crate::shared::Member;

/// Wakes drain waiters. Process-wide rather than per backend: the lease whose drop ends a drain
/// no longer holds a reference to the backend when it learns that (its decrement was its last
/// access; see `shared.rs`), so it signals here. Waiters re-check their own backend, so a wake-up
/// meant for another drain costs one check.
struct Signal {
    lock: Mutex<()>,
    cv: Condvar,
    #[cfg(feature = "tokio")]
    notify: tokio::sync::Notify,
}

static DRAINED: Signal = Signal {
    lock: Mutex::new(()),
    cv: Condvar::new(),
    #[cfg(feature = "tokio")]
    notify: tokio::sync::Notify::const_new(),
};

/// The last lease of a draining backend dropped: wake every drain waiter.
#[cold]
pub(crate) fn signal_drained() {
    {
        let _guard = DRAINED.lock.lock();
        DRAINED.cv.notify_all();
    }
    #[cfg(feature = "tokio")]
    DRAINED.notify.notify_waiters();
}

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
    member: Member<B>,
}

impl<B> Drain<B> {
    pub(crate) fn new(member: Member<B>) -> Self {
        Self { member }
    }

    /// The draining backend.
    #[must_use]
    pub fn id(&self) -> BackendId {
        self.member.id()
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
    /// `Duration::MAX` (or any timeout past the end of `Instant`'s range) waits without a
    /// deadline.
    #[must_use]
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        let deadline = tierkit_core::deadline_after(Instant::now(), timeout);
        let mut guard = DRAINED.lock.lock();
        // Checked under the signal's lock, which the last lease takes after its decrement: its
        // wake-up cannot fall between a check and the wait.
        while !self.is_complete() {
            let now = Instant::now();
            let left = match deadline {
                Some(d) if now >= d => return false,
                Some(d) => d - now,
                None => Duration::MAX,
            };
            // Bounded slices all the same: `undrain` + `drain` in between would not signal.
            let _ = DRAINED
                .cv
                .wait_for(&mut guard, left.min(Duration::from_millis(50)));
        }
        true
    }

    /// Completes when the last lease drops (cancellation-safe).
    #[cfg(feature = "tokio")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
    pub async fn wait(&self) {
        loop {
            // Registered before the check: a signal after the check wakes this future.
            let notified = DRAINED.notify.notified();
            if self.is_complete() {
                return;
            }
            let _ = tokio::time::timeout(Duration::from_millis(50), notified).await;
        }
    }
}

impl<B> fmt::Debug for Drain<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Drain")
            .field("id", &self.member.id())
            .field("in_flight", &self.in_flight())
            .finish()
    }
}
