//! # tierkit-lb: the load-balancing policy engine
//!
//! A library, not a proxy: an application (an HTTP client, a gRPC channel, a database pool, a
//! replication router) holds a [`Balancer`] and asks it for a backend per request. One
//! thread-safe, allocation-free [`pick`](Balancer::pick) combines a [`Policy`] (round robin,
//! smooth weighted round robin, random, weighted random, least connections, weighted least
//! connections, power of two choices, least latency with peak EWMA, consistent hash with
//! bounded load, sticky sessions, locality tiers) with passive outlier detection, active health
//! checks, slow start, draining and a panic threshold.
//!
//! ```
//! use std::time::Duration;
//! use tierkit_lb::{Backend, Balancer, Context, OutlierDetection};
//!
//! let lb = Balancer::builder() // the recommended default policy: LeastLatency::new()
//!     .backends((1..=3).map(|i| Backend::new(i, format!("10.0.0.{i}:8080"))))
//!     .outlier_detection(OutlierDetection::new().consecutive_failures(5))
//!     .build()?;
//!
//! for _ in 0..10 {
//!     let lease = lb.pick(&Context::new())?;      // counts one request in flight
//!     // ... send the request to `*lease` ...
//!     lease.success(Duration::from_millis(12));  // or `lease.failure()`; drop = cancelled
//! }
//! assert_eq!(lb.stats().backends.iter().map(|b| b.successes).sum::<u64>(), 10);
//! # Ok::<(), tierkit_lb::Error>(())
//! ```
//!
//! ## How it fits together
//! - **Snapshots.** Membership, weights and the health view are published together as one
//!   immutable snapshot (`arc-swap`); a pick loads it without locking and never rebuilds it:
//!   mutating calls (and the failure that ejects a backend) publish on their own thread, and
//!   time-driven changes (an ejection's end, slow-start steps) are published by a background
//!   refresher thread. Per-backend counters (in flight, latency, failures) live with the
//!   backend, keyed by its [`BackendId`], and survive every rebuild.
//! - **Leases.** A pick returns a [`Lease`] that counts the request in flight until dropped and
//!   records its outcome; latency-aware policies and outlier detection learn from it. The
//!   in-flight count is also the lease's hold on its backend (no separate reference count), so
//!   a pick plus lease drop is two atomic read-modify-writes on the backend's state word;
//!   round-robin cursors are per thread and a pick reads no clock.
//! - **Health.** Passive: [`OutlierDetection`] ejects a backend after consecutive failures, for
//!   growing periods. Active (feature `tokio`): a `HealthCheck` task with rise/fall
//!   thresholds. Recovered and new backends can ramp up with [`SlowStart`]. Below the panic
//!   threshold the balancer uses every serving backend. Every state change emits a `tracing`
//!   event and shows in [`stats`](Balancer::stats).
//! - **Time** comes from an injectable [`Clock`] (`tierkit-core`'s, re-exported): by default
//!   [`FastClock`] (the CPU's timestamp counter, about a third of `Instant::now`'s cost), in
//!   tests and simulations [`ManualClock`] (virtual time for ejections, slow start and whole
//!   policies) or, with tokio's paused test clock, `TokioClock`.
//! - **Randomness** (random, P2C and least-latency picks) is seeded per process from OS entropy;
//!   [`seed_thread_rng`] fixes a thread's seed when a test or simulation asks for one.
//! - **Which policy**: [`LeastLatency::new`], the default the README recommends, meets the
//!   simulator's bounds in every situation measured (`cargo run --release --example lb_sim --
//!   --situations`).
//!
//! ## Crate features
//! - `tokio`: active health checks (`HealthCheck`, `TcpConnect`,
//!   `Balancer::spawn_health_checks`) and async `Drain::wait`.
//! - `tower`: `tierkit_lb::tower`, a tower `Service` and `Layer` that balance requests over
//!   backend services with any policy, time them, and compose with `tower::retry` (implies
//!   `tokio`).
//! - `sim`: `tierkit_lb::sim`, a seeded virtual-time simulator that runs the real balancer
//!   against modelled servers (queues, service times, failures, cold starts) to compare
//!   policies on a workload (`cargo run --release --example lb_sim`).

#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "tokio")]
mod active;
mod backend;
mod balancer;
mod builder;
mod clock;
mod context;
mod control;
mod drain;
mod eject;
mod error;
mod health;
mod lease;
mod pick;
mod policy;
mod refcount;
mod refresher;
mod shared;
#[cfg(feature = "sim")]
#[cfg_attr(docsrs, doc(cfg(feature = "sim")))]
pub mod sim;
mod snapshot;
mod stats;
mod sync;
mod tagged;
#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub mod tower;
mod view;

#[cfg(feature = "tokio")]
pub use active::{CheckConfig, HealthCheck, TcpConnect};
pub use backend::{Backend, BackendId, Health};
pub use balancer::Balancer;
pub use builder::BalancerBuilder;
pub use clock::FastClock;
#[cfg(feature = "tokio")]
pub use clock::TokioClock;
pub use context::Context;
pub use drain::Drain;
pub use error::{Error, NoBackend, Rejected, Result};
pub use health::{OutlierDetection, SlowStart};
pub use lease::Lease;
pub use pick::release_thread_snapshots;
pub use policy::{
    ConsistentHash, HashAlgorithm, LeastConnections, LeastLatency, Locality, Policy,
    PowerOfTwoChoices, Random, RoundRobin, Sticky, Tier, WeightedLeastConnections, WeightedRandom,
    WeightedRoundRobin, seed_thread_rng,
};
pub use shared::Member;
pub use stats::{BackendStats, BalancerStats};
pub use tierkit_core::{Clock, ManualClock, SystemClock};
pub use view::View;

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
