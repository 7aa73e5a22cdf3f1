//! tower integration (feature `tower`): balance requests over backend services, measure them,
//! retry elsewhere.
//!
//! - [`Balance`]: a `Service` whose backends are services (tonic channels, per-host clients,
//!   any `Clone` service). Each request picks one with the balancer's policy, awaits its
//!   readiness, calls it, and reports the outcome on the lease: latency of successes, failures
//!   on inner errors, on responses a [`Classify`] rejects (HTTP 5xx with [`ServerErrors`]) and
//!   on the optional timeout. Health checks, outlier ejection, slow start, weights and draining
//!   are the [`Balancer`](crate::Balancer)'s own, configured on its builder.
//! - [`BalanceLayer`] / [`Balanced`]: one inner client (hyper-util's pooled `Client`) and a
//!   balancer of addresses; each request is pointed at the picked backend by a routing
//!   function, then timed the same way. `poll_ready` is the inner client's.
//! - Membership at runtime: the balancer itself (`add`, `remove`, `set_weight`, `drain`), a
//!   tower `Discover` stream ([`spawn_discover`], [`apply`]), and [`retire`] (drain, wait,
//!   remove).
//! - Retries: [`Retries`] is a `tower::retry` policy; with a [`Tried`] record in the request
//!   (read through [`Routing`], implemented for `http::Request`), a retried request never goes
//!   back to a backend an earlier attempt of it used.
//!
//! The services' error type is tower's [`BoxError`](::tower::BoxError): the inner service's
//! error as is, or a [`crate::Error`] (`NoBackend`, `Timeout`) to `downcast_ref`.
//!
//! # Examples
//!
//! A retrying, timed, balanced client over three in-memory backends, one of which always
//! fails: every request succeeds (a retry avoids the failing backend) and outlier detection
//! ejects it.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use tierkit_lb::tower::{Balance, Retries, Tried};
//! use tierkit_lb::{Backend, Balancer, Health, OutlierDetection, RoundRobin};
//! use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), tower::BoxError> {
//! let backend = |id: u64| service_fn(move |req: http::Request<String>| async move {
//!     if id == 3 { return Err("connection refused"); }
//!     Ok(format!("backend {id} got {}", req.body()))
//! });
//! let lb = Arc::new(
//!     Balancer::builder().policy(RoundRobin::new())
//!         .backends((1..=3).map(|id| Backend::new(id, backend(id))))
//!         .outlier_detection(OutlierDetection::new().consecutive_failures(2).max_ejected_percent(50))
//!         .panic_threshold(0)
//!         .build()?,
//! );
//! let mut client = ServiceBuilder::new()
//!     .retry(Retries::new(2))
//!     .service(Balance::new(Arc::clone(&lb)).timeout(Duration::from_secs(1)));
//! for i in 0..20 {
//!     let mut req = http::Request::new(format!("request {i}"));
//!     req.extensions_mut().insert(Tried::new());
//!     let answer = client.ready().await?.call(req).await?;
//!     assert!(answer.starts_with("backend 1") || answer.starts_with("backend 2"));
//! }
//! let sick = lb.stats().backends.into_iter().find(|b| b.id.0 == 3).expect("member");
//! assert_eq!(sick.health, Health::Ejected);
//! # Ok(())
//! # }
//! ```

mod classify;
mod discover;
pub mod future;
mod layer;
mod retry;
mod routing;
mod service;

pub use classify::{Classify, ErrorsOnly, ServerErrors};
pub use discover::{apply, retire, spawn_discover};
pub use layer::{BalanceLayer, Balanced};
pub use retry::Retries;
pub use routing::{HashKey, Routing, Tried};
pub use service::Balance;
