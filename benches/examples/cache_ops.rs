//! One thread replaying the `concurrent/mixed_90_10` stream (Zipf 0.9 over 100,000 keys into a
//! 10,000-entry cache, 9 `get` for 1 `insert`) through one cache, for instruction counts:
//!
//! ```text
//! cargo build --release -p tierkit-benches --example cache_ops
//! valgrind --tool=callgrind target/release/examples/cache_ops default 200000
//! valgrind --tool=callgrind target/release/examples/cache_ops default 0
//! ```
//!
//! The difference of the two totals over 200,000 is the cost of one operation. Counts are
//! repeatable whatever else the machine runs, unlike timings. The first argument names the
//! cache (`default`, `tinylfu_fast`, `lru`, `lru_fast`, `quick_cache`, `quick_cache_sip`), the
//! second the operations after one warm-up pass over the stream. The loop is the bench's own
//! (`run_mixed`, monomorphised per cache).

// The shared bench module has items this example does not use.
#[allow(dead_code)]
#[path = "../cache_support/peers.rs"]
mod peers;

use peers::{SharedOps, quick_sync, run_mixed};
use tierkit::cache::{
    CacheBuilder, ConcurrentCache, FastHashBuilder, LruCache, SipHashBuilder, TinyLfuCache,
};
use tierkit_testkit as workload;

const CAP: usize = 10_000;
const STREAM: usize = 1 << 16;

fn replay<C: SharedOps>(cache: &C, ops: u64) {
    let keys = workload::zipf_keys(100_000, 0.9, STREAM, 0xc0c0);
    run_mixed::<C, STREAM>(cache, &keys, STREAM as u64);
    run_mixed::<C, STREAM>(cache, &keys, ops);
}

fn main() {
    let mut args = std::env::args().skip(1);
    let which = args.next().unwrap_or_else(|| "default".into());
    let ops: u64 = args
        .next()
        .map_or(Ok(1_000_000), |s| s.parse())
        .unwrap_or_else(|e| panic!("the count of operations: {e}"));
    let cap = CAP as u64;
    let fast = || {
        CacheBuilder::new(cap)
            .hasher(FastHashBuilder::new())
            .count_lookups(false)
    };
    match which.as_str() {
        "default" => replay(
            &ConcurrentCache::<u64, u64>::builder()
                .max_capacity(cap)
                .build()
                .expect("valid"),
            ops,
        ),
        "tinylfu_fast" => replay(
            &ConcurrentCache::<u64, u64, TinyLfuCache<u64, u64, _>, _>::with_builder(&fast())
                .expect("valid"),
            ops,
        ),
        "lru" => replay(
            &ConcurrentCache::<u64, u64, LruCache<u64, u64>>::new(cap).expect("valid"),
            ops,
        ),
        "lru_fast" => replay(
            &ConcurrentCache::<u64, u64, LruCache<u64, u64, _>, _>::with_builder(&fast())
                .expect("valid"),
            ops,
        ),
        "quick_cache" => replay(&quick_cache::sync::Cache::<u64, u64>::new(CAP), ops),
        "quick_cache_sip" => replay(&quick_sync(CAP, SipHashBuilder::new()), ops),
        other => panic!("unknown cache {other}"),
    }
}
