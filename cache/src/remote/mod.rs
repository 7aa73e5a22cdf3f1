//! The remote tier (feature `redis`): Redis servers shared by every app instance, placed on a
//! consistent-hash ring, with a [`ConcurrentCache`](crate::ConcurrentCache) near cache in front.
//!
//! - [`RemoteTier`]: N standalone Redis servers on a
//!   [`HashRing`](tierkit_consistent_hash::HashRing) (keyed SipHash, weights, virtual nodes);
//!   async [`get`](RemoteTier::get), [`set`](RemoteTier::set) with a TTL,
//!   [`delete`](RemoteTier::delete), and [`get_many`](RemoteTier::get_many) batched per node
//!   (`MGET`) with the nodes asked concurrently; one multiplexed connection per node, on which
//!   concurrent requests are pipelined; a timeout per request; failover with `tierkit-lb`'s
//!   rise/fall rules.
//! - [`TieredCache`]: near cache + tier + loader, read through both levels with one load per
//!   key per app instance, kept coherent between instances by `CLIENT TRACKING` invalidations,
//!   with a staleness bound when an invalidation channel is lost.
//! - [`Codec`] and [`Typed`]: typed values over the byte-valued tier.
//! - [`RemoteError`]: node down, timeout, connection, protocol, codec, configuration.
//!
//! ```no_run
//! use bytes::Bytes;
//! use tierkit_cache::remote::{RemoteTier, TieredCache};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let nodes = std::env::var("TIERKIT_REDIS_NODES")?; // "127.0.0.1:26379,127.0.0.1:26380,..."
//! let users: TieredCache = TieredCache::builder(RemoteTier::builder().nodes_from_list(&nodes))
//!     .connect()
//!     .await?;
//! let alice = users
//!     .get_or_load(b"user:42", async { Ok::<_, std::io::Error>(Some(Bytes::from("alice"))) })
//!     .await?;
//! users.set(b"user:42", Bytes::from("alice v2")).await?; // other instances drop their copy
//! # let _ = alice;
//! # Ok(())
//! # }
//! ```
//!
//! ## Why a returning node is flushed
//!
//! While a node is down its keys are written to other nodes; when it comes back, whatever it
//! still holds (it was paused, partitioned, or overloaded rather than restarted) predates those
//! writes. Three ways to never serve it were possible: flush the node before it receives keys
//! again, tag every value with the node's epoch and reject older epochs, or compare a version
//! stored with each value. The tier **flushes** (`FLUSHDB ASYNC`, after `rise` passing probes
//! and before the node is marked up): it is one command, atomic on the server, costs nothing per
//! value (no header in every value, no epoch agreement between app instances, no clock
//! comparison), and works whatever other clients wrote. Its cost is a cold node after an
//! outage, which for a cache only means its share of keys is loaded again; a node that was
//! restarted is empty anyway. Epochs and versions would keep the rest of the node's data but
//! need every instance to agree on the epoch, which is exactly what is in doubt during a
//! failure.
//!
//! Values written to a stand-in node during the outage stay there after the node returns; they
//! carry a TTL of at most [`fallback_ttl`](RemoteTierBuilder::fallback_ttl), which bounds how
//! old such a copy can be if the node fails again and the key is read from the stand-in.
//!
//! ## Limits
//!
//! - App instances decide health on their own. While their views differ (for up to `fall`
//!   failed requests or `rise` probes), two instances may read a key from different nodes; the
//!   fallback TTL bounds what that can serve.
//! - A write that fails against a node that stays up (one timeout, below `fall`) may leave the
//!   old value there until its TTL; the remote TTL bounds it.
//! - The tier owns its Redis databases: a returning node is flushed whole.
//! - Standalone servers only; Redis Cluster routing is `tierkit-shard`'s `redis` feature.

mod builder;
mod codec;
mod error;
mod health;
mod invalidation;
mod join;
mod node;
mod stats;
mod tier;
mod tiered;

pub use builder::RemoteTierBuilder;
/// The value type of the tier, re-exported so users need no `bytes` dependency of their own.
pub use bytes::Bytes;
pub use codec::{Codec, Typed, TypedError, Utf8};
pub use error::{RemoteError, RemoteResult};
pub use stats::{NodeStatus, RemoteStats, TieredStats};
pub use tier::RemoteTier;
pub use tiered::{NearCache, TieredCache, TieredCacheBuilder};
