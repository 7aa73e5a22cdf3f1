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
    /// Replicas at most this many positions (WAL bytes for PostgreSQL) behind the newest
    /// primary position the set knows (writes through the set report theirs at commit, a
    /// probe the rest); else what [`Config::bound_fallback`](crate::Config::bound_fallback)
    /// says: the primary by default, or a flagged stale replica.
    BoundedStaleness(u64),
    /// Replicas whose data is at most this old: they have applied everything the primary had
    /// this long ago, judged from the set's history of primary positions (probe samples and
    /// writes through the set; conservative: a replica may be fresher than the set can
    /// prove). When no replica qualifies, or the history has no sample that recent, what
    /// [`Config::bound_fallback`](crate::Config::bound_fallback) says.
    BoundedStalenessTime(Duration),
    /// Replicas that have applied the session's last write (the token's position); else the
    /// primary, at once. A token from an earlier epoch (its write may have been lost in a
    /// failover) always reads from the primary.
    ReadYourWrites(SessionToken),
    /// Replicas at or past a position the session has already read, so time never goes
    /// backwards for the session; else the primary. The position must be the one a read
    /// actually *served* ([`Route::served`](crate::Route::served): `pg_last_wal_replay_lsn()`
    /// read in the read's transaction), the largest the session has seen; the router's known
    /// position of a node ([`Route::position`](crate::Route::position)) is behind what it
    /// serves and does not keep reads monotonic. Never waits (see
    /// `ReplicaSet::route_waiting`, feature `tokio`).
    ///
    /// The primary fallback shows every write acknowledged before the read began, and on
    /// PostgreSQL no more than that is certain: a commit record is flushed and streamed before
    /// the committing backend leaves the primary's ProcArray, so for that moment (as long as
    /// the primary waits for a synchronous standby) a replica can show a transaction whose
    /// `COMMIT` has not returned yet, and a snapshot taken on the primary does not show it. A
    /// session that read such a transaction on a replica and then falls back to the primary
    /// can miss it; reads the replicas serve never go backwards.
    MonotonicReads(Position),
    /// Rails-style: within `window` after the session's last write, read from the primary;
    /// afterwards any healthy replica. For applications that cannot track positions.
    PrimaryAfterWrite {
        /// The session's last write.
        token: SessionToken,
        /// How long reads stay on the primary after it.
        window: Duration,
    },
    /// The primary (strong consistency: every write acknowledged before the read began; a
    /// replica can show a commit a moment before the primary does, see
    /// [`MonotonicReads`](Consistency::MonotonicReads)).
    Primary,
}
