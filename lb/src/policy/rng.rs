//! A per-thread wyrand generator for the randomised policies: no shared state, no locks.

use std::cell::Cell;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// Threads seeded so far in this process.
static THREADS: AtomicU64 = AtomicU64::new(0);
/// This process's seed, from OS entropy (`tierkit_core::process_seed`), drawn once.
static PROCESS: OnceLock<u64> = OnceLock::new();

thread_local! {
    /// The generator's state plus one; 0 = not seeded yet. Constant-initialised and without a
    /// destructor, so reading it is a plain thread-local load (no lazy-initialisation check).
    static STATE: Cell<u64> = const { Cell::new(0) };
}

/// Seeds the calling thread's generator, which random, weighted random, P2C and least-latency
/// picks on this thread draw from. Simulations and tests call it for reproducible runs. Threads
/// that never call it are seeded from OS entropy drawn once per process (and mixed with the
/// thread's order), so two processes, like two threads, pick different sequences: a fleet of
/// clients never moves in lockstep.
pub fn seed_thread_rng(seed: u64) {
    STATE.with(|s| s.set(seed.wrapping_add(1)));
}

/// The next pseudo-random `u64` of this thread (wyrand).
#[inline]
pub(crate) fn next_u64() -> u64 {
    STATE.with(|s| {
        let stored = s.get();
        let state = if stored == 0 {
            first_seed()
        } else {
            stored.wrapping_sub(1)
        };
        let x = state.wrapping_add(0xa076_1d64_78bd_642f);
        // (A state of u64::MAX is stored as 0 and reseeds: one state in 2^64, harmless.)
        s.set(x.wrapping_add(1));
        let t = u128::from(x) * u128::from(x ^ 0xe703_7ed1_a0b4_28db);
        // Folding the 128-bit product: the truncations are the point.
        #[allow(clippy::cast_possible_truncation)]
        let folded = (t as u64) ^ ((t >> 64) as u64);
        folded
    })
}

#[cold]
fn first_seed() -> u64 {
    let base = *PROCESS.get_or_init(tierkit_core::process_seed);
    let k = THREADS.fetch_add(1, Ordering::Relaxed);
    tierkit_core::SplitMix64::new(base ^ k.wrapping_mul(0x9e37_79b9_7f4a_7c15)).next_u64()
}
