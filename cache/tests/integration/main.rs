//! Public behaviour of tierkit-cache, in one test binary.
#![allow(clippy::unwrap_used, missing_docs)]
// Test inputs are small ranges; casts between them cannot truncate.
#![allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]

#[global_allocator]
static ALLOC: tierkit_testkit::CountingAllocator = tierkit_testkit::CountingAllocator;

mod api;
mod concurrent;
mod hit_ratio;
mod listeners;
mod loader;
mod model;
mod policies;
#[cfg(feature = "redis")]
mod remote;
mod store;
mod ttl;
