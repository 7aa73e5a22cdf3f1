//! Every placement against a naive model built only from its documented contract, over random
//! membership changes: same owner for every probed key, same preference list.

use proptest::prelude::*;
use tierkit_consistent_hash::{HashRing, JumpHash, Key, KeyHasher, Placement, Rendezvous};

/// The bytes a `u32` node writes (little-endian), followed by the vnode index (little-endian).
fn point(h: &KeyHasher, node: u32, i: u32) -> u64 {
    let mut bytes = node.to_le_bytes().to_vec();
    bytes.extend_from_slice(&i.to_le_bytes());
    h.hash(&bytes)
}

/// Ring model: every point of every node in a list; the owner is the first point at or after
/// the key's hash (wrapping), ties broken by the owner's own hash.
fn ring_owner(h: &KeyHasher, nodes: &[(u32, u32)], vnodes: u32, key: u64) -> Option<u32> {
    let mut points: Vec<(u64, u64, u32)> = nodes
        .iter()
        .flat_map(|&(n, w)| (0..w * vnodes).map(move |i| (n, i)))
        .map(|(n, i)| (point(h, n, i), h.hash(&n), n))
        .collect();
    points.sort_unstable();
    let kh = h.hash(&key);
    points
        .iter()
        .find(|p| p.0 >= kh)
        .or(points.first())
        .map(|p| p.2)
}

/// MurmurHash3's 64-bit finaliser, as documented for rendezvous scores.
fn mix64(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

/// Rendezvous model: highest `mix64(key ^ node)` (all weights equal), ties to the lower node hash.
fn hrw_order(h: &KeyHasher, nodes: &[u32], key: u64) -> Vec<u32> {
    let kh = h.hash(&key);
    let mut scored: Vec<(u64, std::cmp::Reverse<u64>, u32)> = nodes
        .iter()
        .map(|&n| (mix64(kh ^ h.hash(&n)), std::cmp::Reverse(h.hash(&n)), n))
        .collect();
    scored.sort_unstable_by(|a, b| b.cmp(a));
    scored.into_iter().map(|s| s.2).collect()
}

/// Jump model: the published algorithm, written out again.
fn jump_model(mut key: u64, buckets: i64) -> i64 {
    let (mut b, mut j) = (-1i64, 0i64);
    while j < buckets {
        b = j;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        j = ((b + 1) as f64 * ((1i64 << 31) as f64 / ((key >> 33) + 1) as f64)) as i64;
    }
    b
}

fn apply<P: Placement<u32>>(
    p: &mut P,
    ops: &[(bool, u32, u32)],
    weighted: bool,
) -> Vec<(u32, u32)> {
    let mut model: Vec<(u32, u32)> = Vec::new();
    for &(add, node, w) in ops {
        let w = if weighted { w } else { 1 };
        if add {
            if p.add_weighted(node, w).is_ok() {
                model.push((node, w));
            }
        } else if p.remove(&node).is_some() {
            model.retain(|m| m.0 != node);
        }
    }
    model
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn ring_matches_the_naive_ring(ops in prop::collection::vec((prop::bool::weighted(0.7), 0u32..16, 1u32..4), 0..30),
                                   keys in prop::collection::vec(any::<u64>(), 50)) {
        let mut ring = HashRing::<u32>::builder().vnodes(7).build().unwrap();
        let model = apply(&mut ring, &ops, true);
        let h = KeyHasher::DEFAULT;
        for k in keys {
            prop_assert_eq!(ring.locate(&k).copied(), ring_owner(&h, &model, 7, k));
        }
    }

    #[test]
    fn rendezvous_matches_the_naive_ranking(ops in prop::collection::vec((prop::bool::weighted(0.7), 0u32..16, 1u32..4), 0..30),
                                            keys in prop::collection::vec(any::<u64>(), 50)) {
        let mut hrw = Rendezvous::new();
        let model: Vec<u32> = apply(&mut hrw, &ops, false).into_iter().map(|m| m.0).collect();
        let h = KeyHasher::DEFAULT;
        for k in keys {
            let order = hrw_order(&h, &model, k);
            prop_assert_eq!(hrw.locate(&k).copied(), order.first().copied());
            let prefs: Vec<u32> = hrw.locate_n(&k, 3).into_iter().copied().collect();
            prop_assert_eq!(prefs, order.into_iter().take(3).collect::<Vec<_>>());
        }
    }

    #[test]
    fn jump_matches_the_published_algorithm(n in 1u32..300, keys in prop::collection::vec(any::<u64>(), 50)) {
        let jump = JumpHash::from_nodes(0..n).unwrap();
        let h = KeyHasher::DEFAULT;
        for k in keys {
            let expected = jump_model(h.hash(&k), i64::from(n)) as u32;
            prop_assert_eq!(jump.locate(&k).copied(), Some(expected));
        }
    }
}

/// Nodes hash as their `Key` bytes: a custom node type agrees with the bytes it writes.
#[test]
fn custom_node_types_hash_as_their_bytes() {
    #[derive(Debug, PartialEq)]
    struct Host(&'static str);
    impl Key for Host {
        fn write_key<H: std::hash::Hasher>(&self, state: &mut H) {
            state.write(self.0.as_bytes());
        }
    }
    let a = HashRing::from_nodes([Host("a"), Host("b")]).unwrap();
    let b = HashRing::from_nodes(["a", "b"]).unwrap();
    for k in 0..500u32 {
        assert_eq!(a.locate(&k).map(|h| h.0), b.locate(&k).copied());
    }
}
