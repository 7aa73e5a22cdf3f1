//! [`KeyHasher`]: keyed SipHash over a [`Key`]'s bytes.

use std::hash::Hasher;

use siphasher::sip::SipHasher13;

use crate::Key;

/// Hashes keys and nodes with SipHash-1-3 under a 128-bit secret, the same way on every process.
///
/// Placement must be deterministic (a fleet of app servers has to agree on where a key lives)
/// yet not predictable by someone who chooses keys (or they can aim all their keys at one node).
/// Keyed SipHash gives both: give every process of a fleet the same secret and keep it out of
/// reach of clients. SipHash-1-3 is the variant Rust's standard library uses for `HashMap`; it
/// is about twice as fast as SipHash-2-4 on short keys and still keyed.
///
/// The default secret ([`KeyHasher::DEFAULT`]) is fixed and public:
/// `k0 = 0x7469_6572_6b69_7421` (`"tierkit!"`), `k1 = 0x636f_6e73_6973_7421` (`"consist!"`).
/// It keeps placement stable for users who never configure one, but it is public: a service
/// whose keys come from untrusted clients should use [`KeyHasher::with_secret`] with a
/// secret of its own.
///
/// # Examples
///
/// ```
/// use tierkit_consistent_hash::KeyHasher;
///
/// let fleet = KeyHasher::with_secret(0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210);
/// // The same bytes hash the same whatever their type.
/// assert_eq!(fleet.hash("abc"), fleet.hash(&b"abc"[..]));
/// // A different secret places keys differently.
/// assert_ne!(fleet.hash("abc"), KeyHasher::DEFAULT.hash("abc"));
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct KeyHasher {
    k0: u64,
    k1: u64,
}

impl KeyHasher {
    /// The documented default secret; see the type's docs.
    pub const DEFAULT: KeyHasher = KeyHasher {
        k0: 0x7469_6572_6b69_7421,
        k1: 0x636f_6e73_6973_7421,
    };

    /// A hasher keyed with a 128-bit secret given as two words.
    #[must_use]
    pub const fn with_secret(k0: u64, k1: u64) -> Self {
        KeyHasher { k0, k1 }
    }

    /// The secret, as given to [`with_secret`](Self::with_secret).
    #[must_use]
    pub const fn secret(&self) -> (u64, u64) {
        (self.k0, self.k1)
    }

    /// SipHash-1-3 of the key's bytes under this hasher's secret.
    #[inline]
    #[must_use]
    pub fn hash<K: Key + ?Sized>(&self, key: &K) -> u64 {
        let mut state = SipHasher13::new_with_keys(self.k0, self.k1);
        key.write_key(&mut state);
        state.finish()
    }

    /// SipHash-1-3 of the key's bytes followed by `suffix` in little-endian: how ring points and
    /// Maglev permutations derive many independent hashes from one node.
    #[inline]
    pub(crate) fn hash_with_suffix<K: Key + ?Sized>(&self, key: &K, suffix: u32) -> u64 {
        let mut state = SipHasher13::new_with_keys(self.k0, self.k1);
        key.write_key(&mut state);
        state.write(&suffix.to_le_bytes());
        state.finish()
    }
}

impl Default for KeyHasher {
    fn default() -> Self {
        KeyHasher::DEFAULT
    }
}

impl std::fmt::Debug for KeyHasher {
    // The secret is a secret: never print it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let default = *self == KeyHasher::DEFAULT;
        f.debug_struct("KeyHasher")
            .field("default_secret", &default)
            .finish_non_exhaustive()
    }
}

/// A 64-bit finaliser (the one from MurmurHash3): a bijection that spreads every input bit over
/// every output bit. Combines two already keyed hashes cheaply where a second SipHash per pair
/// would cost too much (rendezvous scores a key against every node).
#[inline]
pub(crate) fn mix64(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^= x >> 33;
    x
}

/// Maps a hash uniformly onto `0..n` without a division (Lemire's multiply-shift).
#[inline]
#[allow(clippy::cast_possible_truncation)] // the high half is < n, which is a usize
pub(crate) fn reduce(hash: u64, n: usize) -> usize {
    ((u128::from(hash) * n as u128) >> 64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_secret() {
        let s = format!("{:?}", KeyHasher::with_secret(42, 43));
        assert!(!s.contains("42"), "{s}");
        assert!(s.contains("default_secret: false"));
    }

    #[test]
    fn suffix_is_appended_bytes() {
        let h = KeyHasher::DEFAULT;
        let mut joined = b"node".to_vec();
        joined.extend_from_slice(&7u32.to_le_bytes());
        assert_eq!(h.hash_with_suffix("node", 7), h.hash(&joined));
    }

    #[test]
    fn reduce_stays_in_range() {
        for n in [1usize, 2, 3, 1000] {
            assert!(reduce(u64::MAX, n) < n);
            assert_eq!(reduce(0, n), 0);
        }
    }
}
