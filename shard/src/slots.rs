//! [`HashSlots`]: Redis Cluster's 16,384 hash slots.

use crate::key::tag_bytes;
use crate::strategy::sorted_unique;
use crate::{Error, Result, ShardId, ShardKey, ShardStrategy};

/// The slot count of Redis Cluster.
pub const SLOTS: usize = 16_384;

/// A fixed slot space with a slot → shard table, byte-for-byte compatible with Redis Cluster:
/// `slot = CRC16-XMODEM(tag(key)) mod 16384`, with the `{tag}` rule of [`hash_tag`](crate::hash_tag).
/// A tierkit router and a real Redis Cluster agree about every key's slot.
///
/// Integer keys are hashed as their decimal string (`42` → `"42"`), which is what Redis sees
/// when a client sends an integer key.
///
/// Resharding moves whole slots: going from 4 to 5 shards with [`rebalanced`](Self::rebalanced)
/// moves exactly the slots the new shard needs, 20% of them, and nothing between old shards.
///
/// # Examples
///
/// ```
/// use tierkit_shard::{HashSlots, ShardId, ShardKey, ShardStrategy, crc16};
///
/// # fn main() -> Result<(), tierkit_shard::Error> {
/// assert_eq!(crc16(b"123456789"), 0x31C3);
///
/// let slots = HashSlots::even((0..3).map(ShardId))?;
/// // Same slot, same shard: the tag decides.
/// let a = slots.shard_of(ShardKey::Bytes(b"{user:42}:cart"));
/// let b = slots.shard_of(ShardKey::Bytes(b"{user:42}:orders"));
/// assert_eq!(a, b);
/// assert_eq!(HashSlots::slot(ShardKey::Bytes(b"foo")), 12182); // as `CLUSTER KEYSLOT foo`
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct HashSlots {
    /// Slot -> index into `shards`.
    table: Box<[u16]>,
    shards: Vec<ShardId>,
}

impl HashSlots {
    /// Contiguous, even slot ranges over these shards in ascending id order (as
    /// `redis-cli --cluster create` assigns them).
    ///
    /// # Errors
    /// [`Error::EmptyShardSet`], [`Error::DuplicateShard`], [`Error::TooManyShards`] beyond
    /// 16,384 shards.
    pub fn even<I: IntoIterator<Item = ShardId>>(shards: I) -> Result<Self> {
        let shards = sorted_unique(shards.into_iter().collect())?;
        if shards.len() > SLOTS {
            return Err(Error::TooManyShards(shards.len()));
        }
        let n = shards.len();
        // redis-cli's allocation: a floating cursor advancing by SLOTS / n (computed in single
        // precision, as redis-cli does), each node taking up to the rounded cursor.
        #[allow(clippy::cast_precision_loss)]
        let per = f64::from(SLOTS as f32 / n as f32);
        let mut table = vec![0u16; SLOTS];
        let (mut first, mut cursor) = (0usize, 0f64);
        for j in 0..n {
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let rounded = (cursor + per - 1.0).round().max(0.0) as usize;
            let mut last = if j == n - 1 {
                SLOTS - 1
            } else {
                rounded.min(SLOTS - 1)
            };
            last = last.max(first);
            let index = u16::try_from(j).unwrap_or(u16::MAX);
            for entry in table.iter_mut().take(last + 1).skip(first) {
                *entry = index;
            }
            first = last + 1;
            cursor += per;
        }
        Ok(HashSlots {
            table: table.into_boxed_slice(),
            shards,
        })
    }

    /// An explicit table: `table[slot]` owns `slot`. Every slot must have an owner.
    ///
    /// # Errors
    /// [`Error::SlotTableSize`] unless `table.len() == 16384`.
    pub fn from_table(table: &[ShardId]) -> Result<Self> {
        if table.len() != SLOTS {
            return Err(Error::SlotTableSize {
                got: table.len(),
                expected: SLOTS,
            });
        }
        let shards = {
            let mut ids = table.to_vec();
            ids.sort_unstable();
            ids.dedup();
            ids
        };
        let table = table
            .iter()
            .map(|id| u16::try_from(shards.partition_point(|s| s < id)).unwrap_or(0))
            .collect();
        Ok(HashSlots { table, shards })
    }

    /// The slot of a key, with the `{tag}` rule applied.
    #[inline]
    #[must_use]
    pub fn slot(key: ShardKey<'_>) -> u16 {
        let crc = match key {
            ShardKey::Bytes(b) => crc16(tag_bytes(b)),
            ShardKey::Int(v) => {
                let mut buf = [0u8; 20];
                crc16(decimal(v, &mut buf))
            }
        };
        crc & 0x3fff
    }

    /// The owner of `slot`.
    #[must_use]
    pub fn owner(&self, slot: u16) -> Option<ShardId> {
        let i = *self.table.get(usize::from(slot))?;
        self.shards.get(usize::from(i)).copied()
    }

    /// The whole table, `table[slot] = owner`.
    #[must_use]
    pub fn table(&self) -> Vec<ShardId> {
        self.table
            .iter()
            .map(|&i| self.shards[usize::from(i)])
            .collect()
    }

    /// Slots owned by each shard, in the order of [`shards`](ShardStrategy::shards).
    #[must_use]
    pub fn slot_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.shards.len()];
        for &i in self.table.iter() {
            counts[usize::from(i)] += 1;
        }
        counts
    }

    /// The same table with `slot` given to `shard` (which may be new).
    ///
    /// # Errors
    /// [`Error::SlotOutOfRange`].
    pub fn with_slot(&self, slot: usize, shard: ShardId) -> Result<Self> {
        let mut table = self.table();
        let entry = table
            .get_mut(slot)
            .ok_or(Error::SlotOutOfRange { slot, slots: SLOTS })?;
        *entry = shard;
        Self::from_table(&table)
    }

    /// Gives `slot` to `owner` in place: O(1) when `owner` already owns a slot or is the
    /// highest id so far, O(16,384) when a new id sorts between existing ones. A shard that
    /// loses its last slot stays in [`shards`](ShardStrategy::shards).
    ///
    /// # Errors
    /// [`Error::SlotOutOfRange`]; [`Error::TooManyShards`] past 65,535 distinct owners.
    pub fn set_slot_owner(&mut self, slot: u16, owner: ShardId) -> Result<()> {
        if usize::from(slot) >= SLOTS {
            return Err(Error::SlotOutOfRange {
                slot: usize::from(slot),
                slots: SLOTS,
            });
        }
        let index = match self.shards.binary_search(&owner) {
            Ok(i) => i,
            Err(at) => {
                if self.shards.len() >= usize::from(u16::MAX) {
                    return Err(Error::TooManyShards(self.shards.len() + 1));
                }
                self.shards.insert(at, owner);
                if at + 1 < self.shards.len() {
                    // Indices at or above `at` shift up by one.
                    for entry in self.table.iter_mut() {
                        if usize::from(*entry) >= at {
                            *entry += 1;
                        }
                    }
                }
                at
            }
        };
        // `index` < 65,535 by the check above.
        self.table[usize::from(slot)] = u16::try_from(index).unwrap_or(0);
        Ok(())
    }

    /// A table over `shards` that moves as few slots as possible from this one: shards that
    /// stay keep their slots up to their new even share, removed shards give up all of theirs,
    /// and new shards receive exactly their share. Going from 4 to 5 shards moves 20% of the
    /// slots, all of them to the new shard.
    ///
    /// # Errors
    /// [`Error::EmptyShardSet`], [`Error::DuplicateShard`], [`Error::TooManyShards`].
    pub fn rebalanced<I: IntoIterator<Item = ShardId>>(&self, shards: I) -> Result<Self> {
        let new_shards = sorted_unique(shards.into_iter().collect())?;
        if new_shards.len() > SLOTS {
            return Err(Error::TooManyShards(new_shards.len()));
        }
        let n = new_shards.len();
        // Target counts: the first SLOTS % n shards get one extra slot.
        let target = |i: usize| SLOTS / n + usize::from(i < SLOTS % n);
        let mut table = self.table();
        let mut kept = vec![0usize; n];
        let mut free = Vec::new();
        for (slot, owner) in table.iter().enumerate() {
            match new_shards.binary_search(owner) {
                Ok(i) if kept[i] < target(i) => kept[i] += 1,
                _ => free.push(slot),
            }
        }
        let mut free = free.into_iter();
        for (i, &shard) in new_shards.iter().enumerate() {
            for _ in kept[i]..target(i) {
                if let Some(slot) = free.next() {
                    table[slot] = shard;
                }
            }
        }
        Self::from_table(&table)
    }
}

impl ShardStrategy for HashSlots {
    #[inline]
    fn shard_of(&self, key: ShardKey<'_>) -> ShardId {
        let slot = usize::from(Self::slot(key));
        // The table has SLOTS entries and every entry indexes `shards`.
        self.shards[usize::from(self.table[slot])]
    }

    fn shards(&self) -> &[ShardId] {
        &self.shards
    }

    fn name(&self) -> &'static str {
        "hash-slots"
    }

    fn slot_of(&self, key: ShardKey<'_>) -> Option<u16> {
        Some(Self::slot(key))
    }

    fn as_hash_slots(&self) -> Option<&HashSlots> {
        Some(self)
    }
}

impl std::fmt::Debug for HashSlots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HashSlots")
            .field("shards", &self.shards)
            .finish_non_exhaustive()
    }
}

/// CRC-16/XMODEM (polynomial 0x1021, initial value 0, no reflection), the checksum Redis
/// Cluster uses for key slots. `crc16(b"123456789") == 0x31C3`.
///
/// Two bytes per step with two tables ("slicing by 2"): CRC is linear, so the effect of a pair
/// of bytes is the XOR of two independent lookups, which halves the chain of dependent loads of
/// the textbook byte-at-a-time loop.
#[must_use]
pub fn crc16(bytes: &[u8]) -> u16 {
    let mut crc = 0u16;
    let mut pairs = bytes.chunks_exact(2);
    for pair in &mut pairs {
        let [hi, lo] = crc.to_be_bytes();
        crc = CRC16_TABLE2[usize::from(hi ^ pair[0])] ^ CRC16_TABLE[usize::from(lo ^ pair[1])];
    }
    if let [last] = pairs.remainder() {
        crc = crc16_byte(crc, *last);
    }
    crc
}

/// One byte of CRC-16/XMODEM.
#[inline]
fn crc16_byte(crc: u16, byte: u8) -> u16 {
    let [hi, _] = crc.to_be_bytes();
    (crc << 8) ^ CRC16_TABLE[usize::from(hi ^ byte)]
}

/// `CRC16_TABLE[x]`: the CRC state after feeding byte `x` into a state of zero.
const CRC16_TABLE: [u16; 256] = {
    let mut table = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        // `i < 256`; `From` is not usable in a const context.
        #[allow(clippy::cast_possible_truncation)]
        let mut crc = (i as u16) << 8;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

/// `CRC16_TABLE2[x]`: the state after a high byte `x` is followed by one more (zero) byte.
const CRC16_TABLE2: [u16; 256] = {
    let mut table = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        let t = CRC16_TABLE[i];
        table[i] = (t << 8) ^ CRC16_TABLE[(t >> 8) as usize];
        i += 1;
    }
    table
};

/// Writes `v` in decimal into the end of `buf` and returns the digits.
fn decimal(mut v: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut at = buf.len();
    loop {
        at -= 1;
        // A digit is < 10.
        buf[at] = b'0' + u8::try_from(v % 10).unwrap_or(0);
        v /= 10;
        if v == 0 {
            break;
        }
    }
    &buf[at..]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The textbook bitwise CRC, as the reference for the table-driven one.
    fn crc16_bitwise(bytes: &[u8]) -> u16 {
        let mut crc = 0u16;
        for &b in bytes {
            crc ^= u16::from(b) << 8;
            for _ in 0..8 {
                crc = if crc & 0x8000 != 0 {
                    (crc << 1) ^ 0x1021
                } else {
                    crc << 1
                };
            }
        }
        crc
    }

    #[test]
    fn sliced_crc_matches_the_bitwise_definition() {
        assert_eq!(crc16(b"123456789"), 0x31C3);
        let mut x = 0x1234_5678_u64;
        for len in 0..64 {
            for _ in 0..50 {
                let bytes: Vec<u8> = (0..len)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        x.to_le_bytes()[0]
                    })
                    .collect();
                assert_eq!(crc16(&bytes), crc16_bitwise(&bytes), "{bytes:?}");
            }
        }
    }

    #[test]
    fn decimal_digits() {
        let mut buf = [0; 20];
        assert_eq!(decimal(0, &mut buf), b"0");
        assert_eq!(decimal(42, &mut buf), b"42");
        assert_eq!(decimal(u64::MAX, &mut buf), u64::MAX.to_string().as_bytes());
    }

    #[test]
    fn even_split_matches_redis_cli_thirds() {
        let s = HashSlots::even((0..3).map(ShardId)).expect("valid");
        // redis-cli assigns 0-5460, 5461-10922, 10923-16383 for three masters.
        assert_eq!(s.owner(5460), Some(ShardId(0)));
        assert_eq!(s.owner(5461), Some(ShardId(1)));
        assert_eq!(s.owner(10922), Some(ShardId(1)));
        assert_eq!(s.owner(10923), Some(ShardId(2)));
    }
}
