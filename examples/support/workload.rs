//! Deterministic cache workloads shared by the cache examples and `benches/cache.rs`: a SplitMix64
//! generator, an inverse-CDF Zipf sampler, a scan-polluted Zipf mix, and a reader for the ARC
//! traces (Megiddo & Modha, FAST'03) in their zstd-compressed `.lis` form.
//!
//! Included with `#[path]` by each binary that needs it; not every binary uses every item.
#![allow(dead_code)]
// Ranks and counts are far below 2^52: the float conversions are exact enough for sampling.
#![allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]

use std::error::Error;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

/// SplitMix64 (Steele, Lea & Flood, 2014): tiny, fast, and good enough for workloads.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.0)
    }

    /// Uniform in `[0, 1)` with 53 random bits.
    pub(crate) fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `[0, n)` (Lemire's multiply-shift; the bias is negligible for small `n`).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

/// SplitMix64's finaliser: a bijection on `u64`, used to scatter ranks over the key space so that
/// popular keys are not small consecutive integers.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Zipf(s) over ranks `0..n` by inverse CDF: a cumulative table and a binary search per sample.
#[derive(Debug, Clone)]
pub(crate) struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    /// `P(rank = i)` proportional to `1 / (i + 1)^s`.
    pub(crate) fn new(n: usize, s: f64) -> Self {
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

    /// A rank in `0..n`; rank 0 is the most popular.
    pub(crate) fn sample(&self, rng: &mut SplitMix64) -> u64 {
        let u = rng.next_f64();
        let i = self.cdf.partition_point(|&c| c < u);
        i.min(self.cdf.len() - 1) as u64
    }
}

/// `len` keys drawn from Zipf(`s`) over `keys` distinct keys, seeded.
pub(crate) fn zipf_keys(keys: usize, s: f64, len: usize, seed: u64) -> Vec<u64> {
    let zipf = Zipf::new(keys, s);
    let mut rng = SplitMix64::new(seed);
    (0..len).map(|_| mix(zipf.sample(&mut rng))).collect()
}

/// Zipf(`s`) over `keys` keys, interrupted every `period` requests by a sequential scan of
/// `scan_len` keys that are never requested again (a backup job, a full-table read): the classic
/// pattern that flushes an LRU. Scan keys have bit 63 set and never collide with the Zipf keys
/// (whose scattered values may have bit 63 set too, so they are masked off it).
pub(crate) fn scan_mix(
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

/// Reads an ARC trace (`.lis`, optionally zstd-compressed as `.zst`): every line
/// `start count _ _` expands to the `count` keys `start, start + 1, ...`.
///
/// # Errors
/// I/O errors, a corrupt zstd stream, or a line whose first two fields are not integers.
pub(crate) fn read_arc_trace(path: &Path) -> Result<Vec<u64>, Box<dyn Error>> {
    let file = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let reader: Box<dyn BufRead> = if path.extension().is_some_and(|e| e == "zst") {
        let decoder = ruzstd::decoding::StreamingDecoder::new(BufReader::new(file))
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Box::new(BufReader::with_capacity(1 << 16, decoder))
    } else {
        Box::new(BufReader::with_capacity(1 << 16, file))
    };
    let mut keys = Vec::new();
    for (n, line) in reader.lines().enumerate() {
        let line = line?;
        let mut fields = line.split_ascii_whitespace();
        let (Some(start), Some(count)) = (fields.next(), fields.next()) else {
            if line.trim().is_empty() {
                continue;
            }
            return Err(format!("{}:{}: expected `start count ...`", path.display(), n + 1).into());
        };
        let bad = |e: std::num::ParseIntError| format!("{}:{}: {e}", path.display(), n + 1);
        let start: u64 = start.parse().map_err(bad)?;
        let count: u64 = count.parse().map_err(bad)?;
        keys.extend(start..start.saturating_add(count));
    }
    Ok(keys)
}
