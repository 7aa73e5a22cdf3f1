//! # tierkit-consistent-hash: which node owns this key?
//!
//! Five consistent-hashing algorithms behind one [`Placement`] trait, so you can swap one for
//! another in a line and measure the trade-off with [`analysis`]:
//!
//! | algorithm | lookup | weights | adding a node moves | best for |
//! |---|---|---|---|---|
//! | [`HashRing`] | O(log V) binary search | yes | only keys to the new node | caches, general use |
//! | [`JumpHash`] | O(log n), no memory | no | only keys to the new node (append only) | shards numbered `0..n` |
//! | [`Rendezvous`] | O(n) | yes | only keys to the new node | small pools, replica sets |
//! | [`Maglev`] | O(1) table read | yes | mostly keys to the new node (+1-2%) | load balancers, many lookups |
//! | [`BoundedLoad`] | as inner + spill | as inner | as inner | hot keys, sticky load balancing |
//!
//! Keys are hashed over their bytes ([`Key`]) with keyed SipHash-1-3 ([`KeyHasher`]): placement
//! is identical on every process, platform and Rust version that uses the same secret, which is
//! what lets a fleet of application servers agree on where a key lives without talking to each
//! other; and it is not predictable by clients who do not know the secret.
//!
//! ```
//! use tierkit_consistent_hash::{HashRing, Placement, analysis};
//!
//! # fn main() -> Result<(), tierkit_consistent_hash::Error> {
//! let mut ring = HashRing::from_nodes(["cache-1", "cache-2", "cache-3", "cache-4"])?;
//! let owner = ring.locate("user:42").copied();
//!
//! // Grow the cluster: only about a fifth of the keys move, all of them to the new node.
//! let before = ring.clone();
//! ring.add("cache-5")?;
//! let moved = analysis::movement(&before, &ring, 0..10_000u32);
//! assert_eq!(moved.between_existing, 0);
//! assert!(moved.fraction() < 0.3);
//!
//! let now = ring.locate("user:42").copied();
//! assert!(now == owner || now == Some("cache-5"));
//! # Ok(())
//! # }
//! ```
//!
//! ## Determinism: test vectors
//!
//! With the default secret ([`KeyHasher::DEFAULT`]), nodes `"node-0"` ... `"node-9"` (added in
//! that order) and default settings, these keys land on these nodes. Any change to these
//! answers is a breaking change and is tested (`tests/integration/vectors.rs`).
//!
//! The second column is [`KeyHasher::hash`] itself (SipHash-1-3, checked against an independent
//! implementation), for clients in other languages that want to agree with tierkit.
//!
//! | key | `KeyHasher::DEFAULT.hash(key)` | `HashRing` | `JumpHash` | `Rendezvous` | `Maglev` |
//! |---|---|---|---|---|---|
//! | `""` | `0x80a65383092d9c9c` | node-7 | node-6 | node-5 | node-9 |
//! | `"user:1"` | `0xe17c646df0fbaec1` | node-1 | node-5 | node-7 | node-9 |
//! | `"user:42"` | `0x1838184fc82f1ba0` | node-7 | node-6 | node-9 | node-3 |
//! | `"photo:7"` | `0xb0a8c932426fe4c6` | node-8 | node-6 | node-7 | node-9 |
//! | `"session:9f2c"` | `0x6c2e312035e6ac3c` | node-6 | node-4 | node-8 | node-1 |
//! | `"tierkit"` | `0x93612358c61bbfb1` | node-5 | node-8 | node-2 | node-5 |
//! | `0u64` | `0xc02e047f47616bd4` | node-6 | node-3 | node-2 | node-4 |
//! | `1u64` | `0x2e5985ee152dfcbd` | node-6 | node-1 | node-9 | node-7 |
//! | `12345u64` | `0xa90c48747b4b95de` | node-6 | node-3 | node-6 | node-8 |
//!
//! ## Errors and edge cases
//!
//! Lookups never fail and never panic: an empty placement answers `None`. Construction and
//! membership changes return [`Error`]: zero weights, zero virtual nodes, duplicate nodes, Maglev
//! table sizes that are not prime or out of range, unsupported weights (jump hash), too many
//! nodes, and invalid balance factors.
//!
//! ## Concurrency
//!
//! Every placement is `Send + Sync` when its node type is, and lookups take `&self`. To change
//! membership under live traffic, publish a new placement atomically (clone, change, swap an
//! `Arc`), which is what `tierkit-lb` and `tierkit-shard` do.

#![deny(missing_docs)]

pub mod analysis;
pub mod bounded;
mod error;
mod hasher;
mod jump;
mod key;
mod maglev;
mod placement;
mod rendezvous;
mod ring;
mod sync;

pub use bounded::{BoundedLoad, LoadGuard};
pub use error::{Error, Result};
pub use hasher::KeyHasher;
pub use jump::{JumpHash, jump_hash};
pub use key::Key;
pub use maglev::{Maglev, MaglevBuilder};
pub use placement::Placement;
pub use rendezvous::Rendezvous;
pub use ring::{HashRing, HashRingBuilder};

// The README's examples compile and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
