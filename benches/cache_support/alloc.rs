//! A counting global allocator for the memory-per-entry table: live heap bytes (allocations minus
//! frees), counted only while [`measure`] runs so the timed benches pay one relaxed load per
//! allocation and never contend on the counter.
// A global allocator cannot be written without `unsafe`; the blocks only forward to `System`.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering};

pub(crate) struct Counting;

static ENABLED: AtomicBool = AtomicBool::new(false);
static LIVE: AtomicIsize = AtomicIsize::new(0);

#[inline]
fn add(bytes: usize, sign: isize) {
    if ENABLED.load(Ordering::Relaxed) {
        LIVE.fetch_add(
            sign * isize::try_from(bytes).unwrap_or(isize::MAX),
            Ordering::Relaxed,
        );
    }
}

// SAFETY: every call is forwarded unchanged to the system allocator with the caller's layout;
// the wrapper only updates atomics, which never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        add(layout.size(), 1);
        // SAFETY: same layout contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        add(layout.size(), 1);
        // SAFETY: same layout contract as the caller's.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        add(layout.size(), -1);
        // SAFETY: `ptr` came from `System` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        add(layout.size(), -1);
        add(new_size, 1);
        // SAFETY: `ptr` came from `System` with `layout`; the caller upholds `new_size`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Live heap bytes that `f` leaves allocated (what it returns is kept alive until counted), and
/// its result. Single-threaded use only: allocations of other threads would be counted too.
pub(crate) fn measure<T>(f: impl FnOnce() -> T) -> (T, isize) {
    let before = LIVE.load(Ordering::SeqCst);
    ENABLED.store(true, Ordering::SeqCst);
    let value = f();
    ENABLED.store(false, Ordering::SeqCst);
    (value, LIVE.load(Ordering::SeqCst) - before)
}
