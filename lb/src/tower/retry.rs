//! [`Retries`]: a `tower::retry` policy that never resends to a backend already tried.

use std::future::{Ready, ready};

use ::tower::BoxError;
use ::tower::retry::Policy;

use super::{Classify, ErrorsOnly, Routing};
use crate::Error;

/// A [`tower::retry::Policy`](::tower::retry::Policy) for requests sent through
/// [`Balance`](super::Balance) or [`Balanced`](super::Balanced): up to `max_retries` more
/// attempts after a failure (an error other than "no backend", or a response the classifier
/// rejects), each on a backend no earlier attempt used.
///
/// The exclusion works through the request's [`Tried`](super::Tried), shared by the request
/// and the copies `tower::retry` makes: attach one before the first attempt. A request without
/// one, or one that is not [idempotent](Routing::is_idempotent), is never retried (it could
/// land on the backend that just failed it, or apply twice). When every backend has been
/// tried, the next pick fails with [`NoBackend::AllExcluded`](crate::NoBackend::AllExcluded),
/// which ends the retries. No backoff: the next attempt goes to another backend at once.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use tierkit_lb::tower::{Balance, Retries, Tried};
/// use tierkit_lb::{Backend, Balancer, RoundRobin};
/// use tower::retry::Retry;
/// use tower::{Service, ServiceExt, service_fn};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower::BoxError> {
/// // Backend 1 always fails, backend 2 answers.
/// let backend = |ok: bool| service_fn(move |_: http::Request<()>| async move {
///     if ok { Ok("hello") } else { Err("backend down") }
/// });
/// let lb = Arc::new(
///     Balancer::builder().policy(RoundRobin::new())
///         .backend(Backend::new(1, backend(false)))
///         .backend(Backend::new(2, backend(true)))
///         .build()?,
/// );
/// let mut svc = Retry::new(Retries::new(1), Balance::new(lb));
/// for _ in 0..4 {
///     let mut req = http::Request::new(());
///     req.extensions_mut().insert(Tried::new());
///     assert_eq!(svc.ready().await?.call(req).await?, "hello");
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retries<C = ErrorsOnly> {
    left: usize,
    classify: C,
}

impl Retries {
    /// At most `max_retries` attempts after the first; only errors are failures.
    #[must_use]
    pub fn new(max_retries: usize) -> Self {
        Self {
            left: max_retries,
            classify: ErrorsOnly,
        }
    }
}

impl<C> Retries<C> {
    /// Also retries `Ok` responses that `classify` calls failures (for example
    /// [`ServerErrors`](super::ServerErrors)).
    pub fn classify<C2>(self, classify: C2) -> Retries<C2> {
        Retries {
            left: self.left,
            classify,
        }
    }

    /// Attempts left for the request this policy follows.
    #[must_use]
    pub fn remaining(&self) -> usize {
        self.left
    }
}

/// Whether `e` is the balancer finding no backend (nothing to retry on).
fn is_no_backend(e: &BoxError) -> bool {
    matches!(e.downcast_ref::<Error>(), Some(Error::NoBackend(_)))
}

impl<Req, Res, C> Policy<Req, Res, BoxError> for Retries<C>
where
    Req: Routing + Clone,
    C: Classify<Res>,
{
    type Future = Ready<()>;

    fn retry(&mut self, req: &mut Req, result: &mut Result<Res, BoxError>) -> Option<Self::Future> {
        if self.left == 0 || req.tried().is_none() || !req.is_idempotent() {
            return None;
        }
        let failed = match result {
            Ok(res) => self.classify.is_failure(res),
            Err(e) => !is_no_backend(e),
        };
        if !failed {
            return None;
        }
        self.left -= 1;
        Some(ready(()))
    }

    fn clone_request(&mut self, req: &Req) -> Option<Req> {
        (self.left > 0 && req.tried().is_some() && req.is_idempotent()).then(|| req.clone())
    }
}
