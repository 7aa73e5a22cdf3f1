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
//! ## Crate features
//! - `sim`: an in-memory replicated key-value store ([`sim`]) for tests and examples.
//! - `tokio`: async position probes and health checks (`monitor`, `PositionProbe`) and
//!   `ReplicaSet::route_waiting`.

#![deny(missing_docs)]

mod balance;
mod clock;
mod consistency;
mod error;
#[cfg(feature = "tokio")]
mod monitor;
mod node;
mod position;
mod promote;
mod route;
mod set;
#[cfg(feature = "sim")]
pub mod sim;

pub use clock::{Clock, ManualClock, SystemClock};
pub use consistency::{Consistency, Intent};
pub use error::{Error, Result};
#[cfg(feature = "tokio")]
pub use monitor::{MonitorOptions, PositionProbe, monitor, monitor_once};
pub use node::{NodeStats, Role};
pub use position::{Epoch, NodeId, Position, SessionToken};
pub use promote::{LostWrites, Promotion};
pub use route::{Fallback, Route};
pub use set::{Config, ReplicaSet, ReplicaSetBuilder};

// The README's examples compile and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
