//! [`BalanceLayer`] and [`Balanced`]: one inner client, the request pointed at a picked backend.

use std::fmt;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use ::tower::{BoxError, Layer, Service};

use super::classify::Opaque;
use super::future::ResponseFuture;
use super::service::pick_for;
use super::{Classify, ErrorsOnly, Routing};
use crate::{Balancer, Policy};

/// A tower [`Layer`] for the common shape of an HTTP or RPC client: one inner service (a
/// pooled client such as hyper-util's `Client`, which connects wherever a request's URI points)
/// and a [`Balancer`] of addresses. Per request, [`Balanced`] picks a backend, lets `route`
/// point the request at it (`route(&backend, &mut request)`, typically rewriting the URI's
/// authority), calls the inner service and times the response like
/// [`Balance`](super::Balance) does (latency, errors, classified failures, timeout).
///
/// # `poll_ready`
/// [`Balanced::poll_ready`] is the inner service's own: the one client that will carry the
/// request, whichever backend it goes to. As with `Balance`, a pick that finds no backend
/// fails in the response future ([`Error::NoBackend`](crate::Error::NoBackend)), without
/// calling the inner service.
///
/// # Examples
///
/// ```
/// use std::convert::Infallible;
/// use std::sync::Arc;
/// use tierkit_lb::tower::BalanceLayer;
/// use tierkit_lb::{Backend, Balancer, RoundRobin};
/// use tower::{Layer, Service, ServiceExt, service_fn};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower::BoxError> {
/// let lb = Arc::new(
///     Balancer::builder().policy(RoundRobin::new())
///         .backends((1..=2).map(|i| Backend::new(i, format!("10.0.0.{i}:80"))))
///         .build()?,
/// );
/// // The inner "client" answers with the authority the request was sent to.
/// let client = service_fn(|req: http::Request<()>| async move {
///     Ok::<_, Infallible>(req.uri().authority().map(ToString::to_string))
/// });
/// let layer = BalanceLayer::new(lb, |addr: &String, req: &mut http::Request<()>| {
///     *req.uri_mut() = format!("http://{addr}{}", req.uri().path()).parse().expect("valid");
/// });
/// let mut svc = layer.layer(client);
/// let first = svc.ready().await?.call(http::Request::new(())).await?;
/// let second = svc.ready().await?.call(http::Request::new(())).await?;
/// assert_ne!(first, second); // round robin over the two addresses
/// # Ok(())
/// # }
/// ```
pub struct BalanceLayer<B, P: Policy<B>, F, C = ErrorsOnly> {
    lb: Arc<Balancer<B, P>>,
    route: F,
    classify: C,
    timeout: Option<Duration>,
}

impl<B, P: Policy<B>, F> BalanceLayer<B, P, F> {
    /// Balances over `lb`'s backends; `route(&backend, &mut request)` points a request at the
    /// backend picked for it. `Ok` responses count as successes, no timeout.
    pub fn new(lb: Arc<Balancer<B, P>>, route: F) -> Self {
        Self {
            lb,
            route,
            classify: ErrorsOnly,
            timeout: None,
        }
    }
}

impl<B, P: Policy<B>, F, C> BalanceLayer<B, P, F, C> {
    /// Decides which `Ok` responses count as failures (for example
    /// [`ServerErrors`](super::ServerErrors) for HTTP 5xx).
    pub fn classify<C2>(self, classify: C2) -> BalanceLayer<B, P, F, C2> {
        BalanceLayer {
            lb: self.lb,
            route: self.route,
            classify,
            timeout: self.timeout,
        }
    }

    /// A request without a response after `timeout` fails with
    /// [`Error::Timeout`](crate::Error::Timeout) and counts as a failure of its backend.
    /// `Duration::MAX` (the default) means no timeout.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = (timeout != Duration::MAX).then_some(timeout);
        self
    }

    /// The balancer: membership, health and stats.
    pub fn balancer(&self) -> &Arc<Balancer<B, P>> {
        &self.lb
    }
}

impl<S, B, P: Policy<B>, F: Clone, C: Clone> Layer<S> for BalanceLayer<B, P, F, C> {
    type Service = Balanced<S, B, P, F, C>;

    fn layer(&self, inner: S) -> Self::Service {
        Balanced {
            inner,
            lb: Arc::clone(&self.lb),
            route: self.route.clone(),
            classify: self.classify.clone(),
            timeout: self.timeout,
        }
    }
}

impl<B, P: Policy<B>, F: Clone, C: Clone> Clone for BalanceLayer<B, P, F, C> {
    fn clone(&self) -> Self {
        Self {
            lb: Arc::clone(&self.lb),
            route: self.route.clone(),
            classify: self.classify.clone(),
            timeout: self.timeout,
        }
    }
}

impl<B, P: Policy<B>, F, C> fmt::Debug for BalanceLayer<B, P, F, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BalanceLayer")
            .field("policy", &self.lb.policy().name())
            .field("backends", &self.lb.len())
            .field("classify", &Opaque)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// The service [`BalanceLayer`] makes: see there.
pub struct Balanced<S, B, P: Policy<B>, F, C = ErrorsOnly> {
    inner: S,
    lb: Arc<Balancer<B, P>>,
    route: F,
    classify: C,
    timeout: Option<Duration>,
}

impl<S, B, P: Policy<B>, F, C> Balanced<S, B, P, F, C> {
    /// The balancer: membership, health and stats.
    pub fn balancer(&self) -> &Arc<Balancer<B, P>> {
        &self.lb
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S, B, P, F, C, Req> Service<Req> for Balanced<S, B, P, F, C>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    B: Send + Sync + 'static,
    P: Policy<B>,
    F: Fn(&B, &mut Req),
    C: Classify<S::Response> + Clone,
    Req: Routing,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, B, C>;

    /// The inner service's readiness (see [`BalanceLayer`], "`poll_ready`").
    #[inline]
    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut req: Req) -> Self::Future {
        match pick_for(&self.lb, &req) {
            Ok(lease) => {
                (self.route)(lease.backend(), &mut req);
                let fut = self.inner.call(req);
                ResponseFuture::new(fut, lease, self.classify.clone(), self.timeout)
            }
            Err(reason) => ResponseFuture::refused(reason),
        }
    }
}

impl<S: Clone, B, P: Policy<B>, F: Clone, C: Clone> Clone for Balanced<S, B, P, F, C> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            lb: Arc::clone(&self.lb),
            route: self.route.clone(),
            classify: self.classify.clone(),
            timeout: self.timeout,
        }
    }
}

impl<S: fmt::Debug, B, P: Policy<B>, F, C> fmt::Debug for Balanced<S, B, P, F, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Balanced")
            .field("inner", &self.inner)
            .field("policy", &self.lb.policy().name())
            .field("backends", &self.lb.len())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}
