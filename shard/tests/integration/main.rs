//! Public behaviour of tierkit-shard, in one test binary.
#![allow(clippy::unwrap_used, missing_docs)]
// Test inputs are small ranges; casts between them cannot truncate.
#![allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]

#[global_allocator]
static ALLOC: tierkit_testkit::CountingAllocator = tierkit_testkit::CountingAllocator;

mod hotkey;
mod migration;
mod migrator;
#[cfg(feature = "redis")]
mod redis_cluster;
mod routing;
mod scatter;

#[test]
fn shared_types_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<tierkit_shard::ShardMap<String>>();
    assert_send_sync::<tierkit_shard::Snapshot<String>>();
    assert_send_sync::<tierkit_shard::ReshardPlan>();
    assert_send_sync::<tierkit_shard::Directory>();
    assert_send_sync::<tierkit_shard::HashSlots>();
    assert_send_sync::<tierkit_shard::Error>();
    assert_send_sync::<tierkit_shard::ClusterRouter>();
    assert_send_sync::<tierkit_shard::Topology>();
}
