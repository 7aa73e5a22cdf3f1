//! Public behaviour of tierkit-consistent-hash, in one test binary (it links once).
#![allow(clippy::unwrap_used, missing_docs)]
// Test inputs are small ranges; casts between them cannot truncate.
#![allow(
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_lossless
)]

mod balance;
mod bounded;
mod errors;
mod models;
mod properties;
mod vectors;
mod weights;

use tierkit_consistent_hash::{HashRing, JumpHash, Maglev, Placement, Rendezvous};

/// Every algorithm over the same `u32` nodes, boxed behind one closure per algorithm so a test can
/// run against all of them.
pub(crate) fn ring(nodes: &[u32]) -> HashRing<u32> {
    HashRing::from_nodes(nodes.iter().copied()).unwrap()
}
pub(crate) fn jump(nodes: &[u32]) -> JumpHash<u32> {
    JumpHash::from_nodes(nodes.iter().copied()).unwrap()
}
pub(crate) fn rendezvous(nodes: &[u32]) -> Rendezvous<u32> {
    Rendezvous::from_nodes(nodes.iter().copied()).unwrap()
}
pub(crate) fn maglev(nodes: &[u32]) -> Maglev<u32> {
    Maglev::from_nodes(nodes.iter().copied()).unwrap()
}

/// The owner of each key in `keys`.
pub(crate) fn owners<P: Placement<u32>>(p: &P, keys: std::ops::Range<u64>) -> Vec<Option<u32>> {
    keys.map(|k| p.locate(&k).copied()).collect()
}

#[test]
fn shared_types_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<HashRing<String>>();
    assert_send_sync::<JumpHash<String>>();
    assert_send_sync::<Rendezvous<String>>();
    assert_send_sync::<Maglev<String>>();
    assert_send_sync::<tierkit_consistent_hash::BoundedLoad<HashRing<String>>>();
    assert_send_sync::<tierkit_consistent_hash::LoadGuard<'static, String>>();
    assert_send_sync::<tierkit_consistent_hash::KeyHasher>();
    assert_send_sync::<tierkit_consistent_hash::Error>();
}
