//! [`Route`]: the lease a request holds on the node it was routed to.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::node::NodeState;
use crate::{Clock, Epoch, NodeId, Position, Role, SessionToken};

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
pub struct Route<C> {
    pub(crate) handle: Arc<C>,
    pub(crate) id: NodeId,
    pub(crate) role: Role,
    pub(crate) epoch: Epoch,
    pub(crate) fallback: Option<Fallback>,
    pub(crate) position: Position,
    pub(crate) state: Arc<NodeState>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) started: Duration,
    pub(crate) fall: u32,
}

impl<C> Route<C> {
    /// The node's handle (the user's connection pool or client).
    #[must_use]
    pub fn node(&self) -> &C {
        &self.handle
    }

    /// The node's id.
    #[must_use]
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The node's role when the request was routed.
    #[must_use]
    pub fn role(&self) -> Role {
        self.role
    }

    /// Whether this is the primary.
    #[must_use]
    pub fn is_primary(&self) -> bool {
        self.role == Role::Primary
    }

    /// The epoch of the routing decision; write routes carry their primary's epoch (fencing).
    #[must_use]
    pub fn epoch(&self) -> Epoch {
        self.epoch
    }

    /// Why a read went to the primary, if it did.
    #[must_use]
    pub fn fallback(&self) -> Option<Fallback> {
        self.fallback
    }

    /// The node's known position when routed: record it to make the session's next reads
    /// monotonic ([`Consistency::MonotonicReads`](crate::Consistency::MonotonicReads)).
    #[must_use]
    pub fn position(&self) -> Position {
        self.position
    }

    /// Time since the route was taken, on the set's clock.
    #[must_use]
    pub fn elapsed(&self) -> Duration {
        self.clock.now().saturating_sub(self.started)
    }

    /// The request succeeded.
    pub fn success(self) {
        self.state.consecutive_failures.store(0, Ordering::Release);
    }

    /// The request failed because of the node (not because of the query): after `fall`
    /// consecutive failures the node is marked down and receives no more reads.
    pub fn failure(self) {
        self.state.failures.fetch_add(1, Ordering::Relaxed);
        let failures = self
            .state
            .consecutive_failures
            .fetch_add(1, Ordering::AcqRel)
            + 1;
        if failures >= self.fall && self.state.healthy.swap(false, Ordering::AcqRel) {
            let now = u64::try_from(self.clock.now().as_nanos())
                .unwrap_or(u64::MAX)
                .max(1);
            self.state.down_since.store(now, Ordering::Release);
            self.state.consecutive_successes.store(0, Ordering::Release);
            tracing::warn!(
                node = self.id.0,
                failures,
                "node marked down after consecutive failures"
            );
        }
    }

    /// A write committed at `position` on the primary: records the primary's new position and
    /// returns the token the session passes to its next reads.
    pub fn committed(self, position: Position) -> SessionToken {
        self.state.position.fetch_max(position.0, Ordering::AcqRel);
        self.state.consecutive_failures.store(0, Ordering::Release);
        SessionToken {
            epoch: self.epoch,
            position,
            written_at: self.clock.now(),
        }
    }
}

impl<C> Drop for Route<C> {
    fn drop(&mut self) {
        self.state.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl<C> std::fmt::Debug for Route<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Route")
            .field("id", &self.id)
            .field("role", &self.role)
            .field("epoch", &self.epoch)
            .field("fallback", &self.fallback)
            .finish_non_exhaustive()
    }
}
