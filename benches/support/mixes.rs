//! Synthetic cache workloads beyond `tierkit_testkit`'s Zipf and scan mixes, for the hit-ratio
//! example: a loop longer than the cache beside Zipf traffic, and Zipf traffic whose popular
//! keys are replaced wholesale every period. Deterministic by seed.
// Periods and ranks are far below 2^52.
#![allow(clippy::cast_possible_truncation)]

use tierkit_testkit::{SplitMix64, Zipf, mix};

/// A loop over `loop_len` keys, `0, 1, ..., loop_len - 1, 0, 1, ...`, mixed 1:1 with Zipf(`s`)
/// requests over `keys` other keys (a periodic batch job beside interactive traffic). A loop
/// longer than the cache is LRU's worst case: every loop request misses. Loop keys have bit 62
/// set and never collide with the Zipf keys.
pub(crate) fn loop_mix(keys: usize, s: f64, loop_len: usize, len: usize, seed: u64) -> Vec<u64> {
    const LOOP_BIT: u64 = 1 << 62;
    let zipf = Zipf::new(keys, s);
    let mut rng = SplitMix64::new(seed);
    let mut next = 0u64;
    (0..len)
        .map(|i| {
            if i % 2 == 0 {
                let k = LOOP_BIT | next;
                next = (next + 1) % loop_len as u64;
                k
            } else {
                mix(zipf.sample(&mut rng)) & !LOOP_BIT
            }
        })
        .collect()
}

/// Zipf(`s`) over `keys` keys whose identities change every `period` requests: each phase
/// draws ranks from the same distribution but maps them to a fresh set of keys, so yesterday's
/// popular keys are never requested again (a news front page, a trending list). Frequency that
/// never fades is the failure mode here.
pub(crate) fn shifting_zipf(keys: usize, s: f64, period: usize, len: usize, seed: u64) -> Vec<u64> {
    let zipf = Zipf::new(keys, s);
    let mut rng = SplitMix64::new(seed);
    (0..len)
        .map(|i| {
            let phase = (i / period.max(1)) as u64;
            mix(zipf.sample(&mut rng) ^ (phase << 40))
        })
        .collect()
}
