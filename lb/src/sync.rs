//! Atomics of the lease/handle reference protocol (`shared.rs`), swapped for loom's under
//! `--cfg tierkit_loom` so the model checker explores every interleaving of it.

#[cfg(tierkit_loom)]
pub(crate) use loom::sync::atomic::{AtomicU64, AtomicUsize, Ordering, fence};
#[cfg(not(tierkit_loom))]
pub(crate) use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering, fence};
