//! Shard routing cost per strategy (64 shards) against the baseline of a plain `key % n`, the
//! full `ShardMap::route` (snapshot load + directory + co-location + strategy), and the hot-key
//! detector's record cost from 1 and 2 threads.
//!
//! `cargo bench -p tierkit-benches --bench shard`. Keys are pre-generated and deterministic; integer keys are user
//! ids, string keys look like `"user:<id>"`.

// Iteration counts and key ranks are small; the casts cannot truncate here.
#![allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]

use std::hint::black_box;

mod common;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use tierkit::shard::{
    ClusterRedirect, ClusterRouter, Consistent, Directory, HashSlots, HotKeyDetector, KeyRange,
    Modulo, Node, ShardId, ShardKey, ShardMap, ShardStrategy, Topology, parse_redirect,
};

const SHARDS: u32 = 64;

/// User ids below 100M, deterministic.
fn ids() -> Vec<u64> {
    common::splitmix(4096)
        .iter()
        .map(|z| z % 100_000_000)
        .collect()
}

fn strategies() -> Vec<(&'static str, Arc<dyn ShardStrategy>)> {
    let shards = || (0..SHARDS).map(ShardId);
    vec![
        (
            "modulo",
            Arc::new(Modulo::new(SHARDS as usize).expect("valid")),
        ),
        (
            "hash_slots",
            Arc::new(HashSlots::even(shards()).expect("valid")),
        ),
        (
            "range",
            Arc::new(KeyRange::uniform(SHARDS as usize).expect("valid")),
        ),
        (
            "consistent_ring",
            Arc::new(Consistent::ring(SHARDS as usize).expect("valid")),
        ),
        (
            "directory_over_modulo",
            Arc::new(
                Directory::new(Modulo::new(SHARDS as usize).expect("valid"))
                    .pin(ShardKey::Int(1), ShardId(0)),
            ),
        ),
    ]
}

fn route_int(c: &mut Criterion) {
    let keys = ids();
    let mask = keys.len() - 1;
    let mut group = c.benchmark_group("route_int/64");
    let mut i = 0;
    let n = u64::from(SHARDS);
    group.bench_function("baseline_key_mod_n", |b| {
        b.iter(|| {
            i = (i + 1) & mask;
            black_box(keys[i]) % n
        })
    });
    for (name, s) in strategies() {
        group.bench_function(name, |b| {
            b.iter(|| {
                i = (i + 1) & mask;
                s.shard_of(ShardKey::Int(black_box(keys[i])))
            })
        });
    }
    group.finish();
}

fn route_str(c: &mut Criterion) {
    let keys: Vec<String> = ids().iter().map(|id| format!("user:{id}")).collect();
    let mask = keys.len() - 1;
    let mut group = c.benchmark_group("route_str/64");
    let mut i = 0;
    for (name, s) in strategies() {
        group.bench_function(name, |b| {
            b.iter(|| {
                i = (i + 1) & mask;
                s.shard_of(ShardKey::Bytes(black_box(keys[i].as_bytes())))
            })
        });
    }
    let map = ShardMap::builder()
        .shards((0..SHARDS).map(|i| (ShardId(i), ())))
        .strategy(HashSlots::even((0..SHARDS).map(ShardId)).expect("valid"))
        .build()
        .expect("valid");
    group.bench_function("shard_map_route_hash_slots", |b| {
        b.iter(|| {
            i = (i + 1) & mask;
            map.route(black_box(keys[i].as_str()))
        })
    });
    // The same through a snapshot held by the caller (no atomic load per key).
    let snapshot = map.snapshot();
    group.bench_function("snapshot_route_hash_slots", |b| {
        b.iter(|| {
            i = (i + 1) & mask;
            snapshot.route(black_box(keys[i].as_str()))
        })
    });
    group.finish();
}

/// A Zipf(1.1) stream over 1M keys (inverse CDF, seeded), generated before timing.
fn zipf_keys(len: usize) -> Vec<u64> {
    let n = 1_000_000;
    let mut cdf = Vec::with_capacity(n);
    let mut total = 0.0;
    for rank in 1..=n {
        total += (rank as f64).powf(-1.1);
        cdf.push(total);
    }
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let u = (state >> 11) as f64 / (1u64 << 53) as f64 * total;
            cdf.partition_point(|&c| c < u) as u64
        })
        .collect()
}

/// Per-record time as seen by each of `threads` callers, started before timing and released by
/// a barrier (the machine has two cores).
fn record_threads(
    detector: &HotKeyDetector<u64>,
    keys: &[u64],
    threads: usize,
    iters: u64,
) -> Duration {
    let mask = keys.len() - 1;
    let barrier = Barrier::new(threads + 1);
    std::thread::scope(|s| {
        for t in 0..threads {
            let barrier = &barrier;
            s.spawn(move || {
                barrier.wait();
                for n in 0..iters as usize {
                    detector.record(&keys[(n * threads + t) & mask]);
                }
                barrier.wait();
            });
        }
        barrier.wait();
        let start = Instant::now();
        barrier.wait();
        start.elapsed()
    })
}

fn hot_keys(c: &mut Criterion) {
    let uniform = ids();
    let zipf = zipf_keys(1 << 16);
    let mut group = c.benchmark_group("hot_key_record");
    for (input, keys) in [("uniform", &uniform), ("zipf_1.1", &zipf)] {
        for (mode, one_in) in [("all", 1), ("sampled_1_in_16", 16)] {
            let detector = HotKeyDetector::<u64>::new(2048)
                .expect("valid")
                .sampled(one_in);
            for threads in [1, 2] {
                group.bench_function(format!("{input}/{mode}/{threads}_threads"), |b| {
                    b.iter_custom(|iters| record_threads(&detector, keys, threads, iters))
                });
            }
        }
    }
    group.finish();
}

/// Following a Redis Cluster: one MOVED applied to the router's slot table (issue 19 asked for
/// at most 1 us), against what the map needed before (a full plan of 16,384 slots and a
/// migration) and the one-version `ShardMap::set_slot_owner`.
fn moved(c: &mut Criterion) {
    let mut topology = Topology::new();
    for (i, (a, b)) in [(0u16, 5460u16), (5461, 10922), (10923, 16383)]
        .iter()
        .enumerate()
    {
        topology
            .add_slots(*a, *b, Node::new("", format!("127.0.0.1:{}", 27001 + i)))
            .expect("valid");
    }
    let router = ClusterRouter::new(&topology);
    let lines: Vec<String> = common::splitmix(1024)
        .iter()
        .map(|z| format!("MOVED {} 127.0.0.1:{}", z % 16_384, 27001 + z % 3))
        .collect();
    let parsed: Vec<(u16, String)> = lines
        .iter()
        .map(|l| match parse_redirect(l) {
            Ok(Some(ClusterRedirect::Moved { slot, addr })) => (slot, addr.to_string()),
            other => panic!("{other:?}"),
        })
        .collect();
    let mut group = c.benchmark_group("moved_one_slot");
    group.bench_function("cluster_router_on_redirect", |b| {
        let mut i = 0;
        b.iter(|| {
            let (slot, addr) = &parsed[i % parsed.len()];
            i += 1;
            black_box(router.on_redirect(&ClusterRedirect::Moved { slot: *slot, addr }))
        });
    });
    group.bench_function("parse_and_on_redirect", |b| {
        let mut i = 0;
        b.iter(|| {
            let line = &lines[i % lines.len()];
            i += 1;
            let r = parse_redirect(black_box(line))
                .expect("valid")
                .expect("moved");
            black_box(router.on_redirect(&r))
        });
    });
    let mut slots = HashSlots::even((0..3).map(ShardId)).expect("valid");
    group.bench_function("hash_slots_set_slot_owner", |b| {
        let mut i = 0u32;
        b.iter(|| {
            i = i.wrapping_add(7919);
            black_box(slots.set_slot_owner((i % 16_384) as u16, ShardId(i % 3)))
        });
    });
    let map: ShardMap<()> = ShardMap::builder()
        .shards((0..3).map(|i| (ShardId(i), ())))
        .strategy(HashSlots::even((0..3).map(ShardId)).expect("valid"))
        .build()
        .expect("valid");
    group.bench_function("shard_map_set_slot_owner", |b| {
        let mut i = 0u32;
        b.iter(|| {
            i = i.wrapping_add(7919);
            black_box(map.set_slot_owner((i % 16_384) as u16, ShardId(i % 3)))
        });
    });
    group.sample_size(10);
    group.bench_function("shard_map_plan_to_one_slot_before", |b| {
        let table = HashSlots::even((0..3).map(ShardId)).expect("valid");
        let mut i = 0usize;
        b.iter(|| {
            i = (i + 7919) % 16_384;
            let current = map.snapshot().hash_slots().expect("slots").clone();
            let owner = current.owner(i as u16).expect("owned");
            let next = table
                .with_slot(i, ShardId((owner.0 + 1) % 3))
                .expect("valid");
            black_box(map.plan_to(next).expect("plan"))
        });
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(50)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = route_int, route_str, hot_keys, moved
}
criterion_main!(benches);
