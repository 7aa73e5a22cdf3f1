//! Atomics, swapped for loom's under `--cfg tierkit_loom` so the model checker can explore every
//! interleaving of [`BoundedLoad`](crate::BoundedLoad)'s lock-free protocol.

#[cfg(tierkit_loom)]
pub(crate) use loom::sync::atomic::{AtomicUsize, Ordering};
#[cfg(not(tierkit_loom))]
pub(crate) use std::sync::atomic::{AtomicUsize, Ordering};

/// Backs off in a retry loop (under loom: lets another thread run).
#[inline]
pub(crate) fn spin() {
    #[cfg(tierkit_loom)]
    loom::thread::yield_now();
    #[cfg(not(tierkit_loom))]
    std::hint::spin_loop();
}
