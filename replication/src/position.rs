//! Replication positions, fencing epochs, node ids and session tokens.

use std::fmt;
use std::time::Duration;

/// A point in the primary's write stream (a PostgreSQL LSN, a MySQL GTID sequence number, a
/// Kafka offset): ordered, and a replica at position `p` has applied every write up to `p`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Position(pub u64);

impl Position {
    /// How far `self` is behind `ahead` (0 if it is not behind).
    #[must_use]
    pub fn lag_behind(self, ahead: Position) -> u64 {
        ahead.0.saturating_sub(self.0)
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "@{}", self.0)
    }
}

/// A fencing token: increases with every promotion. Every write route carries the epoch of the
/// primary it targets, so a storage layer that remembers the highest epoch it has seen can
/// refuse writes from a deposed primary's clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Epoch(pub u64);

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "epoch {}", self.0)
    }
}

/// A node's identity in a [`ReplicaSet`](crate::ReplicaSet).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(pub u32);

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "node {}", self.0)
    }
}

/// What a write returns to its session: the primary's position after the write, the epoch it
/// was written in and when. Pass it to later reads
/// ([`Consistency::ReadYourWrites`](crate::Consistency::ReadYourWrites)) so they never miss the
/// write; keep the largest one a session has seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SessionToken {
    /// The epoch of the write.
    pub epoch: Epoch,
    /// The primary's position after the write.
    pub position: Position,
    /// When the write was acknowledged, on the replica set's clock.
    pub written_at: Duration,
}

impl SessionToken {
    /// The later of two tokens (a session keeps the latest of its writes and reads).
    #[must_use]
    pub fn max(self, other: SessionToken) -> SessionToken {
        if (other.epoch, other.position) > (self.epoch, self.position) {
            other
        } else {
            self
        }
    }
}

/// What a probe learned about a node: the position it serves, the position it has received,
/// and whether the engine takes writes on it.
///
/// A probe that only knows one position converts it: `Observation::from(Position(7))`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Observation {
    /// The position whose data the node serves: `pg_last_wal_replay_lsn()` on a PostgreSQL
    /// replica, the current WAL insert position on a primary.
    pub applied: Position,
    /// The position the node has received and made durable but may not have applied yet
    /// (`pg_last_wal_receive_lsn()`). Lost-write reports use it: at promotion the engine
    /// applies everything received.
    pub received: Option<Position>,
    /// Whether the engine takes writes on the node (`Some(!pg_is_in_recovery())`).
    pub writable: Option<bool>,
}

impl Observation {
    /// An observation of `applied` only.
    #[must_use]
    pub fn new(applied: Position) -> Self {
        Observation {
            applied,
            received: None,
            writable: None,
        }
    }

    /// Sets the received position.
    #[must_use]
    pub fn received(mut self, received: Position) -> Self {
        self.received = Some(received);
        self
    }

    /// Sets what the engine says about writability.
    #[must_use]
    pub fn writable(mut self, writable: bool) -> Self {
        self.writable = Some(writable);
        self
    }
}

impl From<Position> for Observation {
    fn from(applied: Position) -> Self {
        Observation::new(applied)
    }
}
