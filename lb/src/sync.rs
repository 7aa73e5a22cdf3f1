//! Atomics of the lock-free protocols (the lease/handle reference counts in `refcount.rs`, the
//! ejection protocol in `eject.rs`), swapped for loom's under `--cfg tierkit_loom` so the model
//! checker explores every interleaving of them.

#[cfg(tierkit_loom)]
pub(crate) use loom::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering, fence};
#[cfg(not(tierkit_loom))]
pub(crate) use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering, fence};
