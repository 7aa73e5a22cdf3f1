//! Test vectors: placement must never change for the same secret, nodes and key. These are the
//! values published in the crate docs; the raw hashes were cross-checked against an
//! independent SipHash-1-3 implementation.

use tierkit_consistent_hash::{HashRing, JumpHash, Key, KeyHasher, Maglev, Placement, Rendezvous};

fn nodes() -> Vec<String> {
    (0..10).map(|i| format!("node-{i}")).collect()
}

fn check<K: Key + ?Sized + std::fmt::Debug>(key: &K, hash: u64, owners: [&str; 4]) {
    let ring = HashRing::from_nodes(nodes()).unwrap();
    let jump = JumpHash::from_nodes(nodes()).unwrap();
    let hrw = Rendezvous::from_nodes(nodes()).unwrap();
    let maglev = Maglev::from_nodes(nodes()).unwrap();
    assert_eq!(KeyHasher::DEFAULT.hash(key), hash, "hash of {key:?}");
    let got = [
        ring.locate(key).unwrap().as_str(),
        jump.locate(key).unwrap().as_str(),
        hrw.locate(key).unwrap().as_str(),
        maglev.locate(key).unwrap().as_str(),
    ];
    assert_eq!(
        got, owners,
        "owners of {key:?} (ring, jump, rendezvous, maglev)"
    );
}

#[test]
fn published_vectors() {
    check(
        "",
        0x80a65383092d9c9c,
        ["node-7", "node-6", "node-5", "node-9"],
    );
    check(
        "user:1",
        0xe17c646df0fbaec1,
        ["node-1", "node-5", "node-7", "node-9"],
    );
    check(
        "user:42",
        0x1838184fc82f1ba0,
        ["node-7", "node-6", "node-9", "node-3"],
    );
    check(
        "photo:7",
        0xb0a8c932426fe4c6,
        ["node-8", "node-6", "node-7", "node-9"],
    );
    check(
        "session:9f2c",
        0x6c2e312035e6ac3c,
        ["node-6", "node-4", "node-8", "node-1"],
    );
    check(
        "tierkit",
        0x93612358c61bbfb1,
        ["node-5", "node-8", "node-2", "node-5"],
    );
    check(
        &0u64,
        0xc02e047f47616bd4,
        ["node-6", "node-3", "node-2", "node-4"],
    );
    check(
        &1u64,
        0x2e5985ee152dfcbd,
        ["node-6", "node-1", "node-9", "node-7"],
    );
    check(
        &12345u64,
        0xa90c48747b4b95de,
        ["node-6", "node-3", "node-6", "node-8"],
    );
}

#[test]
fn strings_and_bytes_agree() {
    let ring = HashRing::from_nodes(nodes()).unwrap();
    for k in ["a", "user:1", "\u{1F600}"] {
        assert_eq!(ring.locate(k), ring.locate(k.as_bytes()));
        assert_eq!(ring.locate(k), ring.locate(&k.to_string()));
    }
    assert_eq!(ring.locate(&7u32), ring.locate(&[7u8, 0, 0, 0]));
}

#[test]
fn another_secret_places_differently() {
    let ours = HashRing::builder()
        .hasher(KeyHasher::with_secret(1, 2))
        .nodes(nodes())
        .build()
        .unwrap();
    let default = HashRing::from_nodes(nodes()).unwrap();
    let differ = (0..1000u32)
        .filter(|k| ours.locate(k) != default.locate(k))
        .count();
    // With 10 nodes, ~90% of keys should land elsewhere under an unrelated secret.
    assert!(differ > 800, "only {differ} of 1000 keys moved");
}
