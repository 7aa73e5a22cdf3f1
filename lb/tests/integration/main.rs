//! Public behaviour of tierkit-lb, in one test binary.
#![allow(clippy::unwrap_used, missing_docs)]
// Test inputs are small ranges; casts between them cannot truncate.
#![allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]

#[global_allocator]
static ALLOC: tierkit_testkit::CountingAllocator = tierkit_testkit::CountingAllocator;

mod active;
mod alloc;
mod findings;
mod health;
mod membership;
mod policies;
mod total;

#[test]
fn shared_types_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<tierkit_lb::Balancer<String, tierkit_lb::RoundRobin>>();
    assert_send_sync::<tierkit_lb::Balancer<String, tierkit_lb::Sticky<tierkit_lb::LeastLatency>>>(
    );
    assert_send_sync::<
        tierkit_lb::Balancer<String, tierkit_lb::Locality<tierkit_lb::ConsistentHash>>,
    >();
    assert_send_sync::<tierkit_lb::Lease<String>>();
    assert_send_sync::<tierkit_lb::Drain<String>>();
    assert_send_sync::<tierkit_lb::Context<'static>>();
}
mod sim;
mod tower;
