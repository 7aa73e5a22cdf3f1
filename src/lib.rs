//! # tierkit: the building blocks of a service that scales from zero to millions of users
//!
//! tierkit is a family of small, independent crates. This facade re-exports each of them as a
//! module behind a default-on feature of the same name, so `cargo add tierkit` gives you all of
//! them and `cargo add tierkit --no-default-features --features cache` just one. Each crate is
//! also usable on its own (`cargo add tierkit-cache`).
//!
//! | step of the scaling story (the chapter's concept) | module | main types |
//! |---|---|---|
//! | load balancer: spread requests over web servers, route around failures | `lb` | `Balancer`, `Lease`, `RoundRobin`, `PowerOfTwoChoices`, `LeastLatency`, `OutlierDetection`, `HealthCheck` |
//! | stateless web tier / sticky sessions | `lb` | `Sticky`, `Balancer::drain` |
//! | multiple data centers (GeoDNS-like traffic split and failover) | `lb` | `Locality`, `Tier` |
//! | database replication: writes to the primary, reads to replicas | `replication` | `ReplicaSet`, `Consistency`, `SessionToken`, `Promotion` |
//! | cache tier: keep hot data in memory so the database is hit less | `cache` | `LruCache`, `LfuCache`, `S3FifoCache`, `ConcurrentCache::get_or_load`, `WriteBack` |
//! | CDN: static assets at the edge with a TTL | `cache` | `CacheBuilder::default_ttl`, `Weigher` |
//! | message queue: decouple tiers, absorb bursts, survive worker crashes | `mq` | `Queue`, `Producer`, `Consumer`, `Durability` |
//! | sharding: split the data by a key, reshard, handle celebrities | `shard` | `ShardMap`, `Modulo`, `HashSlots`, `Consistent`, `HotKeyDetector`, `ReshardPlan` |
//! | consistent hashing: place keys so that adding a node moves few | [`consistent_hash`] | `HashRing`, `Maglev`, `JumpHash`, `Rendezvous`, `BoundedLoad` |
//!
//! `cargo run --release --example zero_to_millions` walks through all of them in order.
//!
//! ```
//! # #[cfg(feature = "consistent-hash")]
//! # fn main() -> Result<(), tierkit::consistent_hash::Error> {
//! use tierkit::consistent_hash::{HashRing, Placement};
//!
//! let ring = HashRing::from_nodes(["cache-a", "cache-b", "cache-c"])?;
//! let node = ring.locate("user:42");
//! assert!(node.is_some());
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "consistent-hash"))]
//! # fn main() {}
//! ```
//!
//! ## Shared core
//! [`core`] (the `tierkit-core` crate, always present) holds what every crate shares: the one
//! [`Clock`](core::Clock) trait with [`SystemClock`](core::SystemClock) and
//! [`ManualClock`](core::ManualClock) (one manual clock drives a whole simulated system),
//! overflow-free deadlines, and a seeded generator.
//!
//! ## Crate features
//! On by default, each enabling the module of the same name: `consistent-hash`, `lb`, `cache`,
//! `replication`, `shard`, `mq`. Off by default, passed through to the crates that have them:
//! `tokio` (async APIs: lb health checks and drain, cache async loaders, replication monitors,
//! shard scatter-gather, mq's async receive and ack), the engine adapters `postgres`
//! (replication on PostgreSQL) and `redis` (the cache's remote tier on Redis, shard's Redis
//! Cluster routing), and `tower` (lb's tower `Service` and `Layer`).

#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[doc(inline)]
pub use tierkit_core as core;

#[cfg(feature = "consistent-hash")]
#[cfg_attr(docsrs, doc(cfg(feature = "consistent-hash")))]
#[doc(inline)]
pub use tierkit_consistent_hash as consistent_hash;

#[cfg(feature = "lb")]
#[cfg_attr(docsrs, doc(cfg(feature = "lb")))]
#[doc(inline)]
pub use tierkit_lb as lb;

#[cfg(feature = "cache")]
#[cfg_attr(docsrs, doc(cfg(feature = "cache")))]
#[doc(inline)]
pub use tierkit_cache as cache;

#[cfg(feature = "replication")]
#[cfg_attr(docsrs, doc(cfg(feature = "replication")))]
#[doc(inline)]
pub use tierkit_replication as replication;

#[cfg(feature = "shard")]
#[cfg_attr(docsrs, doc(cfg(feature = "shard")))]
#[doc(inline)]
pub use tierkit_shard as shard;

#[cfg(feature = "mq")]
#[cfg_attr(docsrs, doc(cfg(feature = "mq")))]
#[doc(inline)]
pub use tierkit_mq as mq;
