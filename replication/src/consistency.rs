//! What a request needs: [`Intent`] and [`Consistency`].

use std::time::Duration;

use crate::{Position, SessionToken};

/// What a request will do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intent {
    /// A write: always the primary of the current epoch.
    Write,
    /// A read with the consistency it needs.
    Read(Consistency),
}

/// How fresh a read must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Consistency {
    /// Any healthy replica (the primary only if no replica is healthy).
    Eventual,
    /// Replicas at most this many positions behind the primary; else the primary.
    BoundedStaleness(u64),
    /// Replicas that have applied the session's last write (the token's position); else the
    /// primary, at once. A token from an earlier epoch (its write may have been lost in a
    /// failover) always reads from the primary.
    ReadYourWrites(SessionToken),
    /// Replicas at or past a position the session has already read (the position of its last
    /// read route), so time never goes backwards for the session; else the primary. Never waits.
    MonotonicReads(Position),
    /// Rails-style: within `window` after the session's last write, read from the primary;
    /// afterwards any healthy replica. For applications that cannot track positions.
    PrimaryAfterWrite {
        /// The session's last write.
        token: SessionToken,
        /// How long reads stay on the primary after it.
        window: Duration,
    },
    /// The primary (strong consistency).
    Primary,
}
