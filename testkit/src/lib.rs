//! Test helpers shared by tierkit's crates. Not published.
//!
//! [`CountingAllocator`] counts the bytes each thread allocates, so a test can assert that a hot
//! path allocates nothing (or measure a structure's footprint) while other tests run in
//! parallel threads of the same binary. Install it in a test binary:
//!
//! ```ignore
//! #[global_allocator]
//! static ALLOC: tierkit_testkit::CountingAllocator = tierkit_testkit::CountingAllocator;
//! ```

#![deny(missing_docs)]
// The one unsafe impl in the workspace: a global allocator cannot be written without it.
#![allow(unsafe_code)]

mod workload;

pub use workload::{Zipf, mix, scan_mix, zipf_keys, zipf_ranks};

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

thread_local! {
    static ALLOCATED: Cell<usize> = const { Cell::new(0) };
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

/// The system allocator, counting bytes and allocations per thread.
#[derive(Debug, Clone, Copy, Default)]
pub struct CountingAllocator;

// SAFETY: every call is forwarded unchanged to the system allocator; the wrapper only adds to
// thread-local counters, which allocate nothing (const-initialised `Cell`s) and are skipped if
// the thread is being torn down (`try_with`).
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATED.try_with(|a| a.set(a.get() + layout.size()));
        let _ = ALLOCATIONS.try_with(|a| a.set(a.get() + 1));
        // SAFETY: same layout contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// Bytes allocated by the calling thread so far (frees are not subtracted). Zero unless a
/// [`CountingAllocator`] is the global allocator.
#[must_use]
pub fn allocated_by_this_thread() -> usize {
    ALLOCATED.with(Cell::get)
}

/// Allocations made by the calling thread so far.
#[must_use]
pub fn allocations_by_this_thread() -> usize {
    ALLOCATIONS.with(Cell::get)
}

/// The workspace's one SplitMix64, from `tierkit-core` (seeded, deterministic test inputs).
pub use tierkit_core::SplitMix64;
