//! Inputs shared by the benches: deterministic, generated before timing.

/// `len` pseudo-random `u64`s from testkit's SplitMix64 with a fixed seed.
pub(crate) fn splitmix(len: usize) -> Vec<u64> {
    let mut rng = tierkit_testkit::SplitMix64::new(0x5eed);
    (0..len).map(|_| rng.next_u64()).collect()
}
