//! # tierkit-replication: read/write splitting over a primary and its replicas
//!
//! The database-replication step of the scaling story: writes go to the primary, reads spread
//! over replicas, replicas lag (replication is asynchronous) and the router knows it; when a
//! replica goes down its reads move elsewhere, and when the primary goes down a replica is
//! promoted. This crate is the routing brain an application puts in front of its database
//! connection pools.
//!
//! ```
//! use tierkit_replication::{Consistency, Fallback, Intent, NodeId, Position, ReplicaSet};
//!
//! # fn main() -> Result<(), tierkit_replication::Error> {
//! let set = ReplicaSet::builder()
//!     .primary(NodeId(0), "primary")
//!     .replica(NodeId(1), "replica-1")
//!     .build()?;
//!
//! // A user updates their profile...
//! let token = set.route(Intent::Write)?.committed(Position(42));
//! // ...and reads it back at once: the replica has not applied position 42 yet.
//! let read = set.route(Intent::Read(Consistency::ReadYourWrites(token)))?;
//! assert_eq!(read.fallback(), Some(Fallback::ReplicasBehind));
//! drop(read);
//!
//! // Once it has, the replica serves the session.
//! set.report_position(NodeId(1), Position(42))?;
//! let read = set.route(Intent::Read(Consistency::ReadYourWrites(token)))?;
//! assert_eq!(read.id(), NodeId(1));
//! # Ok(())
//! # }
//! ```
//!
//! Replica choice among the eligible replicas is round robin by default, or any `tierkit-lb`
//! policy ([`ReplicaSetBuilder::read_policy`]), for example least latency.
//!
//! ## Failover that acts
//! [`ReplicaSet::check_failover`] starts a promotion: the old primary is fenced, the epoch
//! moves on, and writes fail fast ([`Error::Promoting`]) until the engine confirms the
//! candidate takes writes ([`ReplicaSet::complete_promotion`]). With the `tokio` feature a
//! promotion hook does that (`PromotionHook`; `pg::Promote` calls `pg_promote()`), and
//! `monitor` drives everything. Each step is an [`Event`] ([`ReplicaSet::on_event`]).
//!
//! ## Crate features
//! - `sim`: an in-memory replicated key-value store (`sim`) for tests and examples.
//! - `tokio`: async position probes and health checks (`monitor`, `PositionProbe`), the
//!   promotion hook (`PromotionHook`, `ReplicaSet::failover`), waiting routes
//!   (`ReplicaSet::route_waiting`, `ReplicaSet::route_write_waiting`) and event subscriptions
//!   (`ReplicaSet::subscribe`).
//! - `postgres` (implies `tokio`): the PostgreSQL adapter (`pg`): connections, a probe of
//!   receive/replay LSNs and `pg_is_in_recovery()`, write and read helpers that return the
//!   token after `COMMIT` and the position actually served, promotion through `pg_promote()`.

#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(missing_docs)]

mod balance;
mod config;
mod consistency;
mod error;
mod events;
mod health;
#[cfg(feature = "tokio")]
mod hook;
#[cfg(feature = "tokio")]
mod monitor;
mod node;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub mod pg;
mod position;
mod promote;
mod read;
mod route;
mod set;
#[cfg(feature = "sim")]
#[cfg_attr(docsrs, doc(cfg(feature = "sim")))]
pub mod sim;
mod topology;
#[cfg(feature = "tokio")]
mod wait;

pub use config::{BoundFallback, Config};
pub use consistency::{Consistency, Intent};
pub use error::{Error, Result};
pub use events::Event;
#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub use hook::PromotionHook;
#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub use monitor::{MonitorOptions, PositionProbe, monitor, monitor_once};
pub use node::{NodeStats, Role};
pub use position::{Epoch, NodeId, Observation, Position, SessionToken};
pub use promote::{LostWrites, PendingPromotion, Promotion};
pub use route::{Fallback, Route};
pub use set::{ReplicaSet, ReplicaSetBuilder};
pub use tierkit_core::{Clock, ManualClock, SystemClock};

// The README's examples compile and run as doctests (one uses the PostgreSQL adapter).
#[cfg(all(doctest, feature = "postgres"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
