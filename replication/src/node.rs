//! Per-node hot state and its public snapshot.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

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
    pub(crate) position: CachePadded<AtomicU64>,
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
