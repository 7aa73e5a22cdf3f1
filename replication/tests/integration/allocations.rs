//! Routing allocates nothing, at every consistency level (counted by the testkit allocator).

use tierkit_replication::{Consistency, Intent, NodeId, Position, ReplicaSet};
use tierkit_testkit::allocations_by_this_thread;

#[test]
fn routes_allocate_nothing() {
    let mut b = ReplicaSet::builder().primary(NodeId(0), 0u32);
    for i in 1..=16 {
        b = b.replica(NodeId(i), i);
    }
    let set = b.build().unwrap();
    let token = set.route(Intent::Write).unwrap().committed(Position(100));
    for i in 1..=8 {
        set.report_position(NodeId(i), Position(100)).unwrap();
    }
    let intents = [
        Intent::Write,
        Intent::Read(Consistency::Eventual),
        Intent::Read(Consistency::BoundedStaleness(5)),
        Intent::Read(Consistency::ReadYourWrites(token)),
        Intent::Read(Consistency::MonotonicReads(Position(50))),
        Intent::Read(Consistency::Primary),
    ];
    // Warm up: the snapshot library registers this thread on first use.
    for intent in intents {
        drop(set.route(intent).unwrap());
    }
    let before = allocations_by_this_thread();
    for _ in 0..1_000 {
        for intent in intents {
            let route = set.route(intent).unwrap();
            route.success();
        }
    }
    assert_eq!(allocations_by_this_thread() - before, 0);
    // Control: the counter does see allocations.
    let v = std::hint::black_box(vec![0u8; 64]);
    assert!(
        allocations_by_this_thread() > before,
        "counting allocator not installed"
    );
    drop(v);
}
