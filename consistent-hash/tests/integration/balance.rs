//! Balance on 1M keys over 100 equal nodes (the acceptance figures).

use tierkit_consistent_hash::{HashRing, Placement, analysis};

use crate::{maglev, rendezvous};

const KEYS: std::ops::Range<u64> = 0..1_000_000;

fn hundred() -> Vec<u32> {
    (0..100).collect()
}

#[test]
fn ring_at_160_vnodes_is_within_1_30() {
    let ring = HashRing::builder()
        .vnodes(160)
        .nodes(hundred())
        .build()
        .unwrap();
    let b = analysis::balance(&ring, KEYS);
    assert_eq!(b.keys, 1_000_000);
    assert!(b.max_over_mean <= 1.30, "max/mean {:.3}", b.max_over_mean);
}

#[test]
fn maglev_is_within_1_10() {
    let b = analysis::balance(&maglev(&hundred()), KEYS);
    assert!(b.max_over_mean <= 1.10, "max/mean {:.3}", b.max_over_mean);
}

#[test]
fn rendezvous_is_within_1_10() {
    let b = analysis::balance(&rendezvous(&hundred()), KEYS);
    assert!(b.max_over_mean <= 1.10, "max/mean {:.3}", b.max_over_mean);
}

#[test]
fn more_vnodes_balance_better() {
    let keys = 0..200_000u64;
    let spread = |v: u32| {
        let ring = HashRing::builder()
            .vnodes(v)
            .nodes(hundred())
            .build()
            .unwrap();
        analysis::balance(&ring, keys.clone()).relative_std_dev
    };
    let (few, many) = (spread(10), spread(400));
    assert!(
        many < few / 2.0,
        "std dev {few:.3} at 10 vnodes, {many:.3} at 400"
    );
}

#[test]
fn empty_placement_balances_to_zero() {
    let ring: HashRing<u32> = HashRing::new();
    let b = analysis::balance(&ring, 0..10u64);
    assert_eq!((b.keys, b.loads.len()), (0, 0));
    assert!(ring.is_empty());
}
