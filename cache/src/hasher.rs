//! The caches' hashers: [`SipHashBuilder`], the default (keyed SipHash-1-3, for keys that
//! attackers may choose), and [`FastHashBuilder`], an opt-in fast hasher for keys they do not.

use std::fmt;
use std::hash::{BuildHasher, Hasher, RandomState};

/// `Debug` (naming no state) and a `Hasher` that forwards every method to the wrapped hasher
/// (`.0`), for the public newtypes that keep the implementing crates out of this crate's API.
macro_rules! forward_hasher {
    ($name:ident) => {
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name)).finish_non_exhaustive()
            }
        }

        impl Hasher for $name {
            #[inline]
            fn finish(&self) -> u64 {
                self.0.finish()
            }

            #[inline]
            fn write(&mut self, bytes: &[u8]) {
                self.0.write(bytes);
            }

            #[inline]
            fn write_u8(&mut self, i: u8) {
                self.0.write_u8(i);
            }

            #[inline]
            fn write_u16(&mut self, i: u16) {
                self.0.write_u16(i);
            }

            #[inline]
            fn write_u32(&mut self, i: u32) {
                self.0.write_u32(i);
            }

            #[inline]
            fn write_u64(&mut self, i: u64) {
                self.0.write_u64(i);
            }

            #[inline]
            fn write_u128(&mut self, i: u128) {
                self.0.write_u128(i);
            }

            #[inline]
            fn write_usize(&mut self, i: usize) {
                self.0.write_usize(i);
            }
        }
    };
}

/// The caches' default hasher: keyed SipHash-1-3 (the [`siphasher`](https://docs.rs/siphasher)
/// crate), which keeps an attacker who chooses keys (user names, URLs, header values) from
/// flooding one bucket, with a random key per builder unless you give one.
///
/// The algorithm, its strength and its cost are those of the standard library's
/// [`RandomState`] (the same hashes for the same key: a test checks it against std's
/// `DefaultHasher`); what it adds is a key you can set ([`with_keys`](Self::with_keys)), so that
/// several processes place keys alike, as the workspace's hashing rule asks. On `u64` keys it
/// costs about 80 instructions per operation more than [`FastHashBuilder`] (callgrind,
/// `benches/examples/cache_ops.rs`). Any [`BuildHasher`] can replace it with
/// [`CacheBuilder::hasher`](crate::CacheBuilder::hasher).
///
/// Clones hash alike (they share the key), which a [`ConcurrentCache`](crate::ConcurrentCache)
/// relies on to hash each key once for the shard and the shard's table.
///
/// # Examples
///
/// ```
/// use std::hash::BuildHasher;
/// use tierkit_cache::SipHashBuilder;
///
/// // Random keys: two builders disagree (as two processes would).
/// let (a, b) = (SipHashBuilder::new(), SipHashBuilder::new());
/// assert_ne!(a.hash_one(7u64), b.hash_one(7u64));
///
/// // A fixed key: the same hashes in every process (keep such a key secret).
/// let k = SipHashBuilder::with_keys(0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210);
/// assert_eq!(k.hash_one(7u64), k.clone().hash_one(7u64));
/// ```
#[derive(Clone)]
pub struct SipHashBuilder {
    k0: u64,
    k1: u64,
}

impl SipHashBuilder {
    /// A builder with a fresh random key, derived from the standard library's per-thread OS
    /// entropy (the keys of a new [`RandomState`], passed through SipHash itself, so builders
    /// made one after the other get unrelated keys).
    #[must_use]
    pub fn new() -> Self {
        let random = RandomState::new();
        Self {
            k0: random.hash_one(0x7469_6572_6b69_7430_u64),
            k1: random.hash_one(0x7469_6572_6b69_7431_u64),
        }
    }

    /// A builder with the given 128-bit key: hashes are the same in every process that uses
    /// it. Keep the key secret if attackers choose keys.
    #[must_use]
    pub const fn with_keys(k0: u64, k1: u64) -> Self {
        Self { k0, k1 }
    }
}

impl Default for SipHashBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for SipHashBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The key stays out of logs.
        f.debug_struct("SipHashBuilder").finish_non_exhaustive()
    }
}

impl BuildHasher for SipHashBuilder {
    type Hasher = SipHasher;

    #[inline]
    fn build_hasher(&self) -> SipHasher {
        SipHasher(siphasher::sip::SipHasher13::new_with_keys(self.k0, self.k1))
    }
}

/// The [`Hasher`] of a [`SipHashBuilder`]: SipHash-1-3.
pub struct SipHasher(siphasher::sip::SipHasher13);

forward_hasher!(SipHasher);

/// A fast, non-cryptographic hasher (currently [foldhash](https://docs.rs/foldhash)'s `fast`
/// variant, the default of `hashbrown`, `lru` and `quick_cache`), seeded randomly per instance.
///
/// The caches hash with [`SipHashBuilder`] by default: keyed SipHash-1-3, which keeps an
/// attacker who chooses keys from flooding one bucket. That safety costs about 80 instructions
/// per operation on `u64` keys over this hasher, a large part of a hit. When keys are not chosen by an
/// adversary (internal ids, sequence numbers), opt into this hasher with
/// [`CacheBuilder::hasher`](crate::CacheBuilder::hasher). foldhash resists only the simplest
/// collision attacks; do not use it for untrusted keys.
///
/// Clones hash alike (they share the seed), which a [`ConcurrentCache`](crate::ConcurrentCache)
/// relies on to hash each key once for the shard and the shard's table.
///
/// # Examples
///
/// ```
/// use tierkit_cache::{Cache, CacheBuilder, ConcurrentCache, FastHashBuilder, LruCache};
///
/// let mut local: LruCache<u64, String, FastHashBuilder> =
///     CacheBuilder::new(1_000).hasher(FastHashBuilder::new()).build()?;
/// local.insert(7, "seven".to_string());
///
/// let shared: ConcurrentCache<u64, u64, LruCache<u64, u64, FastHashBuilder>, FastHashBuilder> =
///     ConcurrentCache::with_builder(&CacheBuilder::new(1_000).hasher(FastHashBuilder::new()))?;
/// shared.insert(7, 49);
/// assert_eq!(shared.get(&7), Some(49));
/// # Ok::<(), tierkit_cache::Error>(())
/// ```
#[derive(Clone, Default)]
pub struct FastHashBuilder(hashbrown::DefaultHashBuilder);

impl FastHashBuilder {
    /// A builder with a fresh random seed.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }
}

impl fmt::Debug for FastHashBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FastHashBuilder").finish_non_exhaustive()
    }
}

impl BuildHasher for FastHashBuilder {
    type Hasher = FastHasher;

    #[inline]
    fn build_hasher(&self) -> FastHasher {
        FastHasher(self.0.build_hasher())
    }
}

/// The [`Hasher`] of a [`FastHashBuilder`].
pub struct FastHasher(<hashbrown::DefaultHashBuilder as BuildHasher>::Hasher);

forward_hasher!(FastHasher);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_hash_alike_and_instances_differ() {
        let a = FastHashBuilder::new();
        let b = a.clone();
        assert_eq!(a.hash_one(42u64), b.hash_one(42u64));
        assert_eq!(a.hash_one("key"), b.hash_one("key"));
        // Fresh builders are seeded independently (a collision of all eight is negligible).
        let differ = (0..8u64).any(|k| FastHashBuilder::new().hash_one(k) != a.hash_one(k));
        assert!(differ);
    }

    /// The integer fast path is SipHash-1-3 of the integer's little-endian bytes: the same
    /// hash as feeding those bytes, and as the reference vector's key and message layout.
    #[test]
    fn siphash_integer_path_equals_byte_path_and_the_reference() {
        let b = SipHashBuilder::with_keys(0x0706_0504_0302_0100, 0x0f0e_0d0c_0b0a_0908);
        for k in [0u64, 1, 0xdead_beef, u64::MAX] {
            let mut bytes = b.build_hasher();
            bytes.write(&k.to_le_bytes());
            let mut int = b.build_hasher();
            int.write_u64(k);
            assert_eq!(int.finish(), bytes.finish());
            // `u64: Hash` takes the integer path.
            assert_eq!(b.hash_one(k), bytes.finish());
        }
        // An independent implementation: std's `DefaultHasher::new()` is SipHash-1-3 with
        // the key (0, 0) (its algorithm is not promised; if std changes it, this comparison
        // fails loudly rather than passing wrongly).
        let zero = SipHashBuilder::with_keys(0, 0);
        for msg in [&b""[..], b"a", b"tierkit", b"0123456789abcdefXYZ"] {
            let mut std = std::hash::DefaultHasher::new();
            std.write(msg);
            let mut ours = zero.build_hasher();
            ours.write(msg);
            assert_eq!(ours.finish(), std.finish(), "{msg:?}");
        }
        for k in [0u64, 42, u64::MAX] {
            let mut std = std::hash::DefaultHasher::new();
            std.write_u64(k);
            assert_eq!(zero.hash_one(k), std.finish());
        }
        let random = SipHashBuilder::new();
        assert_ne!(random.hash_one(1u64), SipHashBuilder::new().hash_one(1u64));
        assert_eq!(random.hash_one("key"), random.clone().hash_one("key"));
    }
}
