//! # tierkit-cache: W-TinyLFU, LRU, LFU, FIFO and S3-FIFO caches with TTL
//!
//! ```
//! use std::time::Duration;
//! use tierkit_cache::{Cache, LruCache, ManualClock};
//!
//! let clock = ManualClock::new();
//! let mut sessions: LruCache<u64, String> = LruCache::builder(10_000)
//!     .default_ttl(Duration::from_secs(60))
//!     .clock(clock.clone())
//!     .build()?;
//! sessions.insert(7, "alice".to_string());
//! assert_eq!(sessions.get(&7).map(String::as_str), Some("alice"));
//! clock.advance(Duration::from_secs(61));
//! assert_eq!(sessions.get(&7), None); // expired
//! assert_eq!(sessions.stats().hits, 1);
//! # Ok::<(), tierkit_cache::Error>(())
//! ```
//!
//! The single-owner caches ([`TinyLfuCache`], [`LruCache`], [`FifoCache`], [`LfuCache`],
//! [`S3FifoCache`]) share
//! the [`Cache`] trait and the [`CacheBuilder`]: capacity by entry count or by weight (a
//! [`Weigher`]), a default and per-entry time-to-live read from an injectable [`Clock`], a
//! [`RemovalListener`] that hears every removal with its [`RemovalCause`], and [`CacheStats`];
//! [`get_or_insert_with`](Cache::get_or_insert_with) reads through in one lookup. Every
//! operation is O(1) (amortised for expiry) and a hit allocates nothing: entries live in a
//! slab with intrusive `u32` links, found through a `hashbrown` table of slab indices. Storage
//! for up to 65,536 entries is reserved when a cache without a weigher is built; beyond that
//! (and with a weigher) it grows on demand. An `LruCache<u64, u64>` with a TTL uses about 48
//! bytes per entry besides the key and value.
//!
//! [`ConcurrentCache`] shards any of them behind read-write locks (`ConcurrentCache<K, V>`
//! shards [`TinyLfuCache`], the default policy: the crate README's hit-ratio table shows why and
//! where it falls short): lookups share the lock (see
//! [policies under a shared lock](ConcurrentCache#policies-under-a-shared-lock)), each key is
//! hashed once, and a missing key is loaded once however many callers miss it, blocking
//! ([`get_or_load`](ConcurrentCache::get_or_load);
//! [`get_or_load_with_outcome`](ConcurrentCache::get_or_load_with_outcome) also says whether
//! the value was a hit, loaded, or joined from another caller's load) or async in the caller's
//! task ([`get_with`](ConcurrentCache::get_with), [`try_get_with`](ConcurrentCache::try_get_with),
//! [`optionally_get_with`](ConcurrentCache::optionally_get_with), whose loaders may borrow). It
//! is built like moka's, and the handle is a cheap [`Clone`]:
//!
//! ```
//! use std::time::Duration;
//! use tierkit_cache::ConcurrentCache;
//!
//! let users: ConcurrentCache<u64, String> = ConcurrentCache::builder()
//!     .max_capacity(10_000)
//!     .time_to_live(Duration::from_secs(300))
//!     .time_to_idle(Duration::from_secs(60))
//!     .build()?;
//! let handle = users.clone(); // the same cache
//! handle.insert(7, "alice".to_string());
//! assert_eq!(users.get(&7).as_deref(), Some("alice"));
//! # Ok::<(), tierkit_cache::Error>(())
//! ```
//!
//! **No user code under a lock**: removal listeners, weighers, [`Expiry`] policies, loaders
//! and the drop of removed values run outside every lock (removals are collected under the
//! lock and reported after it), so a listener may call back into the cache and a panicking
//! listener or weigher leaves the counts right. An insert heavier than the capacity can hand
//! its value back ([`try_insert`](Cache::try_insert), [`Rejected`]).
//!
//! | policy | evicts | a hit | iteration order |
//! |---|---|---|---|
//! | [`TinyLfuCache`] (the default) | the less frequent of the window's oldest and the main space's least recent entry (W-TinyLFU; a frequency sketch counts requests, a hill climber sizes the window) | counts; reorders its segment | protected, probation, then window; each most recent first |
//! | [`LruCache`] | least recently used | moves to the front | most to least recent |
//! | [`FifoCache`] | oldest insert | nothing | newest to oldest |
//! | [`LfuCache`] | least frequently used, then least recent; counts halve as traffic moves on ([`LfuAging`]) | counts | most to least frequent |
//! | [`S3FifoCache`] | S3-FIFO (small, main and ghost queues) | counts (2 bits) | main, then small queue |
//!
//! ## Removals in detail
//!
//! - Writes (`insert*`, `remove`, [`purge_expired`](Cache::purge_expired)) first drop every
//!   expired entry (`Expired`), then do their work. On writes expiry is exact to the nanosecond
//!   of the cache's time: the deadlines sit in a hierarchical timer wheel drained in amortised
//!   O(1) per entry. Lookups (`get`, `get_mut`) drop the expired entry they find; `peek`, `contains` and
//!   `iter` skip it (lookups read the clock as described in [Time](#time)).
//! - Replacing a value reports the old one as `Replaced` (`stats().updates`); if the new value
//!   needs room, other entries are evicted, never the replaced one. A zero time-to-live reports
//!   the old value (if any) as `Replaced` and the new one as `Expired`; an entry heavier than
//!   the capacity reports the old value as `Replaced` and the new one as `Rejected`.
//! - [`clear`](Cache::clear) reports every entry as `Removed`.
//! - A time-to-live too large to represent (past about 584 years) means "never expires".
//!
//! ## Time
//!
//! The cache's time is its clock's [`Clock::recent_nanos`] reading: inserts set deadlines from
//! it, and lookups and writes check them against it. Lookups of entries without a deadline, and
//! writes while no entry has one, read no clock.
//!
//! | clock | the cache's time | a time-to-live holds to within | cost of a reading |
//! |---|---|---|---|
//! | [`SystemClock`] (default) | `Instant::now()` | exact | ~20-30 ns (the OS clock) |
//! | [`CoarseClock`] | a timestamp a background thread refreshes every millisecond | about 1 ms (+ scheduling delay of that thread), early or late | one atomic load |
//! | [`ManualClock`] | the time you advanced it to | exact | one atomic load |
//!
//! ## Hashing
//!
//! Keys are hashed with [`SipHashBuilder`] (keyed SipHash-1-3, safe for keys chosen by an
//! attacker; a random key per builder, or one you give) unless the builder's
//! [`hasher`](CacheBuilder::hasher) says otherwise. For trusted keys, [`FastHashBuilder`]
//! (foldhash, the default of `hashbrown`, `lru` and `quick_cache`) saves about 80 instructions
//! per operation on `u64` keys.
//!
//! ## Crate features
//!
//! - `tokio`: async read-through whose loader runs on a spawned tokio task, so a load outlives
//!   its callers: `ConcurrentCache::get_or_load_async`, `get_or_load_with_outcome_async` and
//!   `get_or_load_opt_async` (loaders must be `Send + 'static`). The in-task async loaders
//!   (`get_with` and its siblings) need no feature and no runtime, and the write-back flusher is
//!   a plain thread.
//! - `redis` (implies `tokio`): the `remote` tier (`tierkit_cache::remote`): Redis servers on a consistent-hash ring
//!   with failover, and a near cache kept coherent between app instances.
//!
//! **Status:** every policy, TTL, weights, listeners, stats, the sharded `ConcurrentCache`,
//! single-flight loaders (sync and async) and the store wrappers are built and tested. Against
//! `lru` and `quick_cache`, like for like (same hasher, `CoarseClock`, no hit/miss counters in
//! `ConcurrentCache`) the speed goals are met; with this crate's safer defaults (keyed SipHash,
//! exact clock, counted lookups) they are not (see the README's benchmarks).
//!
//! See the workspace's `ARCHITECTURE.md` for where this crate sits in the dependency graph.

#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod builder;
mod cache;
mod coarse_clock;
mod concurrent;
mod concurrent_builder;
mod concurrent_whole;
mod engine;
mod error;
mod expiry;
mod fifo;
mod flight;
mod hasher;
mod invalidate;
mod lfu;
mod loader;
#[cfg(feature = "tokio")]
mod loader_async;
mod loader_task;
mod lru;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub mod remote;
mod removal;
mod rules;
mod s3fifo;
mod slab;
mod stats;
mod store;
mod tinylfu;
mod write_back;
mod write_through;

pub use builder::{CacheBuilder, CachePolicy};
pub use cache::Cache;
pub use coarse_clock::CoarseClock;
pub use concurrent::ConcurrentCache;
pub use concurrent_builder::{
    Built, ConcurrentCacheBuilder, ConcurrentFifo, ConcurrentLfu, ConcurrentLru, ConcurrentS3Fifo,
    ConcurrentTinyLfu, DefaultPolicy, PolicyKind, policy,
};
pub use engine::Iter;
pub use error::{Error, Rejected, Result};
pub use tierkit_core::{Clock, ManualClock, SystemClock};
/// The former name of [`Error`], kept so code written against it still builds.
#[doc(hidden)]
pub type CacheError = Error;
pub use fifo::FifoCache;
pub use hasher::{FastHashBuilder, FastHasher, SipHashBuilder, SipHasher};
pub use lfu::{LfuAging, LfuCache};
pub use loader::{LoadError, LoadOutcome};
pub use lru::LruCache;
pub use removal::{RemovalCause, RemovalListener, Weigher};
pub use rules::Expiry;
pub use s3fifo::S3FifoCache;
pub use stats::CacheStats;
pub use store::{MemoryStore, Store};
pub use tinylfu::TinyLfuCache;
pub use write_back::{WriteBack, WriteBackBuilder, WriteBackStats};
pub use write_through::{WriteMode, WriteThrough};

// The README's example runs as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
