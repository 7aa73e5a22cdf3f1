//! Per-node hot state and its public snapshot.

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering};

use crossbeam_utils::CachePadded;

use crate::{NodeId, Position};

/// A node's role in the current epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Role {
    /// Takes writes (one per epoch).
    Primary,
    /// Serves reads.
    Replica,
    /// A deposed primary: serves nothing until it rejoins as a replica.
    Fenced,
}

/// Counters and health of one node. Lives outside the topology snapshot, so it survives
/// membership changes and promotions.
#[derive(Debug, Default)]
pub(crate) struct NodeState {
    /// The position whose data the node serves (applied / replayed).
    pub(crate) position: CachePadded<AtomicU64>,
    /// The position the node has received and made durable (0 = unknown); at promotion an
    /// engine applies everything received, so this is what survives a failover.
    pub(crate) received: AtomicU64,
    /// What the engine last said about writability: [`UNKNOWN`], [`WRITABLE`] or [`READ_ONLY`].
    pub(crate) engine: AtomicU8,
    /// Routes handed out (reads = started - writes) and finished (in flight = the difference).
    pub(crate) started: CachePadded<AtomicU64>,
    pub(crate) finished: CachePadded<AtomicU64>,
    pub(crate) healthy: AtomicBool,
    pub(crate) consecutive_failures: AtomicU32,
    pub(crate) consecutive_successes: AtomicU32,
    /// Clock nanos when the node went down; 0 while healthy.
    pub(crate) down_since: AtomicU64,
    pub(crate) writes: AtomicU64,
    pub(crate) failures: AtomicU64,
    pub(crate) fallback_reads: AtomicU64,
}

/// The engine has not said whether the node takes writes.
pub(crate) const UNKNOWN: u8 = 0;
/// The engine says the node takes writes (`pg_is_in_recovery()` is false).
pub(crate) const WRITABLE: u8 = 1;
/// The engine says the node is read-only (in recovery).
pub(crate) const READ_ONLY: u8 = 2;

impl NodeState {
    pub(crate) fn new(position: Position) -> Self {
        let s = NodeState::default();
        s.position.store(position.0, Ordering::Release);
        s.healthy.store(true, Ordering::Release);
        s
    }

    #[inline]
    pub(crate) fn position(&self) -> Position {
        Position(self.position.load(Ordering::Acquire))
    }

    pub(crate) fn in_flight(&self) -> u64 {
        let finished = self.finished.load(Ordering::Acquire);
        self.started
            .load(Ordering::Acquire)
            .saturating_sub(finished)
    }

    /// The most advanced position the node is known to hold: what survives if it is
    /// promoted now.
    pub(crate) fn durable(&self) -> Position {
        Position(self.received.load(Ordering::Acquire).max(self.position().0))
    }

    #[inline]
    pub(crate) fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Acquire)
    }
}

/// A point-in-time view of one node, from [`ReplicaSet::stats`](crate::ReplicaSet::stats).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NodeStats {
    /// The node.
    pub id: NodeId,
    /// Its role in the current epoch.
    pub role: Role,
    /// Whether it is considered healthy.
    pub healthy: bool,
    /// Its last known replication position.
    pub position: Position,
    /// The position it has received (`pg_last_wal_receive_lsn()`), when its probe reports one.
    pub received: Option<Position>,
    /// What the engine last said: `Some(true)` writable, `Some(false)` read-only, `None` not
    /// reported.
    pub writable: Option<bool>,
    /// Positions behind the primary's last known position (0 for the primary).
    pub lag: u64,
    /// How long ago the primary made the oldest write this node has not applied, when the set's
    /// recent history of primary positions covers it (`Some(0)` when caught up).
    pub lag_time: Option<std::time::Duration>,
    /// Requests routed to it and not finished.
    pub in_flight: u64,
    /// Reads routed to it.
    pub reads: u64,
    /// Writes routed to it.
    pub writes: u64,
    /// Failures reported on its routes.
    pub failures: u64,
    /// Reads it served because no replica was eligible (primary only).
    pub fallback_reads: u64,
}
