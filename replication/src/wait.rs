//! Routes that wait: reads for a replica to catch up, writes for a writable primary (feature
//! `tokio`).

use std::time::Duration;

use crate::{Consistency, Error, Intent, ReplicaSet, Result, Route};

impl<C> ReplicaSet<C> {
    /// Like [`route`](Self::route), but a `ReadYourWrites` or `MonotonicReads` read that no
    /// replica can serve yet waits up to `wait` for one to catch up before falling back to the
    /// primary, as MaxScale's causal reads and MySQL Router's `wait_for_my_writes` do. While it
    /// waits it asks a running [`monitor`](crate::monitor) for probes on demand
    /// ([`request_probe`](Self::request_probe)) and wakes on every reported position.
    /// `Duration::MAX` waits without a deadline. Cancellation-safe.
    ///
    /// # Errors
    /// As [`route`](Self::route).
    pub async fn route_waiting(&self, intent: Intent, wait: Duration) -> Result<Route<'_, C>> {
        let waits = matches!(
            intent,
            Intent::Read(Consistency::ReadYourWrites(_) | Consistency::MonotonicReads(_))
        );
        let first = self.route(intent)?;
        if !waits || !first.is_primary() || first.fallback().is_none() {
            return Ok(first);
        }
        drop(first);
        let deadline = tokio::time::Instant::now().checked_add(wait);
        loop {
            let advanced = self.advanced.notified();
            let mut advanced = std::pin::pin!(advanced);
            advanced.as_mut().enable();
            let route = self.route(intent)?;
            if !route.is_primary() || route.fallback().is_none() {
                return Ok(route);
            }
            self.request_probe();
            match deadline {
                Some(d) => {
                    if tokio::time::timeout_at(d, advanced).await.is_err() {
                        return Ok(route);
                    }
                }
                None => advanced.await,
            }
        }
    }

    /// Like `route(Intent::Write)`, but while there is no writable primary (marked down,
    /// read-only, or being promoted) waits up to `wait` for one instead of failing at once.
    /// `Duration::MAX` waits without a deadline. Cancellation-safe.
    ///
    /// # Errors
    /// The last error of [`route`](Self::route) when the deadline passes
    /// ([`Error::PrimaryUnavailable`], [`Error::Promoting`], [`Error::NoPrimary`]).
    pub async fn route_write_waiting(&self, wait: Duration) -> Result<Route<'_, C>> {
        let deadline = tokio::time::Instant::now().checked_add(wait);
        loop {
            let changed = self.changed.notified();
            let mut changed = std::pin::pin!(changed);
            changed.as_mut().enable();
            let err = match self.route(Intent::Write) {
                Ok(route) => return Ok(route),
                Err(
                    e @ (Error::PrimaryUnavailable { .. }
                    | Error::Promoting { .. }
                    | Error::NoPrimary),
                ) => e,
                Err(e) => return Err(e),
            };
            match deadline {
                Some(d) => {
                    if tokio::time::timeout_at(d, changed).await.is_err() {
                        return Err(err);
                    }
                }
                None => changed.await,
            }
        }
    }
}
