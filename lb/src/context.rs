//! Per-request input to a pick: [`Context`].

use std::fmt;

use crate::BackendId;

/// What a request tells the balancer: an optional hash key (hash and sticky policies) and the
/// backends it must not go to (a retry after a failure goes elsewhere).
///
/// Borrowed and `Copy`: building one allocates nothing.
///
/// # Examples
///
/// ```
/// use tierkit_lb::{BackendId, Context};
///
/// let tried = [BackendId(3)];
/// let ctx = Context::new().with_hash(0xfeed).exclude(&tried);
/// assert!(!ctx.allows(BackendId(3)));
/// assert!(ctx.allows(BackendId(4)));
/// ```
#[derive(Clone, Copy, Default)]
pub struct Context<'a> {
    hash: Option<u64>,
    exclude: &'a [BackendId],
    allow: Option<&'a [BackendId]>,
    filter: Option<&'a (dyn Fn(BackendId) -> bool + Sync)>,
}

impl<'a> Context<'a> {
    /// A context with no key and no exclusions.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            hash: None,
            exclude: &[],
            allow: None,
            filter: None,
        }
    }

    /// This context with the request's key, already hashed (see
    /// [`Balancer::hash_key`](crate::Balancer::hash_key)); read back by
    /// [`key_hash`](Self::key_hash).
    #[must_use]
    pub const fn with_hash(mut self, hash: u64) -> Self {
        self.hash = Some(hash);
        self
    }

    /// Backends this request must not use (for example those a retry already tried).
    #[must_use]
    pub const fn exclude(mut self, ids: &'a [BackendId]) -> Self {
        self.exclude = ids;
        self
    }

    /// Only backends for which `allow` returns true (for example replicas caught up to a
    /// position). Combined with [`exclude`](Self::exclude) and [`only_ids`](Self::only_ids).
    #[must_use]
    pub fn only(mut self, allow: &'a (dyn Fn(BackendId) -> bool + Sync)) -> Self {
        self.filter = Some(allow);
        self
    }

    /// Only the backends listed (an allowlist; an empty list allows none). Combined with
    /// [`exclude`](Self::exclude) and [`only`](Self::only).
    #[must_use]
    pub const fn only_ids(mut self, ids: &'a [BackendId]) -> Self {
        self.allow = Some(ids);
        self
    }

    /// The hashed key, if any.
    #[must_use]
    pub fn key_hash(&self) -> Option<u64> {
        self.hash
    }

    /// Whether the request may go to backend `id`.
    #[inline]
    #[must_use]
    pub fn allows(&self, id: BackendId) -> bool {
        !self.exclude.contains(&id)
            && self.allow.is_none_or(|a| a.contains(&id))
            && self.filter.is_none_or(|f| f(id))
    }

    /// Whether nothing is excluded (the fast path every policy takes first).
    #[inline]
    #[must_use]
    pub fn is_unrestricted(&self) -> bool {
        self.exclude.is_empty() && self.allow.is_none() && self.filter.is_none()
    }
}

impl fmt::Debug for Context<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("hash", &self.hash)
            .field("exclude", &self.exclude)
            .field("allow", &self.allow)
            .field("filter", &self.filter.is_some())
            .finish()
    }
}
