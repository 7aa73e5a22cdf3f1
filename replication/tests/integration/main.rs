//! Public behaviour of tierkit-replication, in one test binary (needs the `sim` feature).
#![allow(clippy::unwrap_used, missing_docs)]
// Node indices in tests are below 10; the casts cannot truncate.
#![allow(clippy::cast_possible_truncation)]

#[global_allocator]
static ALLOC: tierkit_testkit::CountingAllocator = tierkit_testkit::CountingAllocator;

mod allocations;
mod balance;
mod failover;
mod model;
mod monitor;
#[cfg(feature = "postgres")]
mod pg;
mod routing;

#[test]
fn shared_types_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<tierkit_replication::ReplicaSet<String>>();
    assert_send_sync::<tierkit_replication::Route<'static, String>>();
    assert_send_sync::<tierkit_replication::Error>();
    assert_send_sync::<tierkit_replication::sim::SimCluster>();
    assert_send_sync::<tierkit_replication::Event>();
    assert_send_sync::<tierkit_replication::PendingPromotion>();
}
