//! Every placement against a naive model built only from its documented contract, over random
//! membership changes: same owner for every probed key, same preference list.

use proptest::prelude::*;
use tierkit_consistent_hash::{
    Error, HashRing, JumpHash, Key, KeyHasher, Maglev, Placement, Rendezvous,
};

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

/// Applies membership changes to `p` and to a model that decides on its own what each change
/// does (a duplicate add is refused, removing an absent node is a no-op); the implementation must
/// agree with the model's decision at every step. Returns the model's members with weights.
fn apply<P: Placement<u32>>(
    p: &mut P,
    ops: &[(bool, u32, u32)],
    weighted: bool,
) -> Result<Vec<(u32, u32)>, TestCaseError> {
    let mut model: Vec<(u32, u32)> = Vec::new();
    for &(add, node, w) in ops {
        let w = if weighted { w } else { 1 };
        if add {
            match model.iter().position(|m| m.0 == node) {
                Some(index) => {
                    prop_assert_eq!(p.add_weighted(node, w), Err(Error::DuplicateNode { index }));
                }
                None => {
                    prop_assert_eq!(p.add_weighted(node, w), Ok(()));
                    model.push((node, w));
                }
            }
        } else {
            let present = model.iter().any(|m| m.0 == node);
            prop_assert_eq!(p.remove(&node), present.then_some(node));
            model.retain(|m| m.0 != node);
        }
    }
    Ok(model)
}

/// SipHash-1-3 of a node's bytes followed by a `u32` suffix, little-endian (the documented way
/// ring points and Maglev permutations are derived).
fn suffixed(h: &KeyHasher, node: u32, suffix: u32) -> u64 {
    point(h, node, suffix)
}

/// Maglev model, from the paper and the documented contract: a table of prime size `m`; node
/// `n` walks slots `offset, offset + skip, ...` (mod `m`) with `offset = H(n, 0) mod m` and
/// `skip = H(n, 1) mod (m - 1) + 1`; nodes take turns in the order of `H(n)`, and in round `r`
/// a node of weight `w` has had `ceil(r * w / w_max)` turns in all; each turn claims the next
/// free slot of the node's walk. A key's slot is `(H(key) * m) >> 64`; its preference list is
/// the distinct owners met walking the table from that slot.
fn maglev_table(h: &KeyHasher, nodes: &[(u32, u32)], m: u64) -> Vec<u32> {
    if nodes.is_empty() {
        return Vec::new();
    }
    let mut order: Vec<(u64, usize)> = nodes
        .iter()
        .enumerate()
        .map(|(i, &(n, _))| (h.hash(&n), i))
        .collect();
    order.sort_unstable();
    let w_max = u64::from(nodes.iter().map(|n| n.1).max().unwrap_or(1));
    let mut next: Vec<u64> = nodes.iter().map(|&(n, _)| suffixed(h, n, 0) % m).collect();
    let skip: Vec<u64> = nodes
        .iter()
        .map(|&(n, _)| suffixed(h, n, 1) % (m - 1) + 1)
        .collect();
    let mut table: Vec<Option<u32>> = vec![None; m as usize];
    let mut turns_taken = vec![0u64; nodes.len()];
    let mut free = m;
    let mut round = 0u64;
    while free > 0 {
        round += 1;
        for &(_, i) in &order {
            let owed = (round * u64::from(nodes[i].1)).div_ceil(w_max);
            while turns_taken[i] < owed && free > 0 {
                while table[next[i] as usize].is_some() {
                    next[i] = (next[i] + skip[i]) % m;
                }
                table[next[i] as usize] = Some(nodes[i].0);
                next[i] = (next[i] + skip[i]) % m;
                turns_taken[i] += 1;
                free -= 1;
            }
        }
    }
    table.into_iter().map(|s| s.unwrap_or(u32::MAX)).collect()
}

fn maglev_prefs(h: &KeyHasher, table: &[u32], key: u64, n: usize) -> Vec<u32> {
    let mut out = Vec::new();
    if table.is_empty() {
        return out;
    }
    let start = ((u128::from(h.hash(&key)) * table.len() as u128) >> 64) as usize;
    for i in 0..table.len() {
        let owner = table[(start + i) % table.len()];
        if out.len() == n {
            break;
        }
        if !out.contains(&owner) {
            out.push(owner);
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn ring_matches_the_naive_ring(ops in prop::collection::vec((prop::bool::weighted(0.7), 0u32..16, 1u32..4), 0..30),
                                   keys in prop::collection::vec(any::<u64>(), 50)) {
        let mut ring = HashRing::<u32>::builder().vnodes(7).build().unwrap();
        let model = apply(&mut ring, &ops, true)?;
        let h = KeyHasher::DEFAULT;
        for k in keys {
            prop_assert_eq!(ring.locate(&k).copied(), ring_owner(&h, &model, 7, k));
        }
    }

    #[test]
    fn rendezvous_matches_the_naive_ranking(ops in prop::collection::vec((prop::bool::weighted(0.7), 0u32..16, 1u32..4), 0..30),
                                            keys in prop::collection::vec(any::<u64>(), 50)) {
        let mut hrw = Rendezvous::new();
        let model: Vec<u32> = apply(&mut hrw, &ops, false)?.into_iter().map(|m| m.0).collect();
        let h = KeyHasher::DEFAULT;
        for k in keys {
            let order = hrw_order(&h, &model, k);
            prop_assert_eq!(hrw.locate(&k).copied(), order.first().copied());
            let prefs: Vec<u32> = hrw.locate_n(&k, 3).into_iter().copied().collect();
            prop_assert_eq!(prefs, order.into_iter().take(3).collect::<Vec<_>>());
        }
    }

    #[test]
    fn maglev_matches_the_naive_table(ops in prop::collection::vec((prop::bool::weighted(0.7), 0u32..12, 1u32..4), 0..24),
                                      keys in prop::collection::vec(any::<u64>(), 50)) {
        const M: u64 = 251;
        let mut maglev = Maglev::<u32>::builder().table_size(M as usize).build().unwrap();
        let model = apply(&mut maglev, &ops, true)?;
        let h = KeyHasher::DEFAULT;
        let table = maglev_table(&h, &model, M);
        for k in keys {
            let prefs = maglev_prefs(&h, &table, k, 3);
            prop_assert_eq!(maglev.locate(&k).copied(), prefs.first().copied());
            let got: Vec<u32> = maglev.locate_n(&k, 3).into_iter().copied().collect();
            prop_assert_eq!(got, prefs);
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
