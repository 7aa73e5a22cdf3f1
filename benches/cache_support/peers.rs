//! One small interface over tierkit's caches and the peers, so each bench body is written once and
//! monomorphised per cache (no dynamic dispatch in the timed loop).

use std::hash::{BuildHasher, Hasher};

/// A single-owner cache of `u64 -> u64`.
pub(crate) trait Ops {
    fn get(&mut self, key: u64) -> Option<u64>;
    fn insert(&mut self, key: u64, value: u64);
    fn len(&self) -> usize;
}

/// A shared (`&self`) cache of `u64 -> u64`.
pub(crate) trait SharedOps: Sync {
    fn get(&self, key: u64) -> Option<u64>;
    fn insert(&self, key: u64, value: u64);
}

/// Any tierkit single-owner cache, through the shared `Cache` trait.
pub(crate) struct Tk<C>(pub(crate) C);

impl<C: tierkit::cache::Cache<u64, u64>> Ops for Tk<C> {
    #[inline]
    fn get(&mut self, key: u64) -> Option<u64> {
        self.0.get(&key).copied()
    }
    #[inline]
    fn insert(&mut self, key: u64, value: u64) {
        self.0.insert(key, value);
    }
    fn len(&self) -> usize {
        self.0.len()
    }
}

impl<S: BuildHasher> Ops for lru::LruCache<u64, u64, S> {
    #[inline]
    fn get(&mut self, key: u64) -> Option<u64> {
        lru::LruCache::get(self, &key).copied()
    }
    #[inline]
    fn insert(&mut self, key: u64, value: u64) {
        self.put(key, value);
    }
    fn len(&self) -> usize {
        lru::LruCache::len(self)
    }
}

impl Ops for quick_cache::unsync::Cache<u64, u64> {
    #[inline]
    fn get(&mut self, key: u64) -> Option<u64> {
        quick_cache::unsync::Cache::get(self, &key).copied()
    }
    #[inline]
    fn insert(&mut self, key: u64, value: u64) {
        quick_cache::unsync::Cache::insert(self, key, value);
    }
    fn len(&self) -> usize {
        quick_cache::unsync::Cache::len(self)
    }
}

impl<P, S> SharedOps for tierkit::cache::ConcurrentCache<u64, u64, P, S>
where
    P: tierkit::cache::CachePolicy<u64, u64, S> + Send,
    S: BuildHasher + Clone + Send + Sync,
{
    #[inline]
    fn get(&self, key: u64) -> Option<u64> {
        tierkit::cache::ConcurrentCache::get(self, &key)
    }
    #[inline]
    fn insert(&self, key: u64, value: u64) {
        tierkit::cache::ConcurrentCache::insert(self, key, value);
    }
}

impl SharedOps for quick_cache::sync::Cache<u64, u64> {
    #[inline]
    fn get(&self, key: u64) -> Option<u64> {
        quick_cache::sync::Cache::get(self, &key)
    }
    #[inline]
    fn insert(&self, key: u64, value: u64) {
        quick_cache::sync::Cache::insert(self, key, value);
    }
}

impl SharedOps for moka::sync::Cache<u64, u64> {
    #[inline]
    fn get(&self, key: u64) -> Option<u64> {
        moka::sync::Cache::get(self, &key)
    }
    #[inline]
    fn insert(&self, key: u64, value: u64) {
        moka::sync::Cache::insert(self, key, value);
    }
}

/// The same fast, non-keyed hasher for both sides of a "same hasher" comparison: one
/// multiply-rotate round per word, in the style of rustc's FxHash. Only for trusted keys.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct FxBuild;

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Fx(u64);

const FX_SEED: u64 = 0xf135_7aea_2e62_a9c5;

impl Hasher for Fx {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }
    #[inline]
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(FX_SEED).rotate_left(26);
    }
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

impl BuildHasher for FxBuild {
    type Hasher = Fx;
    #[inline]
    fn build_hasher(&self) -> Fx {
        Fx(0)
    }
}
