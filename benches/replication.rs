//! Routing cost per consistency level with 3 and 16 replicas (route + drop of the lease),
//! against the baseline of picking from a bare `Vec` by index.
//!
//! `cargo bench -p tierkit-benches --bench replication`. Single thread; positions are reported before timing so
//! every replica is eligible at the bound used.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use tierkit::replication::{Consistency, Intent, NodeId, Position, ReplicaSet};

fn set(replicas: u32) -> (ReplicaSet<u32>, tierkit::replication::SessionToken) {
    let mut b = ReplicaSet::builder().primary(NodeId(0), 0);
    for i in 1..=replicas {
        b = b.replica(NodeId(i), i);
    }
    let set = b.build().expect("valid");
    let token = set
        .route(Intent::Write)
        .expect("primary")
        .committed(Position(1_000));
    for i in 1..=replicas {
        set.report_position(NodeId(i), Position(1_000))
            .expect("member");
    }
    (set, token)
}

fn route(c: &mut Criterion) {
    for replicas in [3u32, 16] {
        let mut group = c.benchmark_group(format!("route/{replicas}_replicas"));
        let (set, token) = set(replicas);
        let nodes: Vec<u32> = (0..=replicas).collect();
        let mut i = 0usize;
        group.bench_function("baseline_vec_index", |b| {
            b.iter(|| {
                i = i.wrapping_add(1);
                black_box(nodes[1 + i % replicas as usize])
            })
        });
        let levels = [
            ("write", Intent::Write),
            ("eventual", Intent::Read(Consistency::Eventual)),
            (
                "bounded_staleness",
                Intent::Read(Consistency::BoundedStaleness(10)),
            ),
            (
                "read_your_writes",
                Intent::Read(Consistency::ReadYourWrites(token)),
            ),
            (
                "monotonic",
                Intent::Read(Consistency::MonotonicReads(Position(900))),
            ),
            ("primary", Intent::Read(Consistency::Primary)),
        ];
        for (name, intent) in levels {
            group.bench_function(name, |b| {
                b.iter(|| set.route(black_box(intent)).map(|r| *r.node()))
            });
        }
        group.finish();
    }
}

/// Replica choice through `tierkit-lb` policies instead of the built-in round robin.
fn read_policy(c: &mut Criterion) {
    let mut group = c.benchmark_group("read_policy/3_replicas");
    let build = |b: tierkit::replication::ReplicaSetBuilder<u32>| {
        let set = b
            .primary(NodeId(0), 0)
            .replica(NodeId(1), 1)
            .replica(NodeId(2), 2)
            .replica(NodeId(3), 3)
            .build()
            .expect("valid");
        for i in 1..=3 {
            set.report_position(NodeId(i), Position(1_000))
                .expect("member");
        }
        set
    };
    let eventual = Intent::Read(Consistency::Eventual);
    let rr = build(ReplicaSet::builder());
    group.bench_function("builtin_round_robin", |b| {
        b.iter(|| rr.route(black_box(eventual)).map(|r| *r.node()))
    });
    let p2c = build(ReplicaSet::builder().read_policy(tierkit::lb::PowerOfTwoChoices::new()));
    group.bench_function("lb_p2c", |b| {
        b.iter(|| p2c.route(black_box(eventual)).map(|r| *r.node()))
    });
    let ll = build(ReplicaSet::builder().read_policy(tierkit::lb::LeastLatency::new()));
    group.bench_function("lb_least_latency", |b| {
        b.iter(|| ll.route(black_box(eventual)).map(|r| *r.node()))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(50)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = route, read_policy
}
criterion_main!(benches);
