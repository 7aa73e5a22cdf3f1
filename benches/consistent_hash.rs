//! Lookup cost of every tierkit placement, side by side with the `hashring` crate.
//!
//! `cargo bench -p tierkit-benches --bench consistent_hash` (all groups) or, for the headline figure,
//! `cargo bench -p tierkit-benches --bench consistent_hash -- 'lookup/100'`. Single-threaded. Keys are 4,096
//! pre-generated strings (`"user:<n>"` for seeded pseudo-random `n`); each iteration looks up
//! the next key, so the figure includes hashing the key, as a caller pays it.

use std::hint::black_box;

mod common;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use tierkit::consistent_hash::{
    BoundedLoad, HashRing, JumpHash, KeyHasher, Maglev, Placement, Rendezvous,
};

const VNODES: u32 = 160;
const NODE_COUNTS: [u32; 3] = [10, 100, 1000];

/// A virtual node for the `hashring` crate, which has no vnode support of its own: callers add
/// `vnodes` entries per node, which is what its documentation suggests.
#[derive(Debug, Clone, Hash, PartialEq)]
struct VNode {
    node: u32,
    replica: u32,
}

/// Deterministic keys (SplitMix64 from a fixed seed), generated before timing.
fn keys() -> Vec<String> {
    common::splitmix(4096)
        .iter()
        .map(|z| format!("user:{z}"))
        .collect()
}

fn lookup(c: &mut Criterion) {
    let keys = keys();
    let mask = keys.len() - 1;
    for n in NODE_COUNTS {
        let mut group = c.benchmark_group(format!("lookup/{n}"));
        group.throughput(Throughput::Elements(1));

        let nodes: Vec<u32> = (0..n).collect();
        let ring = HashRing::builder()
            .vnodes(VNODES)
            .nodes(nodes.clone())
            .build()
            .expect("valid ring");
        let mut peer = hashring::HashRing::new();
        peer.batch_add(
            nodes
                .iter()
                .flat_map(|&node| (0..VNODES).map(move |replica| VNode { node, replica }))
                .collect(),
        );
        let jump = JumpHash::from_nodes(nodes.clone()).expect("valid");
        let hrw = Rendezvous::from_nodes(nodes.clone()).expect("valid");
        let maglev = Maglev::from_nodes(nodes.clone()).expect("valid");
        let bounded = BoundedLoad::new(ring.clone(), 1.25).expect("valid");

        let mut i = 0;
        let mut next = || {
            i = (i + 1) & mask;
            keys[i].as_str()
        };
        group.bench_function(BenchmarkId::new("tierkit_ring", VNODES), |b| {
            b.iter(|| ring.locate(black_box(next())).copied())
        });
        group.bench_function(BenchmarkId::new("hashring", VNODES), |b| {
            b.iter(|| peer.get(&black_box(next())).map(|v| v.node))
        });
        group.bench_function("tierkit_jump", |b| {
            b.iter(|| jump.locate(black_box(next())).copied())
        });
        group.bench_function("tierkit_maglev", |b| {
            b.iter(|| maglev.locate(black_box(next())).copied())
        });
        group.bench_function("tierkit_rendezvous", |b| {
            b.iter(|| hrw.locate(black_box(next())).copied())
        });
        group.bench_function("tierkit_bounded_ring_acquire_release", |b| {
            b.iter(|| bounded.acquire(black_box(next())).map(|g| *g.node()))
        });
        group.finish();
    }
}

/// The search alone, on pre-hashed keys: what a caller that routes one key through several
/// placements pays after hashing once.
fn lookup_prehashed(c: &mut Criterion) {
    let hasher = KeyHasher::DEFAULT;
    let hashes: Vec<u64> = keys().iter().map(|k| hasher.hash(k.as_str())).collect();
    let mask = hashes.len() - 1;
    let mut group = c.benchmark_group("lookup_prehashed/100");
    let nodes: Vec<u32> = (0..100).collect();
    let ring = HashRing::from_nodes(nodes.clone()).expect("valid");
    let maglev = Maglev::from_nodes(nodes.clone()).expect("valid");
    let jump = JumpHash::from_nodes(nodes).expect("valid");
    let mut i = 0;
    let mut next = || {
        i = (i + 1) & mask;
        hashes[i]
    };
    group.bench_function("tierkit_ring", |b| {
        b.iter(|| ring.locate_index(black_box(next())))
    });
    group.bench_function("tierkit_maglev", |b| {
        b.iter(|| maglev.locate_index(black_box(next())))
    });
    group.bench_function("tierkit_jump", |b| {
        b.iter(|| jump.locate_index(black_box(next())))
    });
    group.finish();
}

/// Cost of a membership change (add one node to 100) — what a rebuild costs a control plane.
fn membership(c: &mut Criterion) {
    let mut group = c.benchmark_group("add_node/100");
    let nodes: Vec<u32> = (0..100).collect();
    let ring = HashRing::from_nodes(nodes.clone()).expect("valid");
    let maglev = Maglev::from_nodes(nodes.clone()).expect("valid");
    group.bench_function("tierkit_ring", |b| {
        b.iter_batched(
            || ring.clone(),
            |mut r| r.add(100).map(|()| r.point_count()),
            criterion::BatchSize::LargeInput,
        )
    });
    group.bench_function("tierkit_maglev", |b| {
        b.iter_batched(
            || maglev.clone(),
            |mut m| m.add(100).map(|()| m.len()),
            criterion::BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(50)
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2));
    targets = lookup, lookup_prehashed, membership
}
criterion_main!(benches);
