//! tierkit-cache against `lru`, `quick_cache` and `moka`, side by side on the same seeded keys.
//!
//! `cargo bench -p tierkit-benches --bench cache` (add `-- lru/` to run one group). Before criterion starts, a table
//! of heap bytes per entry (10,000 `u64 -> u64` entries, counting global allocator) is printed.
//!
//! Row names say what differs from the peer. tierkit's single-owner caches carry a default TTL
//! (1 h, so nothing expires but every lookup checks it) read from the exact `SystemClock` unless
//! the row says `coarse` (`CoarseClock`: lookups read a timestamp refreshed every millisecond);
//! `no_ttl` rows carry none. Hashers: tierkit's default is `SipHashBuilder` (keyed SipHash-1-3),
//! `lru`'s and quick_cache's is foldhash; `fast` rows give tierkit `FastHashBuilder` (foldhash),
//! the peers' own default, and `sip` rows give quick_cache tierkit's `SipHashBuilder`, so every ratio can
//! be read default against default and hasher against same hasher.
//!
//! - `lru/get_hit`: `get` of a present key in a full 10,000-entry cache.
//! - `lru/insert_evict`: `insert` of a key never seen before into the full cache (one eviction
//!   per insert).
//! - `s3fifo/*`, `fifo/*`, `lfu/*`: the same two for tierkit's other policies; quick_cache's
//!   `unsync::Cache` (an S3-FIFO-like CLOCK-Pro) sits in the `s3fifo` group.
//! - `concurrent/get_hit`: one thread's `get` of a present key through the shared lock.
//! - `concurrent/mixed_90_10/{1,2}`: 1 and 2 threads (the machine has 2 cores), each replaying its
//!   own Zipf(0.9) stream over 100,000 keys into a 10,000-entry cache: 9 `get` for 1 `insert`.
//!   Time per operation of the whole group of threads (`iter_custom`, threads started before the
//!   clock and released by a barrier). tierkit: `default` is `ConcurrentCache<u64, u64>` from
//!   `ConcurrentCache::builder()` with every setting at its default (the `DefaultPolicy`);
//!   then `ConcurrentCache` of `LruCache` and of `S3FifoCache`, default shards; peers: quick_cache `sync::Cache`, moka `sync::Cache`
//!   (SipHash); nobody carries a TTL. In these groups `fast` also means
//!   `count_lookups(false)`: quick_cache's defaults, which count no hits or misses;
//!   `fast_counted` keeps tierkit's default counting.
//! - `concurrent/read_scaling/{1,2}`: only `get`, every one a hit, each thread on its own
//!   Zipf(0.9) stream over the 10,000 present keys (cache room: 20,000), so both threads share
//!   the hot keys and their shards. Time per operation of the group: with perfect scaling the
//!   2-thread time is half the 1-thread time. tierkit `LruCache` (defaults; `fast` as above;
//!   `fast_8` and `fast_64` with 8 and 64 shards instead of the default 16 per CPU) and
//!   `S3FifoCache` shards, quick_cache and moka `sync::Cache`.
//! - `clock/*`: one reading of each clock through `Arc<dyn Clock>`: what a TTL check adds.

// Key indices and counts are small; the casts cannot truncate.
#![allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]

use std::hint::black_box;
use std::num::NonZeroUsize;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion, Throughput, criterion_group};

#[path = "cache_support/alloc.rs"]
mod alloc;
mod common;
#[path = "cache_support/peers.rs"]
mod peers;
use tierkit_testkit as workload;

use peers::{Ops, SharedOps, Tk, quick_sync, run_mixed};
use tierkit::cache::{
    CacheBuilder, CachePolicy, Clock, CoarseClock, ConcurrentCache, FastHashBuilder, FifoCache,
    LfuCache, LruCache, S3FifoCache, SipHashBuilder, SystemClock, TinyLfuCache,
};

#[global_allocator]
static ALLOC: alloc::Counting = alloc::Counting;

/// Entries held by every cache under test.
const CAP: usize = 10_000;
/// Length of the pre-generated key streams (a power of two: the index wraps with a mask).
const STREAM: usize = 1 << 16;
/// Distinct keys for the insert benches: more than any policy's memory of past keys.
const FRESH: usize = 1 << 20;

/// The default TTL tierkit's caches carry in these benches: long enough that nothing expires,
/// but every lookup still checks it.
const TTL: Duration = Duration::from_secs(3600);

/// A tierkit cache of `CAP` entries with a default TTL, with the default hasher.
fn tk<P: CachePolicy<u64, u64>>() -> Tk<P> {
    Tk(CacheBuilder::new(CAP as u64)
        .default_ttl(TTL)
        .build()
        .expect("valid config"))
}

/// [`tk`] reading lookups' time from a [`CoarseClock`].
fn tk_coarse<P: CachePolicy<u64, u64>>() -> Tk<P> {
    Tk(CacheBuilder::new(CAP as u64)
        .default_ttl(TTL)
        .clock(CoarseClock::new())
        .build()
        .expect("valid config"))
}

/// [`tk`] with the peers' hasher (foldhash), exact clock.
fn tk_fast<P: CachePolicy<u64, u64, FastHashBuilder>>() -> Tk<P> {
    Tk(CacheBuilder::new(CAP as u64)
        .default_ttl(TTL)
        .hasher(FastHashBuilder::new())
        .build()
        .expect("valid config"))
}

/// [`tk_fast`] reading lookups' time from a [`CoarseClock`].
fn tk_fast_coarse<P: CachePolicy<u64, u64, FastHashBuilder>>() -> Tk<P> {
    Tk(CacheBuilder::new(CAP as u64)
        .default_ttl(TTL)
        .clock(CoarseClock::new())
        .hasher(FastHashBuilder::new())
        .build()
        .expect("valid config"))
}

/// [`tk_fast`] without a TTL: nothing to check or schedule, like the peers.
fn tk_fast_no_ttl<P: CachePolicy<u64, u64, FastHashBuilder>>() -> Tk<P> {
    Tk(CacheBuilder::new(CAP as u64)
        .hasher(FastHashBuilder::new())
        .build()
        .expect("valid config"))
}

fn nz(n: usize) -> NonZeroUsize {
    NonZeroUsize::new(n).expect("invariant: bench sizes are non-zero")
}

/// `CAP` distinct keys that fill the cache.
fn present_keys() -> Vec<u64> {
    common::splitmix(CAP)
}

/// Lookups of present keys in a random order.
fn lookup_stream(present: &[u64]) -> Vec<u64> {
    let mut rng = workload::SplitMix64::new(0x10_0c);
    (0..STREAM)
        .map(|_| present[rng.below(CAP as u64) as usize])
        .collect()
}

/// Keys never present before: every insert misses and evicts.
fn fresh_keys() -> Vec<u64> {
    (0..FRESH as u64)
        .map(|i| workload::mix(i | 1 << 48))
        .collect()
}

fn filled<C: Ops>(mut cache: C, present: &[u64]) -> C {
    for &k in present {
        cache.insert(k, k);
    }
    cache
}

fn bench_get<C: Ops>(g: &mut BenchmarkGroup<'_, WallTime>, name: &str, cache: C, present: &[u64]) {
    let mut cache = filled(cache, present);
    let stream = lookup_stream(present);
    let mut i = 0;
    g.bench_function(name, |b| {
        b.iter(|| {
            i = (i + 1) & (STREAM - 1);
            black_box(cache.get(black_box(stream[i])))
        });
    });
}

fn bench_insert<C: Ops>(
    g: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    cache: C,
    present: &[u64],
    fresh: &[u64],
) {
    let mut cache = filled(cache, present);
    let mut i = 0;
    g.bench_function(name, |b| {
        b.iter(|| {
            i = (i + 1) & (FRESH - 1);
            cache.insert(black_box(fresh[i]), i as u64);
        });
    });
    assert!(
        cache.len() <= CAP + CAP / 10,
        "insert bench kept the cache bounded"
    );
}

/// The cost of one clock read, which a TTL check needs: the floor under a TTL-carrying `get`.
fn clock_group(c: &mut Criterion) {
    let system: Arc<dyn Clock> = Arc::new(SystemClock);
    let coarse: Arc<dyn Clock> = Arc::new(CoarseClock::new());
    let mut g = c.benchmark_group("clock");
    g.bench_function("system_now", |b| b.iter(|| black_box(&system).now_nanos()));
    g.bench_function("coarse_recent", |b| {
        b.iter(|| black_box(&coarse).recent_nanos())
    });
    g.finish();
}

fn lru_group(c: &mut Criterion) {
    let present = present_keys();
    let fresh = fresh_keys();
    let mut g = c.benchmark_group("lru/get_hit");
    g.throughput(Throughput::Elements(1));
    bench_get(&mut g, "tierkit", tk::<LruCache<_, _>>(), &present);
    bench_get(
        &mut g,
        "tierkit_coarse",
        tk_coarse::<LruCache<_, _>>(),
        &present,
    );
    let no_ttl: LruCache<u64, u64> = CacheBuilder::new(CAP as u64).build().expect("valid config");
    bench_get(&mut g, "tierkit_no_ttl", Tk(no_ttl), &present);
    bench_get(&mut g, "lru", lru::LruCache::new(nz(CAP)), &present);
    bench_get(
        &mut g,
        "tierkit_fast",
        tk_fast::<LruCache<_, _, _>>(),
        &present,
    );
    bench_get(
        &mut g,
        "tierkit_fast_coarse",
        tk_fast_coarse::<LruCache<_, _, _>>(),
        &present,
    );
    bench_get(
        &mut g,
        "tierkit_fast_no_ttl",
        tk_fast_no_ttl::<LruCache<_, _, _>>(),
        &present,
    );
    g.finish();

    let mut g = c.benchmark_group("lru/insert_evict");
    g.throughput(Throughput::Elements(1));
    bench_insert(&mut g, "tierkit", tk::<LruCache<_, _>>(), &present, &fresh);
    bench_insert(&mut g, "lru", lru::LruCache::new(nz(CAP)), &present, &fresh);
    bench_insert(
        &mut g,
        "tierkit_fast",
        tk_fast::<LruCache<_, _, _>>(),
        &present,
        &fresh,
    );
    bench_insert(
        &mut g,
        "tierkit_fast_coarse",
        tk_fast_coarse::<LruCache<_, _, _>>(),
        &present,
        &fresh,
    );
    bench_insert(
        &mut g,
        "tierkit_fast_no_ttl",
        tk_fast_no_ttl::<LruCache<_, _, _>>(),
        &present,
        &fresh,
    );
    g.finish();
}

fn s3fifo_group(c: &mut Criterion) {
    let present = present_keys();
    let fresh = fresh_keys();
    let mut g = c.benchmark_group("s3fifo/get_hit");
    g.throughput(Throughput::Elements(1));
    bench_get(&mut g, "tierkit", tk::<S3FifoCache<_, _>>(), &present);
    bench_get(
        &mut g,
        "tierkit_coarse",
        tk_coarse::<S3FifoCache<_, _>>(),
        &present,
    );
    bench_get(
        &mut g,
        "quick_cache",
        quick_cache::unsync::Cache::new(CAP),
        &present,
    );
    bench_get(
        &mut g,
        "tierkit_fast_coarse",
        tk_fast_coarse::<S3FifoCache<_, _, _>>(),
        &present,
    );
    g.finish();

    let mut g = c.benchmark_group("s3fifo/insert_evict");
    g.throughput(Throughput::Elements(1));
    bench_insert(
        &mut g,
        "tierkit",
        tk::<S3FifoCache<_, _>>(),
        &present,
        &fresh,
    );
    bench_insert(
        &mut g,
        "quick_cache",
        quick_cache::unsync::Cache::new(CAP),
        &present,
        &fresh,
    );
    bench_insert(
        &mut g,
        "tierkit_fast",
        tk_fast::<S3FifoCache<_, _, _>>(),
        &present,
        &fresh,
    );
    bench_insert(
        &mut g,
        "tierkit_fast_coarse",
        tk_fast_coarse::<S3FifoCache<_, _, _>>(),
        &present,
        &fresh,
    );
    bench_insert(
        &mut g,
        "tierkit_fast_no_ttl",
        tk_fast_no_ttl::<S3FifoCache<_, _, _>>(),
        &present,
        &fresh,
    );
    g.finish();
}

/// The tierkit-only policies: `fifo/*`, `lfu/*`.
fn other_policies(c: &mut Criterion) {
    let present = present_keys();
    let fresh = fresh_keys();
    let mut g = c.benchmark_group("fifo/get_hit");
    g.throughput(Throughput::Elements(1));
    bench_get(&mut g, "tierkit", tk::<FifoCache<_, _>>(), &present);
    bench_get(
        &mut g,
        "tierkit_coarse",
        tk_coarse::<FifoCache<_, _>>(),
        &present,
    );
    g.finish();
    let mut g = c.benchmark_group("fifo/insert_evict");
    g.throughput(Throughput::Elements(1));
    bench_insert(&mut g, "tierkit", tk::<FifoCache<_, _>>(), &present, &fresh);
    g.finish();
    let mut g = c.benchmark_group("lfu/get_hit");
    g.throughput(Throughput::Elements(1));
    bench_get(&mut g, "tierkit", tk::<LfuCache<_, _>>(), &present);
    bench_get(
        &mut g,
        "tierkit_coarse",
        tk_coarse::<LfuCache<_, _>>(),
        &present,
    );
    g.finish();
    let mut g = c.benchmark_group("lfu/insert_evict");
    g.throughput(Throughput::Elements(1));
    bench_insert(&mut g, "tierkit", tk::<LfuCache<_, _>>(), &present, &fresh);
    g.finish();
}

/// Per-thread streams for the mixed bench: Zipf(0.9) keys over 100,000 ids, a distinct seed per
/// thread; every tenth operation is an insert.
fn mixed_streams(threads: usize) -> Vec<Vec<u64>> {
    (0..threads)
        .map(|t| workload::zipf_keys(100_000, 0.9, STREAM, 0xc0c0 + t as u64))
        .collect()
}

fn bench_mixed<C: SharedOps>(
    g: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    threads: usize,
    cache: &C,
    streams: &[Vec<u64>],
) {
    // Warm the cache to its steady state before any timing.
    for s in streams {
        run_mixed::<C, STREAM>(cache, s, STREAM as u64);
    }
    bench_threads(g, name, threads, cache, streams, run_mixed::<C, STREAM>);
}

/// Only lookups (`read_scaling`).
fn run_reads<C: SharedOps>(cache: &C, keys: &[u64], ops: u64) {
    let mut i = 0;
    for _ in 0..ops {
        i = (i + 1) & (STREAM - 1);
        black_box(cache.get(black_box(keys[i])));
    }
}

/// Times `run` on `threads` threads, each on its own stream, per operation of the group.
fn bench_threads<C: SharedOps>(
    g: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    threads: usize,
    cache: &C,
    streams: &[Vec<u64>],
    run: fn(&C, &[u64], u64),
) {
    g.bench_function(BenchmarkId::new(name, threads), |b| {
        b.iter_custom(|iters| {
            let per = iters.div_ceil(threads as u64);
            let start = Barrier::new(threads + 1);
            std::thread::scope(|scope| {
                for keys in &streams[..threads] {
                    let start = &start;
                    scope.spawn(move || {
                        start.wait();
                        run(cache, keys, per);
                    });
                }
                start.wait();
                let t = Instant::now();
                // Leaving the scope joins every thread.
                t
            })
            .elapsed()
            .mul_f64(iters as f64 / (per * threads as u64) as f64)
        });
    });
}

/// A tierkit `ConcurrentCache` of `CAP` entries with its default shard count and hasher.
fn concurrent<P: CachePolicy<u64, u64>>() -> ConcurrentCache<u64, u64, P> {
    ConcurrentCache::new(CAP as u64).expect("valid config")
}

/// The same with quick_cache's defaults: its hasher (foldhash) and no hit/miss counters.
fn concurrent_fast<P>() -> ConcurrentCache<u64, u64, P, FastHashBuilder>
where
    P: CachePolicy<u64, u64, FastHashBuilder>,
{
    let builder = CacheBuilder::new(CAP as u64)
        .hasher(FastHashBuilder::new())
        .count_lookups(false);
    ConcurrentCache::with_builder(&builder).expect("valid config")
}

/// [`concurrent_fast`] still counting hits and misses (what the counters cost).
fn concurrent_fast_counted<P>() -> ConcurrentCache<u64, u64, P, FastHashBuilder>
where
    P: CachePolicy<u64, u64, FastHashBuilder>,
{
    ConcurrentCache::with_builder(&CacheBuilder::new(CAP as u64).hasher(FastHashBuilder::new()))
        .expect("valid config")
}

/// One thread's `get` of present keys through the shared lock (`CAP` entries in a cache of twice
/// that, so uneven shards evict nothing): the lock's cost over a single-owner hit.
fn concurrent_get_group(c: &mut Criterion) {
    fn run<C: SharedOps>(
        g: &mut BenchmarkGroup<'_, WallTime>,
        name: &str,
        cache: &C,
        present: &[u64],
    ) {
        for &k in present {
            cache.insert(k, k);
        }
        let stream = lookup_stream(present);
        let mut i = 0;
        g.bench_function(name, |b| {
            b.iter(|| {
                i = (i + 1) & (STREAM - 1);
                black_box(cache.get(black_box(stream[i])))
            });
        });
    }
    let present = present_keys();
    let room = || CacheBuilder::new(2 * CAP as u64);
    let mut g = c.benchmark_group("concurrent/get_hit");
    g.throughput(Throughput::Elements(1));
    let lru: ConcurrentCache<u64, u64, LruCache<u64, u64>> =
        ConcurrentCache::with_builder(&room()).expect("valid config");
    run(&mut g, "tierkit_lru", &lru, &present);
    let qc_sip = quick_sync(2 * CAP, SipHashBuilder::new());
    run(&mut g, "quick_cache_sip", &qc_sip, &present);
    let fast: ConcurrentCache<u64, u64, LruCache<u64, u64, _>, _> =
        ConcurrentCache::with_builder(&room().hasher(FastHashBuilder::new()).count_lookups(false))
            .expect("valid config");
    run(&mut g, "tierkit_lru_fast", &fast, &present);
    let counted: ConcurrentCache<u64, u64, LruCache<u64, u64, _>, _> =
        ConcurrentCache::with_builder(&room().hasher(FastHashBuilder::new()))
            .expect("valid config");
    run(&mut g, "tierkit_lru_fast_counted", &counted, &present);
    let qc = quick_cache::sync::Cache::<u64, u64>::new(2 * CAP);
    run(&mut g, "quick_cache", &qc, &present);
    g.finish();
}

fn concurrent_group(c: &mut Criterion) {
    let streams = mixed_streams(2);
    let mut g = c.benchmark_group("concurrent/mixed_90_10");
    g.throughput(Throughput::Elements(1));
    for threads in [1, 2] {
        // Every setting at its default, as `ConcurrentCache::builder()` makes it.
        let default: ConcurrentCache<u64, u64> = ConcurrentCache::builder()
            .max_capacity(CAP as u64)
            .build()
            .expect("valid config");
        bench_mixed(&mut g, "tierkit_default", threads, &default, &streams);
        let lru = concurrent::<LruCache<u64, u64>>();
        bench_mixed(&mut g, "tierkit_lru", threads, &lru, &streams);
        let s3 = concurrent::<S3FifoCache<u64, u64>>();
        bench_mixed(&mut g, "tierkit_s3fifo", threads, &s3, &streams);
        // The default policy (`ConcurrentCache<K, V>`), default hasher and counters, and like
        // for like (foldhash, no counters).
        let tiny = concurrent::<TinyLfuCache<u64, u64>>();
        bench_mixed(&mut g, "tierkit_tinylfu", threads, &tiny, &streams);
        let tiny_fast = concurrent_fast::<TinyLfuCache<u64, u64, _>>();
        bench_mixed(
            &mut g,
            "tierkit_tinylfu_fast",
            threads,
            &tiny_fast,
            &streams,
        );
        let qc_sip = quick_sync(CAP, SipHashBuilder::new());
        bench_mixed(&mut g, "quick_cache_sip", threads, &qc_sip, &streams);
        let lru_fast = concurrent_fast::<LruCache<u64, u64, _>>();
        bench_mixed(&mut g, "tierkit_lru_fast", threads, &lru_fast, &streams);
        let s3_fast = concurrent_fast::<S3FifoCache<u64, u64, _>>();
        bench_mixed(&mut g, "tierkit_s3fifo_fast", threads, &s3_fast, &streams);
        let counted = concurrent_fast_counted::<LruCache<u64, u64, _>>();
        bench_mixed(
            &mut g,
            "tierkit_lru_fast_counted",
            threads,
            &counted,
            &streams,
        );
        let qc = quick_cache::sync::Cache::<u64, u64>::new(CAP);
        bench_mixed(&mut g, "quick_cache", threads, &qc, &streams);
        let moka = moka::sync::Cache::<u64, u64>::new(CAP as u64);
        bench_mixed(&mut g, "moka", threads, &moka, &streams);
    }
    g.finish();
}

/// Reads only, 1 and 2 threads: does lookup throughput grow with threads? Each thread looks up
/// its own Zipf(0.9) stream over the `CAP` present keys (every lookup hits) of a cache with room
/// for twice as many, so the hot keys, and their shards, are the same for both threads.
fn read_scaling_group(c: &mut Criterion) {
    let present = present_keys();
    let streams: Vec<Vec<u64>> = (0..2)
        .map(|t| {
            let zipf = workload::Zipf::new(CAP, 0.9);
            let mut rng = workload::SplitMix64::new(0x5ca1e + t);
            (0..STREAM)
                .map(|_| present[zipf.sample(&mut rng) as usize])
                .collect()
        })
        .collect();
    fn fill<C: SharedOps>(cache: C, present: &[u64]) -> C {
        for &k in present {
            cache.insert(k, k);
        }
        cache
    }
    let room = || CacheBuilder::new(2 * CAP as u64);
    let mut g = c.benchmark_group("concurrent/read_scaling");
    g.throughput(Throughput::Elements(1));
    for threads in [1, 2] {
        let lru: ConcurrentCache<u64, u64, LruCache<u64, u64>> = fill(
            ConcurrentCache::with_builder(&room()).expect("valid config"),
            &present,
        );
        bench_threads(&mut g, "tierkit_lru", threads, &lru, &streams, run_reads);
        let fast: ConcurrentCache<u64, u64, LruCache<u64, u64, _>, _> = fill(
            ConcurrentCache::with_builder(
                &room().hasher(FastHashBuilder::new()).count_lookups(false),
            )
            .expect("valid config"),
            &present,
        );
        bench_threads(
            &mut g,
            "tierkit_lru_fast",
            threads,
            &fast,
            &streams,
            run_reads,
        );
        for shards in [8usize, 64] {
            let many: ConcurrentCache<u64, u64, LruCache<u64, u64, _>, _> = fill(
                ConcurrentCache::with_builder(
                    &room()
                        .hasher(FastHashBuilder::new())
                        .count_lookups(false)
                        .shards(shards),
                )
                .expect("valid config"),
                &present,
            );
            let name = format!("tierkit_lru_fast_{shards}");
            bench_threads(&mut g, &name, threads, &many, &streams, run_reads);
        }
        let s3: ConcurrentCache<u64, u64, S3FifoCache<u64, u64>> = fill(
            ConcurrentCache::with_builder(&room()).expect("valid config"),
            &present,
        );
        bench_threads(&mut g, "tierkit_s3fifo", threads, &s3, &streams, run_reads);
        let qc = fill(quick_cache::sync::Cache::<u64, u64>::new(2 * CAP), &present);
        bench_threads(&mut g, "quick_cache", threads, &qc, &streams, run_reads);
        let moka = fill(moka::sync::Cache::<u64, u64>::new(2 * CAP as u64), &present);
        bench_threads(&mut g, "moka", threads, &moka, &streams, run_reads);
    }
    g.finish();
}

/// Heap bytes per entry for `CAP` `u64 -> u64` entries, printed before criterion runs.
fn memory_table() {
    const PAYLOAD: f64 = 16.0;
    let present = present_keys();
    let mut rows: Vec<(&str, usize, isize)> = Vec::new();
    let (c, bytes) = alloc::measure(|| filled(tk::<LruCache<u64, u64>>(), &present));
    rows.push(("tierkit LruCache + TTL", c.len(), bytes));
    drop(c);
    let (c, bytes) = alloc::measure(|| filled(tk_coarse::<LruCache<u64, u64>>(), &present));
    rows.push(("tierkit LruCache + TTL, CoarseClock", c.len(), bytes));
    drop(c);
    let (c, bytes) = alloc::measure(|| {
        let c: LruCache<u64, u64> = CacheBuilder::new(CAP as u64).build().expect("valid config");
        filled(Tk(c), &present)
    });
    rows.push(("tierkit LruCache (no TTL)", c.len(), bytes));
    drop(c);
    let (c, bytes) = alloc::measure(|| filled(tk::<FifoCache<u64, u64>>(), &present));
    rows.push(("tierkit FifoCache + TTL", c.len(), bytes));
    drop(c);
    let (c, bytes) = alloc::measure(|| filled(tk::<LfuCache<u64, u64>>(), &present));
    rows.push(("tierkit LfuCache + TTL", c.len(), bytes));
    drop(c);
    let (c, bytes) = alloc::measure(|| filled(tk::<S3FifoCache<u64, u64>>(), &present));
    rows.push(("tierkit S3FifoCache + TTL", c.len(), bytes));
    drop(c);
    let (c, bytes) = alloc::measure(|| filled(tk::<TinyLfuCache<u64, u64>>(), &present));
    rows.push(("tierkit TinyLfuCache + TTL", c.len(), bytes));
    drop(c);
    // While evicting: after 3x CAP new keys every policy has evicted 2x CAP entries, the index
    // table carries its tombstones, S3-FIFO's ghost is full and TinyLFU's sketch is in use.
    let churn = &fresh_keys()[..3 * CAP];
    let (c, bytes) =
        alloc::measure(|| filled(filled(tk::<TinyLfuCache<u64, u64>>(), &present), churn));
    rows.push((
        "tierkit TinyLfuCache + TTL, evicting (after 3x churn)",
        c.len(),
        bytes,
    ));
    drop(c);
    let (c, bytes) =
        alloc::measure(|| filled(filled(tk::<S3FifoCache<u64, u64>>(), &present), churn));
    rows.push(("tierkit S3FifoCache + TTL, evicting", c.len(), bytes));
    drop(c);
    let (c, bytes) = alloc::measure(|| filled(filled(tk::<LruCache<u64, u64>>(), &present), churn));
    rows.push(("tierkit LruCache + TTL, evicting", c.len(), bytes));
    drop(c);
    let (c, bytes) = alloc::measure(|| filled(filled(tk::<LfuCache<u64, u64>>(), &present), churn));
    rows.push(("tierkit LfuCache + TTL, evicting", c.len(), bytes));
    drop(c);
    let (c, bytes) =
        alloc::measure(|| filled(filled(tk::<FifoCache<u64, u64>>(), &present), churn));
    rows.push(("tierkit FifoCache + TTL, evicting", c.len(), bytes));
    drop(c);
    let qc = || quick_cache::unsync::Cache::<u64, u64>::new(CAP);
    let (c, bytes) = alloc::measure(|| filled(filled(qc(), &present), churn));
    rows.push(("quick_cache::unsync::Cache, evicting", c.len(), bytes));
    drop(c);
    let (c, bytes) = alloc::measure(|| {
        let c = moka::sync::Cache::<u64, u64>::new(CAP as u64);
        for &k in present.iter().chain(churn) {
            c.insert(k, k);
        }
        c.run_pending_tasks();
        c
    });
    rows.push((
        "moka::sync::Cache, evicting",
        c.entry_count() as usize,
        bytes,
    ));
    drop(c);
    let (c, bytes) = alloc::measure(|| {
        let c = concurrent::<LruCache<u64, u64>>();
        for &k in &present {
            c.insert(k, k);
        }
        c
    });
    rows.push(("tierkit ConcurrentCache<LruCache>", c.len(), bytes));
    drop(c);
    let (c, bytes) = alloc::measure(|| filled(lru::LruCache::<u64, u64>::new(nz(CAP)), &present));
    rows.push(("lru::LruCache", c.len(), bytes));
    drop(c);
    let (c, bytes) =
        alloc::measure(|| filled(quick_cache::unsync::Cache::<u64, u64>::new(CAP), &present));
    rows.push(("quick_cache::unsync::Cache", c.len(), bytes));
    drop(c);
    let (c, bytes) = alloc::measure(|| {
        let c = quick_cache::sync::Cache::<u64, u64>::new(CAP);
        for &k in &present {
            c.insert(k, k);
        }
        c
    });
    rows.push(("quick_cache::sync::Cache", c.len(), bytes));
    drop(c);
    for (name, ttl) in [
        ("moka::sync::Cache", None),
        ("moka::sync::Cache + TTL", Some(3600)),
    ] {
        let (c, bytes) = alloc::measure(|| {
            let mut b = moka::sync::Cache::<u64, u64>::builder().max_capacity(CAP as u64);
            if let Some(secs) = ttl {
                b = b.time_to_live(Duration::from_secs(secs));
            }
            let c = b.build();
            for &k in &present {
                c.insert(k, k);
            }
            c.run_pending_tasks();
            c
        });
        rows.push((name, c.entry_count() as usize, bytes));
        drop(c);
    }
    println!(
        "Heap bytes per entry, {CAP} u64 -> u64 entries (payload 16 B), counting allocator:\n"
    );
    println!("| cache | entries | heap bytes | bytes/entry | beyond key+value |");
    println!("|---|---:|---:|---:|---:|");
    for (name, len, bytes) in rows {
        let per = bytes as f64 / len.max(1) as f64;
        println!(
            "| {name} | {len} | {bytes} | {per:.1} | {:.1} |",
            per - PAYLOAD
        );
    }
    println!();
}

criterion_group!(
    benches,
    clock_group,
    lru_group,
    s3fifo_group,
    other_policies,
    concurrent_get_group,
    concurrent_group,
    read_scaling_group
);

fn main() {
    memory_table();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
