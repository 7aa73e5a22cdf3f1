//! # tierkit-shard: which shard holds this key, and how to move it
//!
//! Sharding splits one database into several by a sharding key. This crate is the routing
//! brain an application puts in front of its shard connections:
//!
//! - **strategies** behind one [`ShardStrategy`] trait: [`Modulo`] (the classic `user_id % 4`),
//!   [`Range`] (split points, split and merge), [`HashSlots`] (byte-for-byte Redis Cluster:
//!   CRC16 mod 16384 with `{tag}`s), [`Consistent`] (any `tierkit-consistent-hash` placement)
//!   and [`Directory`] (explicit overrides in front of any of them);
//! - **co-location**: `{user:42}:cart` and `{user:42}:orders` route by `user:42`
//!   ([`Colocation`]), so a user's rows can be joined on one shard;
//! - a [`ShardMap`] that owns the shard handles and publishes immutable snapshots: routing is
//!   lock-free and allocation-free;
//! - **resharding**: a [`ReshardPlan`] says which keys move where and how that compares to the
//!   minimum; a migration routes moving keys through [`Route::Migrating`] (write to the target,
//!   read target-source-target), servers validate with [`Snapshot::check`] (MOVED / ASK /
//!   TRYAGAIN), and completion is an atomic cut-over; a [`Migrator`] drives the copy through
//!   the application's callbacks, resumably;
//! - **hot keys**: a [`HotKeyDetector`] finds the celebrities in fixed memory, and the map pins
//!   them to a dedicated shard ([`ShardMap::plan_pin`]) or spread a key's reads over copies on
//!   several shards ([`Snapshot::route_spread_read`], [`replica_key`]);
//! - **cross-shard queries**: [`scatter`] fans a request out with per-shard timeouts and bounded
//!   concurrency and says which shards answered; [`merge`] combines the answers.
//!
//! ## Crate features
//! - `scatter` (default): the [`scatter`] module, on tokio.
//!
//! ```
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
//!     map.start_step(id, step)?;
//!     // ... copy the step's keys from its source to its target, delete them at the source ...
//!     map.finish_step(id, step)?;
//! }
//! map.complete(id)?;
//! assert!(matches!(map.route("{user:42}:cart"), Route::Shard(_)));
//! # Ok(())
//! # }
//! ```

#![deny(missing_docs)]

mod consistent;
mod directory;
mod error;
mod hotkey;
mod key;
mod map;
pub mod merge;
mod migrator;
mod modulo;
mod plan;
mod range;
#[cfg(feature = "scatter")]
pub mod scatter;
mod slots;
mod spread;
mod strategy;

pub use consistent::Consistent;
pub use directory::Directory;
pub use error::{Error, Result};
pub use hotkey::{HotKey, HotKeyDetector, seed_sampler};
pub use key::{AsShardKey, Colocation, ShardKey, hash_tag};
pub use map::{Redirect, Route, ShardMap, ShardMapBuilder, Snapshot, StepState};
pub use migrator::{MigrateError, MigrationIo, Migrator, Progress};
pub use modulo::Modulo;
pub use plan::{MoveEstimate, ReshardPlan, Step};
pub use range::Range;
pub use slots::{HashSlots, SLOTS, crc16};
pub use spread::replica_key;
pub use strategy::{ShardId, ShardStrategy};

// The README's examples compile and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
