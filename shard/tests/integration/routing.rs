//! Strategies: Redis compatibility, totality, co-location, resharding fractions, errors.

use std::sync::Arc;

use proptest::prelude::*;
use tierkit_shard::{
    Consistent, Directory, Error, HashSlots, KeyRange, Modulo, ReshardPlan, Route, ShardId,
    ShardKey, ShardMap, ShardStrategy, crc16, hash_tag,
};

fn ids(n: u32) -> impl Iterator<Item = ShardId> {
    (0..n).map(ShardId)
}

#[test]
fn redis_cluster_slots() {
    assert_eq!(crc16(b"123456789"), 0x31C3);
    // Values of `CLUSTER KEYSLOT <key>` on a real Redis, checked against an independent CRC16.
    for (key, slot) in [
        ("foo", 12182),
        ("bar", 5061),
        ("hello", 866),
        ("somekey", 11058),
    ] {
        assert_eq!(
            HashSlots::slot(ShardKey::Bytes(key.as_bytes())),
            slot,
            "{key}"
        );
    }
    assert_eq!(HashSlots::slot(ShardKey::Bytes(b"{foo}bar")), 12182);
    assert_eq!(
        HashSlots::slot(ShardKey::Int(42)),
        HashSlots::slot(ShardKey::Bytes(b"42"))
    );
    // Tag rules: first `{`, first `}` after it, non-empty.
    assert_eq!(hash_tag(ShardKey::Bytes(b"a{b}{c}")), ShardKey::Bytes(b"b"));
    assert_eq!(
        hash_tag(ShardKey::Bytes(b"a{}{c}")),
        ShardKey::Bytes(b"a{}{c}")
    );
    assert_eq!(hash_tag(ShardKey::Bytes(b"a{b")), ShardKey::Bytes(b"a{b"));
    assert_eq!(hash_tag(ShardKey::Bytes(b"{{x}}")), ShardKey::Bytes(b"{x"));
}

fn strategies() -> Vec<Arc<dyn ShardStrategy>> {
    vec![
        Arc::new(Modulo::new(4).unwrap()),
        Arc::new(HashSlots::even(ids(4)).unwrap()),
        Arc::new(KeyRange::uniform(4).unwrap()),
        Arc::new(Consistent::ring(4).unwrap()),
        Arc::new(Directory::new(Modulo::new(4).unwrap()).pin(ShardKey::Int(7), ShardId(9))),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Every key routes to exactly one shard, one the strategy lists; co-located keys together.
    #[test]
    fn every_key_has_one_listed_shard(int in any::<u64>(), bytes in prop::collection::vec(any::<u8>(), 0..24),
                                      tag in "[a-z0-9:]{1,12}", a in "[a-z]{0,6}", b in "[a-z]{0,6}") {
        for s in strategies() {
            for key in [ShardKey::Int(int), ShardKey::Bytes(&bytes)] {
                let shard = s.shard_of(key);
                prop_assert!(s.shards().contains(&shard), "{} routed to unlisted {shard}", s.name());
                prop_assert_eq!(shard, s.shard_of(key), "not deterministic");
            }
        }
        let map = ShardMap::builder()
            .shards(ids(4).map(|i| (i, ())))
            .strategy(Consistent::ring(4).unwrap())
            .build()
            .unwrap();
        let k1 = format!("{a}{{{tag}}}:cart");
        let k2 = format!("{b}{{{tag}}}:orders");
        // Keys with a tag and no '{' before it route together.
        if !a.contains('{') && !b.contains('{') {
            prop_assert_eq!(map.route(k1.as_str()), map.route(k2.as_str()));
        }
    }

    #[test]
    fn range_split_then_merge_is_identity(points in prop::collection::btree_set(1u64..1_000_000, 1..6),
                                          at in 1u64..1_000_000, probe in 0u64..1_100_000) {
        let splits: Vec<u64> = points.into_iter().collect();
        let owners: Vec<ShardId> = (0..=splits.len() as u32).map(ShardId).collect();
        let r = KeyRange::new(splits.clone(), owners).unwrap();
        if splits.contains(&at) {
            prop_assert_eq!(r.split(at, ShardId(99)).unwrap_err(), Error::NoSuchBoundary(at));
        } else {
            let s = r.split(at, ShardId(99)).unwrap();
            // Keys below `at` are untouched; keys in [at, next split) moved to 99.
            let next = splits.iter().copied().find(|&x| x > at).unwrap_or(u64::MAX);
            let expected = if (at..next).contains(&probe) { ShardId(99) } else { r.shard_of(ShardKey::Int(probe)) };
            prop_assert_eq!(s.shard_of(ShardKey::Int(probe)), expected);
            let m = s.merge(at).unwrap();
            prop_assert_eq!(m.splits(), r.splits());
            prop_assert_eq!(m.shard_of(ShardKey::Int(probe)), r.shard_of(ShardKey::Int(probe)));
        }
    }
}

/// The chapter's numbers: 4 -> 5 shards moves ~80% of keys under modulo, ~20% with slots or a ring.
#[test]
fn resharding_fractions() {
    let keys = 0..100_000u64;
    let modulo = ReshardPlan::new(
        Arc::new(Modulo::new(4).unwrap()),
        Arc::new(Modulo::new(5).unwrap()),
    );
    let m = modulo.estimate(keys.clone());
    assert!(
        (m.fraction - 0.8).abs() < 0.01,
        "modulo moved {}",
        m.fraction
    );
    assert!(
        (m.minimum_fraction - 0.2).abs() < 0.01,
        "minimum {}",
        m.minimum_fraction
    );

    let four = HashSlots::even(ids(4)).unwrap();
    let slots = ReshardPlan::new(
        Arc::new(four.clone()),
        Arc::new(four.rebalanced(ids(5)).unwrap()),
    );
    let (moved, minimum) = slots.slot_fractions().unwrap();
    assert!(
        (moved - 0.2).abs() < 0.001 && (moved - minimum).abs() < 1e-9,
        "{moved} {minimum}"
    );
    let est = slots.estimate(keys.clone());
    assert!(
        (est.fraction - 0.2).abs() < 0.01,
        "slots moved {}",
        est.fraction
    );
    // Only the new shard receives slots.
    assert!(slots.steps().iter().all(|s| s.target == ShardId(4)));

    let ring = ReshardPlan::new(
        Arc::new(Consistent::ring(4).unwrap()),
        Arc::new(Consistent::ring(5).unwrap()),
    );
    let r = ring.estimate(keys);
    assert!((r.fraction - 0.2).abs() < 0.04, "ring moved {}", r.fraction);
}

#[test]
fn rebalanced_slots_keep_owners_where_possible() {
    let five = HashSlots::even(ids(5)).unwrap();
    let four = five.rebalanced(ids(4)).unwrap(); // shard 4 leaves
    let counts = four.slot_counts();
    assert_eq!(counts.iter().sum::<usize>(), 16_384);
    assert!(counts.iter().all(|&c| c == 4096), "{counts:?}");
    let plan = ReshardPlan::new(Arc::new(five), Arc::new(four));
    assert!(plan.steps().iter().all(|s| s.source == ShardId(4)));
}

#[test]
fn construction_errors() {
    assert_eq!(Modulo::new(0).unwrap_err(), Error::EmptyShardSet);
    assert_eq!(
        Modulo::over([ShardId(1), ShardId(1)]).unwrap_err(),
        Error::DuplicateShard(ShardId(1))
    );
    assert_eq!(
        KeyRange::new([5, 5], ids(3)).unwrap_err(),
        Error::UnsortedRanges {
            previous: 5,
            next: 5
        }
    );
    assert_eq!(
        KeyRange::new([0], ids(2)).unwrap_err(),
        Error::UnsortedRanges {
            previous: 0,
            next: 0
        }
    );
    assert_eq!(
        KeyRange::new([5], ids(3)).unwrap_err(),
        Error::RangeShardMismatch {
            splits: 1,
            shards: 3
        }
    );
    assert_eq!(
        HashSlots::from_table(&[ShardId(0); 10]).unwrap_err(),
        Error::SlotTableSize {
            got: 10,
            expected: 16_384
        }
    );
    // A map whose strategy can route to a shard it does not have is refused.
    let err = ShardMap::builder()
        .shards(ids(3).map(|i| (i, ())))
        .strategy(Modulo::new(4).unwrap())
        .build()
        .unwrap_err();
    assert_eq!(err, Error::UnknownShard(ShardId(3)));
    let empty: Result<ShardMap<()>, _> = ShardMap::builder()
        .strategy(Modulo::new(1).unwrap())
        .build();
    assert_eq!(empty.unwrap_err(), Error::EmptyShardSet);
    assert_eq!(err.to_string(), "unknown shard #3");
}

#[test]
fn pins_override_and_unpin() {
    let map = ShardMap::builder()
        .shards(ids(5).map(|i| (i, ())))
        .strategy(Modulo::new(4).unwrap())
        .build()
        .unwrap();
    let plan = map.plan_pin(&42u64, ShardId(4)).unwrap();
    assert_eq!(plan.steps().len(), 1);
    assert_eq!(
        (plan.steps()[0].source, plan.steps()[0].target),
        (ShardId(2), ShardId(4))
    );
    let id = map.begin(plan).unwrap();
    assert_eq!(map.route(&42u64), Route::Shard(ShardId(2)));
    map.start_step(id, 0).unwrap();
    assert_eq!(
        map.route(&42u64),
        Route::Preparing {
            source: ShardId(2),
            target: ShardId(4)
        }
    );
    map.open_step(id, 0).unwrap();
    assert_eq!(
        map.route(&42u64),
        Route::Migrating {
            source: ShardId(2),
            target: ShardId(4)
        }
    );
    assert_eq!(
        map.route(&46u64),
        Route::Shard(ShardId(2)),
        "other keys are untouched"
    );
    map.finish_step(id, 0).unwrap();
    map.complete(id).unwrap();
    assert_eq!(map.route(&42u64), Route::Shard(ShardId(4)));
    assert!(
        map.snapshot()
            .strategy()
            .pinned(ShardKey::Int(42))
            .is_some()
    );
}

#[test]
fn multi_key_requests_get_tryagain_or_crossslot() {
    let map = ShardMap::builder()
        .shards(ids(5).map(|i| (i, ())))
        .strategy(Modulo::new(4).unwrap())
        .build()
        .unwrap();
    let snap = map.snapshot();
    assert_eq!(
        snap.route_all(["{u1}:a", "{u1}:b"]).unwrap(),
        Some(snap.route("u1").first_shard())
    );
    let (a, b) = (0u64..)
        .map(|k| (k, k + 1))
        .find(|(a, b)| snap.route(a) != snap.route(b))
        .unwrap();
    assert_eq!(
        snap.route_all([a, b]),
        Err(tierkit_shard::Redirect::CrossSlot)
    );
    // Pin 42 away: while its step copies, any request touching it must retry.
    let id = map
        .begin(map.plan_pin(&42u64, ShardId(4)).unwrap())
        .unwrap();
    map.start_step(id, 0).unwrap();
    let same_shard = (0u64..)
        .find(|k| *k != 42 && map.route(k) == Route::Shard(ShardId(2)))
        .unwrap();
    assert_eq!(
        map.snapshot().route_all([same_shard, 42]),
        Err(tierkit_shard::Redirect::TryAgain)
    );
    assert_eq!(map.snapshot().route_all([same_shard]), Ok(Some(ShardId(2))));
}

/// Issue 19, finding 3: Redis refuses keys in different slots even when one node serves both.
#[test]
fn multi_key_requests_on_one_shard_but_two_slots_are_crossslot() {
    let map = ShardMap::builder()
        .shards(ids(3).map(|i| (i, ())))
        .strategy(HashSlots::even(ids(3)).unwrap())
        .build()
        .unwrap();
    let snap = map.snapshot();
    let (a, b) = (
        "a",
        (0..)
            .map(|i| format!("k{i}"))
            .find(|k| {
                snap.route(k) == snap.route("a")
                    && HashSlots::slot(ShardKey::Bytes(k.as_bytes()))
                        != HashSlots::slot(ShardKey::Bytes(b"a"))
            })
            .unwrap(),
    );
    assert_eq!(
        snap.route_all([a, b.as_str()]),
        Err(tierkit_shard::Redirect::CrossSlot)
    );
    assert_eq!(
        snap.route_all(["{a}x", "{a}y"]),
        Ok(Some(snap.route("a").first_shard()))
    );
    assert_eq!(snap.route_all(Vec::<&str>::new()), Ok(None));
}

#[test]
fn spread_reads_cover_several_shards() {
    let map = ShardMap::builder()
        .shards(ids(8).map(|i| (i, ())))
        .strategy(HashSlots::even(ids(8)).unwrap())
        .build()
        .unwrap();
    let snap = map.snapshot();
    let mut per_shard = [0usize; 8];
    for pick in 0..8_000u32 {
        let (sub, route) = snap.route_spread_read("celebrity", 8, pick);
        assert_eq!(sub.is_none(), pick % 8 == 0);
        per_shard[route.first_shard().0 as usize] += 1;
    }
    let used = per_shard.iter().filter(|&&n| n > 0).count();
    assert!(
        used >= 4,
        "8 copies landed on only {used} shards: {per_shard:?}"
    );
    let writes: Vec<_> = snap.route_spread_writes("celebrity", 8).collect();
    assert_eq!(writes.len(), 8);
    assert_eq!(writes[0], (None, snap.route("celebrity")));
}

#[test]
fn shared_handles_are_kept_as_given() {
    let handle = std::sync::Arc::new("postgres://shard-0".to_string());
    let map = tierkit_shard::ShardMap::builder()
        .shard_arc(tierkit_shard::ShardId(0), handle.clone())
        .shard(tierkit_shard::ShardId(1), "postgres://shard-1".to_string())
        .strategy(tierkit_shard::Modulo::new(2).unwrap())
        .build()
        .unwrap();
    let got = map.shard(tierkit_shard::ShardId(0)).unwrap();
    assert!(std::sync::Arc::ptr_eq(&got, &handle));
}
