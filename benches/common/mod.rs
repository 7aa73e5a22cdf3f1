//! Inputs shared by the benches: deterministic, generated before timing.

/// `len` pseudo-random `u64`s from SplitMix64 with a fixed seed.
pub(crate) fn splitmix(len: usize) -> Vec<u64> {
    let mut state = 0x5eed_u64;
    (0..len)
        .map(|_| {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        })
        .collect()
}
