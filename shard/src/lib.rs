//! # tierkit-shard: which shard holds this key, and how to move it
//!
//! Sharding splits one database into several by a sharding key. This crate is the routing
//! brain an application puts in front of its shard connections:
//!
//! - **strategies** behind one [`ShardStrategy`] trait: [`Modulo`] (the classic `user_id % 4`),
//!   [`KeyRange`] (split points, split and merge), [`HashSlots`] (byte-for-byte Redis Cluster:
//!   CRC16 mod 16384 with `{tag}`s), [`Consistent`] (any `tierkit-consistent-hash` placement)
//!   and [`Directory`] (explicit overrides in front of any of them);
//! - **co-location**: `{user:42}:cart` and `{user:42}:orders` route by `user:42`
//!   ([`Colocation`]), so a user's rows can be joined on one shard;
//! - a [`ShardMap`] that owns the shard handles and publishes immutable snapshots: routing is
//!   lock-free and allocation-free;
//! - **resharding**: a [`ReshardPlan`] says which keys move where and how that compares to the
//!   minimum; a migration follows Redis Cluster's source-first rule — the source serves a
//!   moving key while it holds it, clients ask the target otherwise ([`Route::Migrating`]) —
//!   over stores with only single-key operations ([`KeyOp`], [`MoveKey`]: compare-and-set
//!   moves, tombstones, and a drain of older views before a step opens), checked over every
//!   interleaving in CI; servers that can validate atomically use [`Snapshot::check`] (MOVED /
//!   ASK / TRYAGAIN); completion is an atomic cut-over; a [`Migrator`] drives it through the
//!   application's callbacks, resumably;
//! - **Redis Cluster**: a [`ClusterRouter`] follows a live cluster (topology from
//!   `CLUSTER SHARDS`, one-slot MOVED updates, ASK, rate-limited refreshes, CROSSSLOT refused
//!   before sending); the `redis` feature reads the topology through the `redis` crate;
//! - **hot keys**: a [`HotKeyDetector`] finds the celebrities in fixed memory, and the map pins
//!   them to a dedicated shard ([`ShardMap::plan_pin`]) or spread a key's reads over copies on
//!   several shards ([`Snapshot::route_spread_read`], [`replica_key`]);
//! - **cross-shard queries**: `scatter` (feature `scatter`) fans a request out with per-shard timeouts and bounded
//!   concurrency and says which shards answered; [`merge`] combines the answers.
//!
//! ## Crate features
//! No feature is on by default: routing needs no runtime.
//! - `scatter`: the `scatter` module (scatter-gather on tokio).
//! - `redis`: the `redis_cluster` module, which reads a real Redis Cluster's topology
//!   (`CLUSTER SHARDS`, `CLUSTER SLOTS`) through the `redis` crate into a [`ClusterRouter`].
//!
//! ```
//! use std::time::Duration;
//! use tierkit_shard::{HashSlots, Route, ShardId, ShardMap};
//!
//! # fn main() -> Result<(), tierkit_shard::Error> {
//! let map = ShardMap::builder()
//!     .shards((0..4).map(|i| (ShardId(i), format!("shard-{i}"))))
//!     .strategy(HashSlots::even((0..4).map(ShardId))?)
//!     .build()?;
//!
//! // A user's keys live together.
//! assert_eq!(map.route("{user:42}:cart"), map.route("{user:42}:profile"));
//!
//! // Grow to five shards: plan, migrate step by step, cut over.
//! map.add_shard(ShardId(4), "shard-4".to_string())?;
//! let current = HashSlots::even((0..4).map(ShardId))?;
//! let plan = map.plan_to(current.rebalanced((0..5).map(ShardId))?)?;
//! let (moved, minimum) = plan.slot_fractions().expect("slot-based");
//! assert!((moved - 0.2).abs() < 0.01 && moved <= minimum + 1e-9);
//! let id = map.begin(plan.clone())?;
//! for step in 0..plan.steps().len() {
//!     let started = map.start_step(id, step)?;
//!     // The drain: no client still holds a view from before the step.
//!     map.wait_for_views_before(started, Duration::from_secs(30))?;
//!     map.open_step(id, step)?;
//!     // ... move the step's keys from its source to its target (MoveKey) ...
//!     map.finish_step(id, step)?;
//! }
//! map.complete(id)?;
//! assert!(matches!(map.route("{user:42}:cart"), Route::Shard(_)));
//! # Ok(())
//! # }
//! ```

#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod consistent;
mod directory;
mod drain;
mod error;
mod hotkey;
mod key;
mod key_range;
mod map;
pub mod merge;
mod migrator;
mod modulo;
mod plan;
mod protocol;
mod redirect;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub mod redis_cluster;
mod route;
#[cfg(feature = "scatter")]
#[cfg_attr(docsrs, doc(cfg(feature = "scatter")))]
pub mod scatter;
mod slots;
mod snapshot;
mod spread;
mod strategy;
mod topology;

pub use consistent::Consistent;
pub use directory::Directory;
pub use error::{Error, Result};
pub use hotkey::{HotKey, HotKeyDetector, seed_sampler};
pub use key::{AsShardKey, Colocation, ShardKey, hash_tag};
pub use key_range::KeyRange;
pub use map::{ShardMap, ShardMapBuilder};
pub use migrator::{MigrateError, MigrationIo, Migrator, Progress};
pub use modulo::Modulo;
pub use plan::{MoveEstimate, ReshardPlan, Step};
pub use protocol::{Entry, KeyOp, MoveKey, Next, Outcome, Request, StoreOp, StoreReply};
pub use redirect::{ClusterRedirect, parse_redirect, parse_redirect_parts};
pub use route::{Arrival, Redirect, Route, StepState};
pub use slots::{HashSlots, SLOTS, crc16};
pub use snapshot::Snapshot;
pub use spread::replica_key;
pub use strategy::{ShardId, ShardStrategy};
pub use topology::{ClusterRouter, Node, RedirectAction, RouterStats, Topology};

// The README's examples compile and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
