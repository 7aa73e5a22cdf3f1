//! The crate's error types.

use std::fmt;

use crate::BackendId;

/// Result alias with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why [`Balancer::pick`](crate::Balancer::pick) found no backend.
///
/// Cheap to return (no allocation): a pick that fails is on the hot path too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum NoBackend {
    /// The pool has no members at all.
    Empty,
    /// Every member is draining (or has weight zero).
    AllDraining,
    /// Every serving member is ejected by outlier detection or failing its health checks (and
    /// the panic threshold is disabled).
    AllUnhealthy,
    /// Backends are available, but the request's [`Context`](crate::Context) excluded all of them.
    AllExcluded,
    /// The policy found no backend for this request (for example a locality policy whose zones
    /// have no healthy member).
    NoneMatched,
    /// The chosen backend already has 2^31 leases alive, the most one backend can count; only
    /// leases leaked with `mem::forget` get there. The pick is counted (as cancelled).
    Saturated,
}

impl fmt::Display for NoBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Empty => "no backend: none added",
            Self::AllDraining => "no backend: all draining",
            Self::AllUnhealthy => "no backend: all ejected or unhealthy",
            Self::AllExcluded => "no backend: all excluded by the request",
            Self::NoneMatched => "no backend: none matched the policy",
            Self::Saturated => "no backend: the chosen backend has 2^31 requests in flight",
        })
    }
}

impl std::error::Error for NoBackend {}

/// Errors from building a balancer and changing its membership.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A pick found no backend; see the reason.
    #[error(transparent)]
    NoBackend(#[from] NoBackend),
    /// A backend with this id is already a member.
    #[error("duplicate backend id {0}")]
    DuplicateId(BackendId),
    /// No member has this id.
    #[error("unknown backend id {0}")]
    UnknownBackend(BackendId),
    /// A configuration value was out of range.
    #[error("invalid {name}: {reason}")]
    InvalidConfig {
        /// The setting, named as its builder method.
        name: &'static str,
        /// What was wrong with it.
        reason: &'static str,
    },
    /// A request through the tower integration got no response within its timeout (counted
    /// as a failure of its backend).
    #[error("no response within {0:?}")]
    Timeout(std::time::Duration),
    /// The consistent-hash placement refused the membership (see its error).
    #[error("placement: {0}")]
    Placement(#[from] tierkit_consistent_hash::Error),
}
