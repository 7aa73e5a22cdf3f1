//! [`FastHashBuilder`]: an opt-in fast hasher for keys that attackers do not choose.

use std::fmt;
use std::hash::{BuildHasher, Hasher};

/// A fast, non-cryptographic hasher (currently [foldhash](https://docs.rs/foldhash)'s `fast`
/// variant, the default of `hashbrown`, `lru` and `quick_cache`), seeded randomly per instance.
///
/// The caches hash with the standard library's [`RandomState`](std::hash::RandomState) by
/// default: keyed SipHash-1-3, which keeps an attacker who chooses keys (user names, URLs,
/// header values) from flooding one bucket. That safety costs about 8 ns per operation on `u64`
/// keys on our benchmark machine, often the larger part of a hit. When keys are not chosen by an
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

impl fmt::Debug for FastHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FastHasher").finish_non_exhaustive()
    }
}

impl Hasher for FastHasher {
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
}
