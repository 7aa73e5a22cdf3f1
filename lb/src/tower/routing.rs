//! What a request tells the tower integration: [`Routing`], [`Tried`] and [`HashKey`].

use std::fmt;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::BackendId;

/// What the balancing services read from a request: the backends earlier attempts of it were
/// sent to (excluded from this attempt's pick), an optional hash key (hash and sticky
/// policies), and whether [`Retries`](super::Retries) may send it again.
///
/// Implemented for [`http::Request`] (reading [`Tried`] and [`HashKey`] from its extensions:
/// hyper, axum, tonic and hyper-util clients all speak it) and for `()`; implement it for your
/// own request type. Every method has a default, so `impl Routing for MyRequest {}` is a
/// request with no key and no retry tracking.
pub trait Routing {
    /// The shared record of backends this request was already sent to, if the caller attached
    /// one. Each attempt excludes them and adds its own pick.
    fn tried(&self) -> Option<&Tried> {
        None
    }

    /// The request's key, already hashed (see [`Balancer::hash_key`](crate::Balancer::hash_key)).
    fn hash_key(&self) -> Option<u64> {
        None
    }

    /// Whether sending the request twice is harmless ([`Retries`](super::Retries) only
    /// retries these). Default: `true`.
    fn is_idempotent(&self) -> bool {
        true
    }
}

impl Routing for () {}

/// Reads [`Tried`] and [`HashKey`] from the extensions; GET, HEAD, PUT, DELETE, OPTIONS and
/// TRACE are idempotent (RFC 9110, section 9.2.2).
impl<T> Routing for http::Request<T> {
    fn tried(&self) -> Option<&Tried> {
        self.extensions().get::<Tried>()
    }

    fn hash_key(&self) -> Option<u64> {
        self.extensions().get::<HashKey>().map(|k| k.0)
    }

    fn is_idempotent(&self) -> bool {
        use http::Method;
        let m = self.method();
        m == Method::GET
            || m == Method::HEAD
            || m == Method::PUT
            || m == Method::DELETE
            || m == Method::OPTIONS
            || m == Method::TRACE
    }
}

/// A request's hash key, as an [`http::Request`] extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HashKey(pub u64);

/// The backends a request has been sent to, shared by the request and its retried copies
/// (clones share one record), so that each new attempt avoids every backend an earlier one
/// used.
///
/// Attach one before the first attempt (for an [`http::Request`]:
/// `req.extensions_mut().insert(Tried::new())`); the balancing services exclude what it holds
/// and add their pick. One small allocation per request; the lock is held for the pick only.
///
/// # Examples
///
/// ```
/// use tierkit_lb::BackendId;
/// use tierkit_lb::tower::Tried;
///
/// let tried = Tried::new();
/// let copy = tried.clone();
/// assert!(copy.is_empty());
/// # let _ = BackendId(0);
/// ```
#[derive(Clone, Default)]
pub struct Tried {
    ids: Arc<Mutex<Vec<BackendId>>>,
}

impl Tried {
    /// An empty record.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The backends tried so far, in order.
    #[must_use]
    pub fn ids(&self) -> Vec<BackendId> {
        self.ids.lock().clone()
    }

    /// How many attempts picked a backend.
    #[must_use]
    pub fn len(&self) -> usize {
        self.ids.lock().len()
    }

    /// Whether no attempt has picked a backend yet.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Runs `pick` with the backends to exclude and records the id it returns.
    pub(crate) fn pick_and_record<T, E>(
        &self,
        pick: impl FnOnce(&[BackendId]) -> Result<T, E>,
        id: impl FnOnce(&T) -> BackendId,
    ) -> Result<T, E> {
        let mut ids = self.ids.lock();
        let picked = pick(&ids)?;
        ids.push(id(&picked));
        Ok(picked)
    }
}

impl fmt::Debug for Tried {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Tried").field(&*self.ids.lock()).finish()
    }
}
