//! [`Balance`]: a tower `Service` over backend services, one picked per request.

use std::fmt;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use ::tower::{BoxError, Service};

use super::classify::Opaque;
use super::future::{Oneshot, ResponseFuture};
use super::{Classify, ErrorsOnly, Routing};
use crate::{BackendId, Balancer, Context, Lease, NoBackend, Policy};

/// A tower [`Service`] that sends each request to one backend service chosen by a
/// [`Balancer`] whose backend values are the services themselves (a tonic `Channel`, a
/// hyper-util `Client` bound to one host, any `Clone` service).
///
/// Per request, `call` picks a backend with the request's [`Routing`] (its [`Tried`](super::Tried)
/// backends excluded, its [`HashKey`](super::HashKey) for hash policies), clones the picked
/// service, and returns a [`ResponseFuture`] that drives the clone to readiness, calls it, and
/// reports the outcome on the lease: success with the latency measured by the balancer's
/// clock (two readings per request: the default [`FastClock`](crate::FastClock) costs about
/// 12 ns a reading; under tokio's paused test clock, build the balancer with
/// [`TokioClock`](crate::TokioClock) so latencies are in paused time), failure on an inner
/// error, a response the [`Classify`] rejects, or the [`timeout`](Self::timeout). Health,
/// outlier ejection, slow start, weights and draining are the balancer's: configure them on
/// its builder; change membership at runtime through [`balancer`](Self::balancer) (`add`,
/// `remove`, `set_weight`, `drain`) or a tower `Discover` stream
/// ([`spawn_discover`](super::spawn_discover)). A removed backend gets no new request; the
/// requests already sent to it finish on their own clone.
///
/// # `poll_ready`
/// Always `Ready(Ok(()))`. The backend is chosen in `call`, where the request (its excluded
/// backends and hash key) is known, so readiness cannot be answered for "the" backend
/// beforehand. Instead the picked backend's own `poll_ready` is awaited inside the response
/// future, holding the lease: a backend that applies backpressure accumulates in-flight
/// requests, which least-connections, P2C and least-latency policies steer away from. When no
/// backend can take the request (empty pool, all ejected or excluded), the response future
/// fails at once with [`Error::NoBackend`](crate::Error::NoBackend) rather than waiting for
/// one: a balancer in front of nothing should answer "unavailable", not hang. Put a
/// `tower::limit::ConcurrencyLimit` or `tower::buffer::Buffer` in front for global
/// backpressure.
///
/// `Balance` is `Clone` (an `Arc` and the classifier): clone it per connection or task.
///
/// # Examples
///
/// ```
/// use std::convert::Infallible;
/// use std::sync::Arc;
/// use tierkit_lb::tower::Balance;
/// use tierkit_lb::{Backend, Balancer, PowerOfTwoChoices};
/// use tower::{Service, ServiceExt, service_fn};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower::BoxError> {
/// // Two backend "channels" (here in-memory services, in practice a tonic `Channel` or a
/// // hyper-util client per host), each answering with its own name.
/// let backend = |name: &'static str| {
///     service_fn(move |()| async move { Ok::<_, Infallible>(name) })
/// };
/// let lb = Arc::new(
///     Balancer::builder().policy(PowerOfTwoChoices::new())
///         .backend(Backend::new(1, backend("a")))
///         .backend(Backend::new(2, backend("b")))
///         .build()?,
/// );
/// let mut svc = Balance::new(Arc::clone(&lb));
/// let answer = svc.ready().await?.call(()).await?;
/// assert!(answer == "a" || answer == "b");
/// assert_eq!(lb.stats().backends.iter().map(|b| b.successes).sum::<u64>(), 1);
/// # Ok(())
/// # }
/// ```
pub struct Balance<S, P: Policy<S>, C = ErrorsOnly> {
    lb: Arc<Balancer<S, P>>,
    classify: C,
    timeout: Option<Duration>,
}

impl<S, P: Policy<S>> Balance<S, P> {
    /// Balances over `lb`'s backend services; `Ok` responses count as successes, no timeout.
    pub fn new(lb: Arc<Balancer<S, P>>) -> Self {
        Self {
            lb,
            classify: ErrorsOnly,
            timeout: None,
        }
    }
}

impl<S, P: Policy<S>, C> Balance<S, P, C> {
    /// Decides which `Ok` responses count as failures (for example
    /// [`ServerErrors`](super::ServerErrors) for HTTP 5xx).
    pub fn classify<C2>(self, classify: C2) -> Balance<S, P, C2> {
        Balance {
            lb: self.lb,
            classify,
            timeout: self.timeout,
        }
    }

    /// A request without a response after `timeout` (counted from `call`, readiness wait
    /// included) fails with [`Error::Timeout`](crate::Error::Timeout) and counts as a failure
    /// of its backend. `Duration::MAX` (the default) means no timeout. Needs a tokio runtime
    /// with time enabled where the response is polled.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = (timeout != Duration::MAX).then_some(timeout);
        self
    }

    /// The balancer: membership, health and stats.
    pub fn balancer(&self) -> &Arc<Balancer<S, P>> {
        &self.lb
    }
}

/// Picks a lease for `req`, excluding and recording its tried backends.
pub(crate) fn pick_for<B, P, Req>(lb: &Balancer<B, P>, req: &Req) -> Result<Lease<B>, NoBackend>
where
    B: Send + Sync + 'static,
    P: Policy<B>,
    Req: Routing,
{
    fn ctx(hash: Option<u64>, exclude: &[BackendId]) -> Context<'_> {
        let ctx = Context::new().exclude(exclude);
        match hash {
            Some(h) => ctx.with_hash(h),
            None => ctx,
        }
    }
    let hash = req.hash_key();
    match req.tried() {
        None => lb.pick(&ctx(hash, &[])),
        Some(tried) => tried.pick_and_record(|ids| lb.pick(&ctx(hash, ids)), Lease::id),
    }
}

impl<S, P, C, Req> Service<Req> for Balance<S, P, C>
where
    S: Service<Req> + Clone + Send + Sync + 'static,
    S::Error: Into<BoxError>,
    P: Policy<S>,
    C: Classify<S::Response> + Clone,
    Req: Routing,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<Oneshot<S, Req>, S, C>;

    /// Always ready: see the type's docs, "`poll_ready`".
    #[inline]
    fn poll_ready(&mut self, _: &mut TaskContext<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Req) -> Self::Future {
        match pick_for(&self.lb, &req) {
            Ok(lease) => {
                let svc = lease.backend().clone();
                ResponseFuture::new(
                    Oneshot::new(svc, req),
                    lease,
                    self.classify.clone(),
                    self.timeout,
                )
            }
            Err(reason) => ResponseFuture::refused(reason),
        }
    }
}

impl<S, P: Policy<S>, C: Clone> Clone for Balance<S, P, C> {
    fn clone(&self) -> Self {
        Self {
            lb: Arc::clone(&self.lb),
            classify: self.classify.clone(),
            timeout: self.timeout,
        }
    }
}

impl<S, P: Policy<S>, C> fmt::Debug for Balance<S, P, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Balance")
            .field("policy", &self.lb.policy().name())
            .field("backends", &self.lb.len())
            .field("classify", &Opaque)
            .field("timeout", &self.timeout)
            .finish()
    }
}
