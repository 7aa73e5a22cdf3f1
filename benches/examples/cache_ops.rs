//! One thread replaying the `concurrent/mixed_90_10` stream (Zipf 0.9 over 100,000 keys into a
//! 10,000-entry cache, 9 `get` for 1 `insert`) through one cache, for instruction counts:
//!
//! ```text
//! cargo build --release -p tierkit-benches --example cache_ops
//! valgrind --tool=callgrind target/release/examples/cache_ops default 1000000
//! ```
//!
//! Counts are repeatable whatever else the machine runs, unlike timings. The first argument
//! names the cache (`default`, `tinylfu_fast`, `lru`, `lru_fast`, `quick_cache`,
//! `quick_cache_sip`), the second the operations timed after one warm-up pass (the warm-up
//! is counted too: subtract a run with 0).

use std::hash::BuildHasher;
use std::hint::black_box;

use tierkit::cache::{
    CacheBuilder, ConcurrentCache, FastHashBuilder, LruCache, SipHashBuilder, TinyLfuCache,
};
use tierkit_testkit as workload;

const CAP: u64 = 10_000;
const CAP_USIZE: usize = 10_000;
const STREAM: usize = 1 << 16;

trait Shared {
    fn get(&self, k: u64) -> Option<u64>;
    fn insert(&self, k: u64, v: u64);
}

impl<P, S> Shared for ConcurrentCache<u64, u64, P, S>
where
    P: tierkit::cache::CachePolicy<u64, u64, S>,
    S: BuildHasher + Clone + Send + Sync + 'static,
{
    fn get(&self, k: u64) -> Option<u64> {
        ConcurrentCache::get(self, &k)
    }
    fn insert(&self, k: u64, v: u64) {
        ConcurrentCache::insert(self, k, v);
    }
}

impl<S: BuildHasher + Clone> Shared
    for quick_cache::sync::Cache<u64, u64, quick_cache::UnitWeighter, S>
{
    fn get(&self, k: u64) -> Option<u64> {
        quick_cache::sync::Cache::get(self, &k)
    }
    fn insert(&self, k: u64, v: u64) {
        quick_cache::sync::Cache::insert(self, k, v);
    }
}

fn run(cache: &dyn Shared, keys: &[u64], ops: u64) {
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

fn main() {
    let mut args = std::env::args().skip(1);
    let which = args.next().unwrap_or_else(|| "default".into());
    let ops: u64 = args
        .next()
        .map_or(1_000_000, |s| s.parse().expect("a count"));
    let keys = workload::zipf_keys(100_000, 0.9, STREAM, 0xc0c0);
    let fast = || {
        CacheBuilder::new(CAP)
            .hasher(FastHashBuilder::new())
            .count_lookups(false)
    };
    let cache: Box<dyn Shared> = match which.as_str() {
        "default" => Box::new(
            ConcurrentCache::<u64, u64>::builder()
                .max_capacity(CAP)
                .build()
                .expect("valid"),
        ),
        "tinylfu_fast" => Box::new(
            ConcurrentCache::<u64, u64, TinyLfuCache<u64, u64, _>, _>::with_builder(&fast())
                .expect("valid"),
        ),
        "lru" => {
            Box::new(ConcurrentCache::<u64, u64, LruCache<u64, u64>>::new(CAP).expect("valid"))
        }
        "lru_fast" => Box::new(
            ConcurrentCache::<u64, u64, LruCache<u64, u64, _>, _>::with_builder(&fast())
                .expect("valid"),
        ),
        "quick_cache" => Box::new(quick_cache::sync::Cache::<u64, u64>::new(CAP_USIZE)),
        "quick_cache_sip" => Box::new(quick_cache::sync::Cache::with(
            CAP_USIZE,
            CAP,
            quick_cache::UnitWeighter,
            SipHashBuilder::new(),
            quick_cache::sync::DefaultLifecycle::default(),
        )),
        other => panic!("unknown cache {other}"),
    };
    run(&*cache, &keys, STREAM as u64);
    run(&*cache, &keys, ops);
}
