//! Deterministic workloads: a key scrambler, an inverse-CDF Zipf sampler and a scan-polluted
//! Zipf mix. The one copy in the workspace; tests, examples and benches use it.

// Ranks and counts are far below 2^52: the float conversions are exact enough for sampling.
#![allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]

use crate::SplitMix64;

/// SplitMix64's finaliser: a bijection on `u64`, used to scatter ranks over the key space so
/// that popular keys are not small consecutive integers.
#[must_use]
pub fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Zipf(s) over ranks `0..n` by inverse CDF: a cumulative table and a binary search per
/// sample.
#[derive(Debug, Clone)]
pub struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    /// `P(rank = i)` proportional to `1 / (i + 1)^s`. `n == 0` is treated as 1.
    #[must_use]
    pub fn new(n: usize, s: f64) -> Self {
        let n = n.max(1);
        let mut cdf = Vec::with_capacity(n);
        let mut total = 0.0;
        for i in 0..n {
            total += 1.0 / ((i + 1) as f64).powf(s);
            cdf.push(total);
        }
        for c in &mut cdf {
            *c /= total;
        }
        Self { cdf }
    }

    /// The number of ranks.
    #[must_use]
    pub fn len(&self) -> usize {
        self.cdf.len()
    }

    /// Always false: a sampler has at least one rank.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.cdf.is_empty()
    }

    /// A rank in `0..n`; rank 0 is the most popular.
    pub fn sample(&self, rng: &mut SplitMix64) -> u64 {
        let u = rng.next_f64();
        let i = self.cdf.partition_point(|&c| c < u);
        i.min(self.cdf.len() - 1) as u64
    }
}

/// `len` keys drawn from Zipf(`s`) over `keys` distinct keys (scattered with [`mix`]), seeded.
#[must_use]
pub fn zipf_keys(keys: usize, s: f64, len: usize, seed: u64) -> Vec<u64> {
    let zipf = Zipf::new(keys, s);
    let mut rng = SplitMix64::new(seed);
    (0..len).map(|_| mix(zipf.sample(&mut rng))).collect()
}

/// `len` ranks (not scattered) drawn from Zipf(`s`) over `0..keys`, seeded.
#[must_use]
pub fn zipf_ranks(keys: usize, s: f64, len: usize, seed: u64) -> Vec<u64> {
    let zipf = Zipf::new(keys, s);
    let mut rng = SplitMix64::new(seed);
    (0..len).map(|_| zipf.sample(&mut rng)).collect()
}

/// Zipf(`s`) over `keys` keys, interrupted every `period` requests by a sequential scan of
/// `scan_len` keys that are never requested again (a backup job, a full-table read): the
/// pattern that flushes an LRU. Scan keys have bit 63 set and never collide with the Zipf keys
/// (which are masked off it).
#[must_use]
pub fn scan_mix(
    keys: usize,
    s: f64,
    len: usize,
    period: usize,
    scan_len: usize,
    seed: u64,
) -> Vec<u64> {
    const SCAN_BIT: u64 = 1 << 63;
    let zipf = Zipf::new(keys, s);
    let mut rng = SplitMix64::new(seed);
    let mut out = Vec::with_capacity(len);
    let mut next_scan_key = 0u64;
    while out.len() < len {
        for _ in 0..period.min(len - out.len()) {
            out.push(mix(zipf.sample(&mut rng)) & !SCAN_BIT);
        }
        for _ in 0..scan_len.min(len - out.len()) {
            out.push(SCAN_BIT | next_scan_key);
            next_scan_key += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zipf_rank_zero_is_most_popular_and_in_range() {
        let ranks = zipf_ranks(100, 1.0, 20_000, 1);
        assert!(ranks.iter().all(|&r| r < 100));
        let zeros = ranks.iter().filter(|&&r| r == 0).count();
        let fifties = ranks.iter().filter(|&&r| r == 50).count();
        // P(0) / P(50) = 51 for s = 1: rank 0 must be far more frequent.
        assert!(zeros > 10 * fifties.max(1), "{zeros} vs {fifties}");
    }

    #[test]
    fn scan_mix_keys_never_collide() {
        let keys = scan_mix(50, 0.9, 1_000, 100, 30, 2);
        assert_eq!(keys.len(), 1_000);
        let scans = keys.iter().filter(|&&k| k >> 63 == 1).count();
        assert!(scans > 0 && scans < 1_000);
    }
}
