//! The frequency sketch of [`TinyLfuCache`](crate::TinyLfuCache): a count-min sketch of 4-bit
//! counters, four per key, all in one 64-byte block, halved periodically (TinyLFU's "reset")
//! and cleared when the hill climber sees the popular keys change wholesale.
//!
//! A key is known by its 30-bit **fingerprint** (see [`fingerprint`]), which the policy keeps in
//! the node's `meta` word, so the sketch never needs the key or the hasher. The layout, which the
//! crate's model test reproduces independently, is:
//!
//! - `h = mix64(fingerprint)`; the key's block is `h mod blocks` (a block is 8 words, 64 bytes);
//! - for depth `i` in `0..4`, with `b = (h >> (32 + 8 i)) & 0xff`: word `8 block + 2 i + (b & 1)`,
//!   nibble `(b >> 1) & 15` of that word (nibble `n` is bits `4n..4n+4`);
//! - an increment adds one to each of the four counters below 15; if any changed, it counts as
//!   an addition, and when the additions reach the sample size every counter is halved
//!   (rounding down) and the additions become `(additions - odd / 4) / 2`, where `odd` is the
//!   number of counters that were odd (Caffeine's correction for the halving's truncation);
//! - the estimate is the smallest of the four counters (0..=15).
//!
//! Memory: one `u64` word per entry of the nominal size, rounded up to a power of two, and at
//! least 4,096 words (32 KB); for 10,000 entries, 16,384 words (13 B per entry).

/// The smallest table: 4,096 words (32 KB). Small caches in front of many keys need more
/// counters than one word per entry to tell popular keys apart (on Zipf traffic over 100,000
/// keys, a 1,000-entry cache hit 0.5-1 point more often with 4,096 words than with 1,024).
const MIN_WORDS: usize = 4_096;
/// Counters per key (the sketch's depth).
const DEPTH: usize = 4;
/// Words per block (one 64-byte cache line).
const BLOCK_WORDS: usize = 8;
/// Every counter's low bit, for counting odd counters on a reset.
const ONE_MASK: u64 = 0x1111_1111_1111_1111;
/// Every counter's three high bits after a shift right by one.
const RESET_MASK: u64 = 0x7777_7777_7777_7777;
/// The largest count.
const MAX_COUNT: u64 = 15;
/// Additions per nominal entry before the counters halve (Caffeine and the TinyLFU paper: 10).
/// Twenty keeps popularity long enough to tell warm keys from one-off ones at small sizes
/// (scan mix at 1,000 entries: 37.99% against 37.62%, Zipf and OLTP up to 250 entries gain 0.2
/// to 1.3 points) at the cost of following a wholesale change of the popular keys more slowly
/// (the shifting workload at 10,000 entries: 50.61% against 52.43%, measured before the
/// climber learnt to make the sketch forget on a regime change, see
/// [`Sketch::clear`]; with it, 57.99%).
const SAMPLE_FACTOR: u64 = 20;

/// SplitMix64's finaliser: a bijective mix of all 64 bits.
#[inline]
pub(crate) fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A key's 30-bit fingerprint, from every bit of its 64-bit hash (so keys of one
/// `ConcurrentCache` shard, which share some hash bits, still spread).
#[inline]
pub(crate) fn fingerprint(hash: u64) -> u32 {
    // The top 30 bits of a 64-bit value fit in a u32.
    #[allow(clippy::cast_possible_truncation)]
    let fp = (mix64(hash) >> 34) as u32;
    fp
}

/// The count-min sketch (see the module docs).
pub(crate) struct Sketch {
    table: Vec<u64>,
    /// `blocks - 1` (blocks is a power of two).
    block_mask: u64,
    /// Additions since the last reset.
    additions: u64,
    /// Additions that trigger a reset.
    sample_size: u64,
    /// The entry count the table is sized for.
    nominal: usize,
}

impl Sketch {
    /// A sketch sized for `nominal` entries (at least one block).
    pub(crate) fn new(nominal: usize) -> Self {
        let nominal = nominal.max(1);
        let words = nominal.next_power_of_two().max(MIN_WORDS);
        Self {
            table: vec![0; words],
            block_mask: (words / BLOCK_WORDS - 1) as u64,
            additions: 0,
            sample_size: SAMPLE_FACTOR.saturating_mul(nominal as u64),
            nominal,
        }
    }

    /// The entry count the table is sized for.
    pub(crate) fn nominal(&self) -> usize {
        self.nominal
    }

    /// Resizes for `entries` entries (doubling past the nominal size), forgetting every count,
    /// as Caffeine does when a weighted cache outgrows its sketch. Amortised O(1) per insert.
    pub(crate) fn ensure_capacity(&mut self, entries: usize) {
        if entries > self.nominal {
            *self = Self::new(entries.next_power_of_two());
        }
    }

    /// The key's block (one bounds check) and, for each depth, the word within it and the
    /// counter's shift in that word, for the mixed fingerprint `h`.
    #[inline]
    fn counters(&mut self, h: u64) -> (&mut [u64; BLOCK_WORDS], [(usize, u32); DEPTH]) {
        // The block index is below `table.len() / 8`, so it fits in usize.
        #[allow(clippy::cast_possible_truncation)]
        let base = (h & self.block_mask) as usize * BLOCK_WORDS;
        let block: &mut [u64; BLOCK_WORDS] = (&mut self.table[base..base + BLOCK_WORDS])
            .try_into()
            .expect("invariant: the table is a whole number of blocks");
        let slots = std::array::from_fn(|i| {
            let b = (h >> (32 + 8 * i)) & 0xff;
            // Below 8 and below 64.
            #[allow(clippy::cast_possible_truncation)]
            let at = (2 * i + (b & 1) as usize, (((b >> 1) & 15) * 4) as u32);
            at
        });
        (block, slots)
    }

    /// Adds `n` occurrences of fingerprint `fp`, with the result of `n` increments as
    /// documented, in one pass over the four counters unless a reset falls among them.
    ///
    /// Increment `j` (from 1) changes a counter, and so counts as an addition, exactly when
    /// the smallest counter plus `j - 1` is below 15; so `n` increments make
    /// `min(n, 15 - smallest)` additions and leave each counter at `min(count + n, 15)`. When
    /// those additions reach the sample size, the reset happens part-way, and the increments
    /// run one at a time.
    pub(crate) fn increment(&mut self, fp: u32, n: u32) {
        let h = mix64(u64::from(fp));
        let n = u64::from(n);
        let (additions, sample_size) = (self.additions, self.sample_size);
        let (block, slots) = self.counters(h);
        let mut min = MAX_COUNT;
        for &(word, shift) in &slots {
            min = min.min((block[word] >> shift) & MAX_COUNT);
        }
        let added = n.min(MAX_COUNT - min);
        if additions + added >= sample_size {
            for _ in 0..n {
                self.add(h);
            }
            return;
        }
        for &(word, shift) in &slots {
            let count = (block[word] >> shift) & MAX_COUNT;
            block[word] += ((count + n).min(MAX_COUNT) - count) << shift;
        }
        self.additions += added;
    }

    /// Adds one occurrence of fingerprint `fp`; whether its estimate was zero before (a key the
    /// sketch has not counted since it last forgot).
    pub(crate) fn increment_unseen(&mut self, fp: u32) -> bool {
        self.add(mix64(u64::from(fp))) == 0
    }

    /// One increment of the mixed fingerprint `h`; returns the estimate before it.
    #[inline]
    fn add(&mut self, h: u64) -> u64 {
        let (block, slots) = self.counters(h);
        let mut added = false;
        let mut min = MAX_COUNT;
        for (word, shift) in slots {
            let count = (block[word] >> shift) & MAX_COUNT;
            min = min.min(count);
            if count < MAX_COUNT {
                block[word] += 1 << shift;
                added = true;
            }
        }
        if added {
            self.additions += 1;
            if self.additions >= self.sample_size {
                self.reset();
            }
        }
        min
    }

    /// The estimated count of fingerprint `fp`: the smallest of its counters.
    pub(crate) fn frequency(&self, fp: u32) -> u8 {
        let h = mix64(u64::from(fp));
        // The block index is below `table.len() / 8`, so it fits in usize.
        #[allow(clippy::cast_possible_truncation)]
        let base = (h & self.block_mask) as usize * BLOCK_WORDS;
        let block = &self.table[base..base + BLOCK_WORDS];
        let mut min = MAX_COUNT;
        for i in 0..DEPTH {
            let b = (h >> (32 + 8 * i)) & 0xff;
            // Below 8.
            #[allow(clippy::cast_possible_truncation)]
            let word = block[(2 * i + (b & 1) as usize) & (BLOCK_WORDS - 1)];
            min = min.min((word >> (((b >> 1) & 15) * 4)) & MAX_COUNT);
        }
        // At most 15.
        #[allow(clippy::cast_possible_truncation)]
        let min = min as u8;
        min
    }

    /// Additions between two halvings.
    pub(crate) fn period(&self) -> u64 {
        self.sample_size
    }

    /// Forgets every count (the policy's answer to a wholesale change of the popular keys):
    /// O(table), at most once per hill-climber sample.
    pub(crate) fn clear(&mut self) {
        self.table.fill(0);
        self.additions = 0;
    }

    /// Halves every counter (TinyLFU's aging): O(table), once per `sample_size` additions.
    fn reset(&mut self) {
        let mut odd = 0u64;
        for w in &mut self.table {
            odd += u64::from((*w & ONE_MASK).count_ones());
            *w = (*w >> 1) & RESET_MASK;
        }
        self.additions = (self.additions - odd / 4) / 2;
    }
}

#[cfg(test)]
mod tests {
    use super::{Sketch, fingerprint};

    #[test]
    fn counts_saturate_and_halve() {
        let mut s = Sketch::new(64);
        let fp = fingerprint(42);
        assert_eq!(s.frequency(fp), 0);
        s.increment(fp, 3);
        assert_eq!(s.frequency(fp), 3);
        s.increment(fp, 20);
        assert_eq!(s.frequency(fp), 15);
        // Saturated increments are not additions: 15 so far.
        assert_eq!(s.additions, 15);
        // Fill up to the sample size with other keys: the reset halves every counter.
        let mut k = 1_000u64;
        while s.additions != 0 && s.additions < s.sample_size - 1 {
            s.increment(fingerprint(k), 1);
            k += 1;
        }
        s.increment(fingerprint(k), 1);
        assert!(s.frequency(fp) <= 7, "halved: {}", s.frequency(fp));
        assert!(s.additions < s.sample_size / 2 + 1);
    }

    /// `increment(fp, n)` against `n` single additions (the definition), from states that
    /// cover saturated counters and a reset falling among the `n`.
    #[test]
    fn one_pass_increment_equals_n_single_additions() {
        let mut rng = 0x1234_5678_u64;
        let mut next = move || {
            rng = super::mix64(rng.wrapping_add(0x9e37_79b9_7f4a_7c15));
            rng
        };
        for round in 0..2_000 {
            let mut fast = Sketch::new(64);
            // A random history: some keys hot enough to saturate, and a position just short of
            // a reset in some rounds.
            for _ in 0..(next() % 400) {
                let key = next() % 40;
                fast.increment(fingerprint(key), 1 + (next() % 16) as u32);
            }
            if round % 3 == 0 {
                fast.additions = fast.sample_size - 1 - next() % 8;
            }
            let mut slow = Sketch {
                table: fast.table.clone(),
                block_mask: fast.block_mask,
                additions: fast.additions,
                sample_size: fast.sample_size,
                nominal: fast.nominal,
            };
            let fp = fingerprint(next() % 40);
            let n = (next() % 20) as u32;
            fast.increment(fp, n);
            let h = super::mix64(u64::from(fp));
            for _ in 0..n {
                slow.add(h);
            }
            assert_eq!(fast.table, slow.table, "round {round}: n {n}");
            assert_eq!(fast.additions, slow.additions, "round {round}: n {n}");
        }
    }

    #[test]
    fn unseen_keys_and_clearing() {
        let mut s = Sketch::new(64);
        let fp = fingerprint(7);
        assert!(s.increment_unseen(fp), "never counted");
        assert!(!s.increment_unseen(fp), "counted once");
        s.increment(fp, 20);
        s.clear();
        assert_eq!((s.frequency(fp), s.additions), (0, 0));
        assert!(s.increment_unseen(fp), "forgotten");
    }

    #[test]
    fn sizes_round_up_to_a_block() {
        let s = Sketch::new(1);
        assert_eq!(s.table.len(), 4_096);
        assert_eq!(Sketch::new(10_000).table.len(), 16_384);
        let mut s = Sketch::new(16);
        s.ensure_capacity(17);
        assert_eq!(s.nominal(), 32);
    }
}
