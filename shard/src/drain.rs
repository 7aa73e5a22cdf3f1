//! The drain of the migration protocol: waiting until no one holds a view older than a version.

use std::sync::{Arc, Condvar, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use crate::{Error, Result, Snapshot};

/// Woken whenever a [`Snapshot`] is dropped.
#[derive(Debug, Default)]
pub(crate) struct DrainSignal {
    lock: Mutex<()>,
    dropped: Condvar,
}

impl DrainSignal {
    /// Called by every snapshot's `Drop` (once per published version, never on a route).
    pub(crate) fn notify(&self) {
        // Taking the lock orders this notification after a waiter's check (no lost wake-up).
        let _guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        self.dropped.notify_all();
    }
}

/// The views a map has replaced, to wait for their holders.
#[derive(Debug)]
pub(crate) struct Retired<S> {
    views: Mutex<Vec<(u64, Weak<Snapshot<S>>)>>,
}

impl<S> Default for Retired<S> {
    fn default() -> Self {
        Retired {
            views: Mutex::new(Vec::new()),
        }
    }
}

impl<S> Retired<S> {
    /// Remembers a view that was just replaced.
    pub(crate) fn push(&self, view: &Arc<Snapshot<S>>) {
        let mut views = self.views.lock().unwrap_or_else(PoisonError::into_inner);
        views.retain(|(_, w)| w.strong_count() > 0);
        views.push((view.version, Arc::downgrade(view)));
    }

    /// Views older than `version` that someone still holds.
    fn alive_before(&self, version: u64) -> usize {
        let mut views = self.views.lock().unwrap_or_else(PoisonError::into_inner);
        views.retain(|(_, w)| w.strong_count() > 0);
        views.iter().filter(|(v, _)| *v < version).count()
    }

    /// Blocks until no view older than `version` is held, or `timeout` passes
    /// (`Duration::MAX`: no deadline). Woken by drops, never by polling.
    pub(crate) fn wait_before(
        &self,
        signal: &DrainSignal,
        version: u64,
        timeout: Duration,
    ) -> Result<()> {
        let deadline = tierkit_core::deadline_after(Instant::now(), timeout);
        let mut guard = signal.lock.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            let alive = self.alive_before(version);
            if alive == 0 {
                return Ok(());
            }
            let wait = match deadline {
                None => Duration::from_secs(3600),
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => left,
                    _ => {
                        return Err(Error::ViewsInUse {
                            version,
                            views: alive,
                        });
                    }
                },
            };
            guard = signal
                .dropped
                .wait_timeout(guard, wait)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}
