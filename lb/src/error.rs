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
    #[error("invalid {name} {value}: {reason}")]
    InvalidConfig {
        /// The setting, named as its builder method.
        name: &'static str,
        /// The value given, as text.
        value: String,
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

impl Error {
    /// An [`Error::InvalidConfig`] for `name` set to `value`.
    pub(crate) fn invalid(
        name: &'static str,
        value: impl fmt::Display,
        reason: &'static str,
    ) -> Self {
        Self::InvalidConfig {
            name,
            value: value.to_string(),
            reason,
        }
    }
}

/// A value handed back with the reason it was refused (for example the [`Backend`](crate::Backend) given to
/// [`Balancer::add`](crate::Balancer::add) under an id already in use): failure loses nothing.
///
/// Converts into [`Error`] with `?` (dropping the value).
///
/// # Examples
///
/// ```
/// use tierkit_lb::{Backend, Balancer, Error, RoundRobin};
///
/// let lb = Balancer::builder().policy(RoundRobin::new()).backend(Backend::new(1, "a")).build()?;
/// let refused = lb.add(Backend::new(1, "pool-b")).unwrap_err();
/// assert!(matches!(refused.error(), Error::DuplicateId(_)));
/// assert_eq!(*refused.into_inner().value(), "pool-b");
/// # Ok::<(), tierkit_lb::Error>(())
/// ```
pub struct Rejected<T> {
    error: Error,
    value: T,
}

impl<T> Rejected<T> {
    pub(crate) fn new(error: Error, value: T) -> Self {
        Self { error, value }
    }

    /// Why it was refused.
    #[must_use]
    pub fn error(&self) -> &Error {
        &self.error
    }

    /// The value handed back.
    #[must_use]
    pub fn into_inner(self) -> T {
        self.value
    }

    /// The reason and the value.
    #[must_use]
    pub fn into_parts(self) -> (Error, T) {
        (self.error, self.value)
    }
}

impl<T> fmt::Debug for Rejected<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rejected")
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

impl<T> fmt::Display for Rejected<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.error, f)
    }
}

impl<T> std::error::Error for Rejected<T> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

impl<T> From<Rejected<T>> for Error {
    fn from(r: Rejected<T>) -> Self {
        r.error
    }
}
