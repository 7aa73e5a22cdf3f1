//! The ghost of [`S3FifoCache`](crate::S3FifoCache): which keys the small queue evicted lately,
//! as 4-byte fingerprints stamped with their age, in a table of 64-byte buckets.
//!
//! **What it remembers.** The ghost has a *capacity* `G` (the main queue's share of the cache's
//! weight) and counts the *charge* of every key it is given: the evicted entry's weight, at least
//! 1 (so 1 per key without a weigher). A key is remembered until the keys pushed after it total
//! `G` of charge, to the nearest *epoch*: time is counted in epochs of `L = ceil(G / 128)` charge
//! and a key is forgotten once `E = G / L` epochs have begun since the one it was pushed in. So it
//! is forgotten after between `(E - 1) L + 1` and `E L` more charge: exactly `G` when `G <= 128`,
//! and at least 98.4% of `G` beyond. Pushing a remembered key again restarts its age. A lookup
//! that finds the key forgets it (a ghost hit); that does not give its charge back, since the
//! window counts charge pushed, not keys held. [`Ghost::clear`] forgets everything.
//!
//! **Layout.** A slot is a `u32`: a 24-bit fingerprint of the key's hash (never 0) above the low
//! 8 bits of the epoch it was pushed in; 0 is an empty slot. A key's bucket (16 slots, one
//! 64-byte cache line) and its fingerprint come from disjoint bits of `mix64(hash)`. A push
//! takes the slot of the same fingerprint if it is live, else an empty or expired slot, else
//! (a full bucket) the oldest one, which is then forgotten early. Ages are epoch differences
//! modulo 256, which stay exact because a sweep clears expired slots: it visits `1/64` of the
//! buckets each epoch, so a slot that expired (at age `E <= 128`) is cleared before age 193.
//!
//! **Cost.** The table is sized for 12 keys per bucket (75% of the slots): 16 / 12 x 4 = 5.3
//! bytes per remembered key. At that load about 2% of the keys land in a full bucket before
//! their age is up and are forgotten early (the bucket's oldest go first). A key the ghost
//! never saw is found with probability at most 16 / 2^24 per lookup: a false
//! positive sends it to the main queue. (About one in a million: 12 / 2^24 at the nominal
//! load.) Every operation reads one bucket; a push also sweeps
//! about `1/6` of a bucket on average (unweighted). The table is allocated at the first push,
//! sized for the cache's entries then (nine tenths of them, at most `G`); a weighted cache whose
//! entries have since grown to need more than half as many buckets again gets a table for its
//! new size, and the ghost forgets its keys when that happens (at most a few times in a cache's
//! life, since each new table is at least 1.5 times bigger).

/// Slots per bucket: 16 `u32`, one 64-byte cache line.
const SLOTS: usize = 16;
/// Keys per bucket the table is sized for (75% of the slots). At 8 (50%), which forgets
/// almost no key early, the hit ratios of `benches/examples/hit_ratio.rs` on OLTP at 2,000 and
/// 10,000 entries, P3 at 100,000, loop mix and shifting at 10,000 moved by 0.02 points at most.
const KEYS_PER_BUCKET: usize = 12;
/// The most epochs in the window (`E`), so that ages fit the 8-bit stamp with room to sweep.
const MAX_EPOCHS: u64 = 128;
/// The sweep visits every bucket within this many epochs.
const SWEEP_EPOCHS: usize = 64;

#[derive(Clone, Copy, Default)]
#[repr(align(64))]
struct Bucket([u32; SLOTS]);

/// SplitMix64's finaliser: a bijective mix of all 64 bits, so keys of one `ConcurrentCache`
/// shard (which share some hash bits) still spread over buckets and fingerprints.
#[inline]
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The low 8 bits of a slot: its epoch stamp.
#[inline]
#[allow(clippy::cast_possible_truncation)]
fn stamp(slot: u32) -> u8 {
    slot as u8
}

/// Bit masks of a bucket's slots at epoch `now`: those holding `fp` (live or not), and the free
/// ones (empty, or `epochs` old or more). A loop without early exit, which the compiler turns
/// into vector compares.
#[inline]
fn masks(slots: &[u32; SLOTS], fp: u32, now: u8, epochs: u8) -> (u32, u32) {
    let (mut same, mut free) = (0u32, 0u32);
    for (i, &slot) in slots.iter().enumerate() {
        same |= u32::from(slot >> 8 == fp) << i;
        free |= u32::from(slot == 0 || now.wrapping_sub(stamp(slot)) >= epochs) << i;
    }
    (same, free)
}

/// Keys recently evicted from the small queue (see the module docs).
pub(super) struct Ghost {
    /// Empty until the first push.
    buckets: Vec<Bucket>,
    /// `G`, in charge.
    capacity: u64,
    /// `L`: charge per epoch.
    epoch_len: u64,
    /// `E`: epochs a key lives (1..=128).
    epochs: u8,
    /// The current epoch, modulo 256.
    epoch: u8,
    /// Charge pushed in the current epoch (below `epoch_len`).
    charged: u64,
    /// The next bucket the sweep visits.
    cursor: usize,
}

impl Ghost {
    /// A ghost remembering `capacity` charge (at least 1); it allocates nothing yet.
    pub(super) fn new(capacity: u64) -> Self {
        let capacity = capacity.max(1);
        let epoch_len = capacity.div_ceil(MAX_EPOCHS);
        // At most `MAX_EPOCHS` (128), since `epoch_len >= capacity / 128`.
        let epochs = u8::try_from(capacity / epoch_len).unwrap_or(u8::MAX);
        Self {
            buckets: Vec::new(),
            capacity,
            epoch_len,
            epochs,
            epoch: 0,
            charged: 0,
            cursor: 0,
        }
    }

    /// Remembers `hash`, charging `weight` (at least 1). `entries` is the cache's entry count,
    /// which sizes the table.
    pub(super) fn push(&mut self, hash: u64, weight: u64, entries: usize) {
        self.reserve(entries);
        self.advance(weight.max(1));
        let (at, fp) = self.locate(hash);
        let (now, epochs) = (self.epoch, self.epochs);
        let slots = &mut self.buckets[at].0;
        let (same, free) = masks(slots, fp, now, epochs);
        // The slot of the same fingerprint (remembered already, or a key that shares it: either
        // way it starts again), else a free one, else the oldest.
        let i = if same != 0 {
            same.trailing_zeros() as usize
        } else if free != 0 {
            free.trailing_zeros() as usize
        } else {
            let age = |i: &usize| now.wrapping_sub(stamp(slots[*i]));
            (0..SLOTS).max_by_key(age).unwrap_or(0)
        };
        slots[i] = (fp << 8) | u32::from(now);
    }

    /// Whether `hash` is remembered; it is forgotten either way.
    #[inline]
    pub(super) fn remove(&mut self, hash: u64) -> bool {
        if self.buckets.is_empty() {
            return false;
        }
        let (at, fp) = self.locate(hash);
        let (same, free) = masks(&self.buckets[at].0, fp, self.epoch, self.epochs);
        let live = same & !free;
        if live == 0 {
            return false;
        }
        self.buckets[at].0[live.trailing_zeros() as usize] = 0;
        true
    }

    /// Forgets every key (keeping the table).
    pub(super) fn clear(&mut self) {
        self.buckets.fill(Bucket::default());
        self.epoch = 0;
        self.charged = 0;
        self.cursor = 0;
    }

    /// The bucket and the fingerprint (never 0) of `hash`.
    #[inline]
    fn locate(&self, hash: u64) -> (usize, u32) {
        let h = mix64(hash);
        // Lemire's range reduction of the low 32 bits: below `buckets.len()`, so it fits.
        #[allow(clippy::cast_possible_truncation)]
        let at = (((h & 0xffff_ffff) * self.buckets.len() as u64) >> 32) as usize;
        // The top 24 bits.
        #[allow(clippy::cast_possible_truncation)]
        let fp = (h >> 40) as u32;
        (at, fp.max(1))
    }

    /// Allocates the table at the first push, or a bigger one (forgetting every key) once the
    /// keys to expect need more than half as many buckets again.
    fn reserve(&mut self, entries: usize) {
        let cap = usize::try_from(self.capacity).unwrap_or(usize::MAX);
        let want = (entries - entries / 10).clamp(1, cap);
        let buckets = want.div_ceil(KEYS_PER_BUCKET);
        let have = self.buckets.len();
        if have != 0 && buckets <= have + have / 2 {
            return;
        }
        self.buckets = vec![Bucket::default(); buckets];
        self.cursor = 0;
    }

    /// Moves time on by `charge`, sweeping `1/64` of the buckets per epoch begun.
    #[inline]
    fn advance(&mut self, charge: u64) {
        let total = u128::from(self.charged) + u128::from(charge);
        if let Ok(within) = u64::try_from(total)
            && within < self.epoch_len
        {
            // The usual case: still in the current epoch, no division.
            self.charged = within;
            return;
        }
        let len = u128::from(self.epoch_len);
        // Below `epoch_len`, a u64.
        #[allow(clippy::cast_possible_truncation)]
        let rest = (total % len) as u64;
        self.charged = rest;
        let steps = total / len;
        if steps >= u128::from(self.epochs) {
            // Every key pushed so far is past its age.
            self.buckets.fill(Bucket::default());
            // Only the stamp's 8 bits matter.
            #[allow(clippy::cast_possible_truncation)]
            let steps = steps as u8;
            self.epoch = self.epoch.wrapping_add(steps);
            return;
        }
        for _ in 0..steps {
            self.epoch = self.epoch.wrapping_add(1);
            self.sweep();
        }
    }

    /// Clears the expired slots of the next `1/64` of the buckets.
    fn sweep(&mut self) {
        let (now, epochs) = (self.epoch, self.epochs);
        for _ in 0..self.buckets.len().div_ceil(SWEEP_EPOCHS) {
            if self.cursor >= self.buckets.len() {
                self.cursor = 0;
            }
            for slot in &mut self.buckets[self.cursor].0 {
                if now.wrapping_sub(stamp(*slot)) >= epochs {
                    *slot = 0;
                }
            }
            self.cursor += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::{Ghost, mix64, stamp};

    impl Ghost {
        /// Live keys.
        fn len(&self) -> usize {
            let (now, epochs) = (self.epoch, self.epochs);
            let live = |s: &&u32| **s != 0 && now.wrapping_sub(stamp(**s)) < epochs;
            self.buckets
                .iter()
                .map(|b| b.0.iter().filter(live).count())
                .sum()
        }

        /// Whether `hash` is remembered (without forgetting it).
        fn contains(&self, hash: u64) -> bool {
            let (at, fp) = self.locate(hash);
            let (now, epochs) = (self.epoch, self.epochs);
            let live = |s: &u32| *s >> 8 == fp && now.wrapping_sub(stamp(*s)) < epochs;
            self.buckets[at].0.iter().any(live)
        }
    }

    /// The rule the module documents for `G <= 128` (one epoch per unit of charge): a key is
    /// remembered until the charge pushed after it reaches `G`; a hit forgets it.
    #[derive(Default)]
    struct Model {
        /// `(hash, clock after its push)`.
        keys: Vec<(u64, u64)>,
        clock: u64,
    }

    impl Model {
        fn push(&mut self, hash: u64, weight: u64) {
            self.clock += weight.max(1);
            self.keys.retain(|k| k.0 != hash);
            self.keys.push((hash, self.clock));
        }

        fn remove(&mut self, hash: u64, capacity: u64) -> bool {
            let clock = self.clock;
            let live = self
                .keys
                .iter()
                .position(|k| k.0 == hash && clock - k.1 < capacity);
            self.keys.retain(|k| k.0 != hash);
            live.is_some()
        }

        fn live(&self, capacity: u64) -> usize {
            self.keys
                .iter()
                .filter(|k| self.clock - k.1 < capacity)
                .count()
        }
    }

    proptest! {
        /// Small ghosts follow the exact rule: pushes (weights, zero included) and hits over few
        /// hashes, with the clock going round the 8-bit stamp. At most 16 keys are live, so no
        /// bucket overflows, whatever the table's size.
        #[test]
        fn small_ghost_matches_model(
            capacity in 1..=16u64,
            entries in 0..60usize,
            ops in prop::collection::vec((any::<bool>(), 0..24u64, 0..8u64), 1..600),
        ) {
            let mut ghost = Ghost::new(capacity);
            let mut model = Model::default();
            for (push, hash, weight) in ops {
                if push {
                    ghost.push(hash, weight, entries);
                    model.push(hash, weight);
                } else {
                    prop_assert_eq!(ghost.remove(hash), model.remove(hash, capacity));
                }
                prop_assert_eq!(ghost.len(), model.live(capacity));
            }
            ghost.clear();
            prop_assert_eq!(ghost.len(), 0);
            prop_assert!(!ghost.remove(0));
        }
    }

    #[test]
    fn epochs_cover_the_capacity() {
        for capacity in [1, 2, 127, 128, 129, 255, 256, 9_000, 1 << 40, u64::MAX] {
            let g = Ghost::new(capacity);
            let (l, e) = (g.epoch_len, u64::from(g.epochs));
            assert!((1..=128).contains(&e), "{capacity}");
            assert!(e * l <= capacity, "{capacity}: never more than G");
            assert!(
                (e - 1) * l + 1 >= capacity - capacity / 64,
                "{capacity}: about G"
            );
        }
    }

    /// Pushes `n` distinct keys from `first`; the keys are mixed so no two share a bucket
    /// pattern.
    fn push_keys(ghost: &mut Ghost, first: u64, n: u64, entries: usize) {
        for k in first..first + n {
            ghost.push(mix64(k ^ 0x5eed), 1, entries);
        }
    }

    #[test]
    fn remembers_about_its_capacity_and_forgets_older_keys() {
        // A 10,000-entry cache: G = 9,000, 71 charge per epoch, 126 epochs.
        let (capacity, entries) = (9_000u64, 10_000usize);
        let mut ghost = Ghost::new(capacity);
        push_keys(&mut ghost, 0, 100_000, entries);
        // The table: 750 buckets of 16 slots (12,000 slots, 48 KB) for 9,000 keys.
        assert_eq!(ghost.buckets.len(), 750);
        // At most E L = 8,946 keys; a full bucket forgets its oldest early (8,729 here).
        let live = ghost.len();
        assert!((8_600..=8_946).contains(&live), "{live}");
        // The newest keys are nearly all there (7,936 of 8,000 here); keys older than G are
        // gone, up to false positives (about 12 x 91,000 / 2^24 = 0.07 expected).
        let newest = (100_000 - 8_000..100_000).filter(|&k| ghost.contains(mix64(k ^ 0x5eed)));
        assert!(newest.count() >= 7_900);
        let older = (0..100_000 - 9_000).filter(|&k| ghost.contains(mix64(k ^ 0x5eed)));
        assert!(older.count() <= 2);
        // A hit forgets; a clear forgets everything.
        let last = mix64(99_999 ^ 0x5eed);
        assert!(ghost.remove(last));
        assert!(!ghost.remove(last));
        ghost.clear();
        assert_eq!(ghost.len(), 0);
        assert!(!ghost.remove(mix64(99_998 ^ 0x5eed)));
    }

    #[test]
    fn false_positives_are_rare() {
        let mut ghost = Ghost::new(9_000);
        push_keys(&mut ghost, 0, 50_000, 10_000);
        // 100,000 keys never pushed: at most 16 / 2^24 each, about 12 / 2^24 at this load,
        // so 0.07 expected in all.
        let false_hits = (1_000_000..1_100_000u64)
            .filter(|&k| ghost.remove(mix64(k ^ 0x5eed)))
            .count();
        assert!(false_hits <= 2, "{false_hits} false positives");
    }

    #[test]
    fn weights_count_charge_and_big_ones_expire_everything() {
        // G = 1,000: 8 charge per epoch, 125 epochs.
        let mut ghost = Ghost::new(1_000);
        for k in 0..10u64 {
            ghost.push(k, 100, 20);
        }
        assert_eq!(ghost.len(), 10, "ten keys of 100 fill a G of 1,000");
        ghost.push(10, 100, 20);
        assert!(!ghost.remove(0), "the oldest is 1,000 of charge behind");
        assert!(ghost.remove(1));
        ghost.push(11, 5_000, 20);
        assert_eq!(ghost.len(), 1, "a push of more than G leaves only itself");
        assert!(ghost.remove(11));
    }

    #[test]
    fn grows_with_a_weighted_cache() {
        let mut ghost = Ghost::new(1 << 30);
        ghost.push(1, 1_000, 100);
        assert_eq!(ghost.buckets.len(), 8);
        ghost.push(2, 1_000, 130);
        assert_eq!(
            ghost.buckets.len(),
            8,
            "less than half more: the same table"
        );
        assert!(ghost.remove(1));
        ghost.push(3, 1_000, 1_000);
        assert_eq!(ghost.buckets.len(), 75);
        assert!(!ghost.remove(2), "a new table forgets");
        assert!(ghost.remove(3));
    }
}
