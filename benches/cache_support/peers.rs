//! One small interface over tierkit's caches and the peers, so each bench body is written once and
//! monomorphised per cache (no dynamic dispatch in the timed loop).

use std::hash::BuildHasher;
use std::hint::black_box;

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

/// quick_cache's single-owner cache with any hasher (its default is foldhash).
pub(crate) type QuickUnsync<S> = quick_cache::unsync::Cache<
    u64,
    u64,
    quick_cache::UnitWeighter,
    S,
    quick_cache::unsync::DefaultLifecycle<u64, u64>,
>;

/// quick_cache's concurrent cache with any hasher.
pub(crate) type QuickSync<S> = quick_cache::sync::Cache<
    u64,
    u64,
    quick_cache::UnitWeighter,
    S,
    quick_cache::sync::DefaultLifecycle<u64, u64>,
>;

/// A quick_cache `sync::Cache` of `capacity` entries hashing with `hasher`.
pub(crate) fn quick_sync<S: BuildHasher + Clone>(capacity: usize, hasher: S) -> QuickSync<S> {
    quick_cache::sync::Cache::with(
        capacity,
        capacity as u64,
        quick_cache::UnitWeighter,
        hasher,
        quick_cache::sync::DefaultLifecycle::default(),
    )
}

impl<S: BuildHasher> Ops for QuickUnsync<S> {
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
    P: tierkit::cache::CachePolicy<u64, u64, S> + Send + Sync,
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

impl<S: BuildHasher + Clone + Send + Sync> SharedOps for QuickSync<S> {
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

/// One thread's share of `concurrent/mixed_90_10`: `ops` operations replaying `keys` (of
/// length `STREAM`, a power of two, so the index wraps with a mask), 9 `get` for 1 `insert`.
pub(crate) fn run_mixed<C: SharedOps, const STREAM: usize>(cache: &C, keys: &[u64], ops: u64) {
    let mut i = 0;
    for n in 0..ops {
        i = (i + 1) & (STREAM - 1);
        let k = black_box(keys[i]);
        if n % 10 == 9 {
            cache.insert(k, n);
        } else {
            black_box(cache.get(k));
        }
    }
}
