//! [`Route`]: the lease a request holds on the node it was routed to.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use arc_swap::Guard;

use crate::node::NodeState;
use crate::topology::{Member, Topology};
use crate::{Epoch, NodeId, Position, ReplicaSet, Role, SessionToken};

/// Why a read went to the primary instead of a replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fallback {
    /// No replica is healthy.
    NoHealthyReplica,
    /// Healthy replicas exist but none is fresh enough for the requested consistency.
    ReplicasBehind,
    /// The session wrote within its primary-after-write window.
    RecentWrite,
    /// The session's token comes from an earlier epoch: its write may have been lost in a
    /// failover, so only the primary can say what is there now.
    EarlierEpoch,
}

/// The node a request should use, held for the duration of the request.
///
/// It counts the request in flight on the node until it is finished or dropped, and carries
/// the outcome back: [`success`](Route::success), [`failure`](Route::failure) (passive health:
/// consecutive failures mark the node down) or, for writes, [`committed`](Route::committed),
/// which returns the session token. Dropping it without an outcome counts as cancelled.
#[must_use = "a route counts a request in flight until it is finished or dropped"]
pub struct Route<'a, C> {
    pub(crate) set: &'a ReplicaSet<C>,
    pub(crate) topology: Guard<Arc<Topology<C>>>,
    pub(crate) index: usize,
    pub(crate) fallback: Option<Fallback>,
    pub(crate) position: Position,
    /// A bounded read served by a replica past its bound (`BoundFallback::StaleReplica`).
    pub(crate) beyond_bound: bool,
    /// For writes: a clock reading taken when the write was routed.
    pub(crate) started_at: u64,
    /// The read balancer's lease, when a `tierkit-lb` policy chose this replica.
    pub(crate) read_lease: Option<tierkit_lb::Lease<NodeId>>,
}

impl<C> Route<'_, C> {
    fn member(&self) -> &Member<C> {
        &self.topology.members[self.index]
    }

    fn state(&self) -> &NodeState {
        &self.member().state
    }

    /// The node's handle (the user's connection pool or client).
    #[must_use]
    pub fn node(&self) -> &C {
        &self.member().handle
    }

    /// The node's handle, shared (to keep it beyond the route, or alongside it).
    #[must_use]
    pub fn handle(&self) -> Arc<C> {
        self.member().handle.clone()
    }

    /// The node's id.
    #[must_use]
    pub fn id(&self) -> NodeId {
        self.member().id
    }

    /// The node's role when the request was routed.
    #[must_use]
    pub fn role(&self) -> Role {
        self.member().role
    }

    /// Whether this is the primary.
    #[must_use]
    pub fn is_primary(&self) -> bool {
        self.role() == Role::Primary
    }

    /// The epoch of the routing decision; write routes carry their primary's epoch (fencing).
    #[must_use]
    pub fn epoch(&self) -> Epoch {
        self.topology.epoch
    }

    /// Why a read went to the primary, if it did.
    #[must_use]
    pub fn fallback(&self) -> Option<Fallback> {
        self.fallback
    }

    /// The node's last *known* position when routed: a lower bound of what it serves. For
    /// monotonic reads record the position the read actually served instead
    /// ([`served`](Self::served)): a node is usually ahead of what the router last heard.
    #[must_use]
    pub fn position(&self) -> Position {
        self.position
    }

    /// Whether a bounded-staleness read was served by a replica past its bound, as
    /// [`BoundFallback::StaleReplica`](crate::BoundFallback::StaleReplica) allows (never with
    /// the default [`BoundFallback::Primary`](crate::BoundFallback::Primary)).
    #[must_use]
    pub fn beyond_bound(&self) -> bool {
        self.beyond_bound
    }

    /// A read succeeded and served data at `position`: for PostgreSQL,
    /// `pg_last_wal_replay_lsn()` read in the same transaction as the query on a replica (the
    /// WAL insert position on a primary). Records it as the node's position and returns it:
    /// keep the largest a session has seen and pass it to
    /// [`Consistency::MonotonicReads`](crate::Consistency::MonotonicReads), so the session
    /// never reads older data than it already has.
    pub fn served(self, position: Position) -> Position {
        // The node holds at least this much. (No sample of the primary's history: reads take
        // no clock reading, and a time taken now would be later than the position's.)
        let before = self
            .state()
            .position
            .fetch_max(position.0, Ordering::AcqRel);
        #[cfg(feature = "tokio")]
        if position.0 > before {
            self.set.advanced.notify_waiters();
        }
        #[cfg(not(feature = "tokio"))]
        let _ = before;
        self.success();
        position
    }

    /// The request succeeded.
    pub fn success(self) {
        self.state()
            .consecutive_failures
            .store(0, Ordering::Release);
    }

    /// The request succeeded after `latency`: like [`success`](Self::success), and a
    /// latency-aware read policy ([`tierkit_lb::LeastLatency`]) learns from it.
    pub fn success_after(mut self, latency: std::time::Duration) {
        if let Some(lease) = self.read_lease.take() {
            lease.success(latency);
        }
        self.success();
    }

    /// The request failed because of the node (not because of the query): after `fall`
    /// consecutive failures the node is marked down and receives no more reads.
    pub fn failure(mut self) {
        if let Some(lease) = self.read_lease.take() {
            lease.failure();
        }
        let state = self.state();
        state.failures.fetch_add(1, Ordering::Relaxed);
        let failures = state.consecutive_failures.fetch_add(1, Ordering::AcqRel) + 1;
        if failures >= self.set.config.fall {
            self.set.mark(&self.topology, self.index, false);
        }
    }

    /// A write committed; `position` is the primary's position read *after* the commit was
    /// acknowledged (for PostgreSQL, `pg_current_wal_insert_lsn()` in a statement after
    /// `COMMIT`, never inside the transaction: a position read before the commit record is
    /// written is behind the write, and a replica at that position lacks it). Records the
    /// primary's new position and returns the token the session passes to its next reads.
    pub fn committed(self, position: Position) -> SessionToken {
        let state = self.state();
        state.position.fetch_max(position.0, Ordering::AcqRel);
        state.consecutive_failures.store(0, Ordering::Release);
        if self.topology.primary == Some(self.index) {
            self.set.record_primary_position(position, self.started_at);
        }
        #[cfg(feature = "tokio")]
        self.set.advanced.notify_waiters();
        SessionToken {
            epoch: self.epoch(),
            position,
            written_at: std::time::Duration::from_nanos(self.set.clock.now_nanos()),
        }
    }
}

impl<C> Drop for Route<'_, C> {
    fn drop(&mut self) {
        self.state().finished.fetch_add(1, Ordering::AcqRel);
    }
}

impl<C> std::fmt::Debug for Route<'_, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Route")
            .field("id", &self.id())
            .field("role", &self.role())
            .field("epoch", &self.epoch())
            .field("fallback", &self.fallback)
            .finish_non_exhaustive()
    }
}
