//! The crate's error type.

use crate::{Epoch, NodeId};

/// What can go wrong routing a request or changing the replica set.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A write was requested and there is no primary (it failed and none was promoted yet).
    #[error("no primary: writes are unavailable until a replica is promoted")]
    NoPrimary,
    /// A write was requested while the primary is marked down or its engine reports it
    /// read-only: it fails fast instead of reaching a node that cannot take it.
    #[error("primary {node} is unavailable for writes (down or read-only)")]
    PrimaryUnavailable {
        /// The primary.
        node: NodeId,
    },
    /// A write was requested while a promotion waits for the engine to confirm the candidate
    /// writable.
    #[error("{candidate} is being promoted ({epoch}); writes resume when the engine confirms")]
    Promoting {
        /// The replica being promoted.
        candidate: NodeId,
        /// The epoch it will lead.
        epoch: Epoch,
    },
    /// A promotion was completed or aborted after another change superseded it.
    #[error("the promotion to {epoch} is no longer current (now {current})")]
    StalePromotion {
        /// The promotion's epoch.
        epoch: Epoch,
        /// The set's epoch now.
        current: Epoch,
    },
    /// The promotion hook failed; the promotion was aborted (the set has no primary).
    #[error("promotion of {candidate} failed: {reason}")]
    PromotionFailed {
        /// The candidate.
        candidate: NodeId,
        /// The hook's error.
        reason: String,
    },
    /// The engine (through an adapter such as [`pg`](crate#crate-features)) reported an error.
    #[error("engine error{}: {message}", sqlstate.as_deref().map(|c| format!(" {c}")).unwrap_or_default())]
    Engine {
        /// The engine's message.
        message: String,
        /// The engine's error code, if it sent one (PostgreSQL's SQLSTATE: `25006` is
        /// "read-only transaction").
        sqlstate: Option<String>,
    },
    /// The set has no node at all that could serve the request.
    #[error("no node can serve the request: {0}")]
    NoNode(&'static str),
    /// A node id that the set does not have.
    #[error("unknown node {0}")]
    UnknownNode(NodeId),
    /// A node id given twice.
    #[error("node {0} is already a member")]
    DuplicateNode(NodeId),
    /// Promotion found no healthy replica to promote.
    #[error("no healthy replica to promote")]
    NoCandidate,
    /// Automatic promotion refused its best candidate: it lags more than allowed.
    #[error("best candidate {node} lags the old primary by {lag} positions (max {max})")]
    CandidateTooFarBehind {
        /// The most advanced healthy replica.
        node: NodeId,
        /// How far behind the old primary's last known position it is.
        lag: u64,
        /// The configured maximum.
        max: u64,
    },
    /// Automatic promotion refused: the last failover was too recent.
    #[error("last failover was {since_ms} ms ago; quiet period is {quiet_ms} ms")]
    QuietPeriod {
        /// Milliseconds since the last failover.
        since_ms: u64,
        /// The configured quiet period in milliseconds.
        quiet_ms: u64,
    },
    /// The set must have a primary when it is built.
    #[error("a replica set needs a primary")]
    MissingPrimary,
    /// The read policy's balancer (see
    /// [`ReplicaSetBuilder::read_policy`](crate::ReplicaSetBuilder::read_policy)) could not be
    /// built.
    #[error("read balancer: {0}")]
    Balancer(tierkit_lb::Error),
}

/// `Result` with this crate's [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
