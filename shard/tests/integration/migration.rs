//! Random interleavings of the migration protocol at scale (the exhaustive check of every
//! interleaving on two keys is `examples/protocol_check`, run by CI): shards are `BTreeMap`s of
//! [`Entry`]s, clients route with snapshots they hold (possibly for a long time) and run the
//! crate's [`KeyOp`]; the migrator runs [`MoveKey`] and opens each step only when the map's real
//! drain ([`ShardMap::wait_for_views_before`]) says no older view is held. Each request runs
//! whole, so a plain `BTreeMap` is the model: every read equals it, and after the cut-over every
//! key lives on exactly one shard, the one it routes to, with no marker left.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use tierkit_shard::{
    Consistent, Entry, HashSlots, KeyOp, Modulo, MoveKey, Next, Outcome, Request, ReshardPlan,
    ShardId, ShardMap, ShardStrategy, Snapshot, StoreOp, StoreReply,
};

type Shards = BTreeMap<ShardId, BTreeMap<u64, Entry<u64>>>;

#[derive(Debug, Clone)]
enum Op {
    /// A client routes a write (or a delete) with the current snapshot and holds it.
    Route { key: u64, value: Option<u64> },
    /// The oldest held request runs.
    Apply,
    /// A client reads a key with a snapshot taken now.
    Read { key: u64 },
    /// The migrator does its next thing.
    Migrate,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u64..40, prop::option::weighted(0.8, 0u64..1000)).prop_map(|(key, value)| Op::Route { key, value }),
        3 => Just(Op::Apply),
        2 => (0u64..40).prop_map(|key| Op::Read { key }),
        3 => Just(Op::Migrate),
    ]
}

fn exec(shards: &mut Shards, key: u64, op: &StoreOp<u64>) -> StoreReply<u64> {
    match op {
        StoreOp::Get(s) => StoreReply::Got(shards[s].get(&key).cloned()),
        StoreOp::Set(s, e) => {
            shards.get_mut(s).unwrap().insert(key, e.clone());
            StoreReply::Done
        }
        StoreOp::CompareAndSet {
            shard,
            expected,
            new,
        } => {
            let store = shards.get_mut(shard).unwrap();
            let hit = store.get(&key) == Some(expected);
            if hit {
                store.insert(key, new.clone());
            }
            StoreReply::Swapped(hit)
        }
        StoreOp::Delete(s) => {
            shards.get_mut(s).unwrap().remove(&key);
            StoreReply::Done
        }
    }
}

/// Runs one request to its end with the route of `snap`.
fn run_request(
    snap: &Snapshot<()>,
    shards: &mut Shards,
    key: u64,
    request: Request<u64>,
) -> Outcome<u64> {
    let mut op = KeyOp::new(snap.route(&key), request);
    let mut reply = None;
    for _ in 0..16 {
        match op.next(reply.take()) {
            Next::Op(o) => reply = Some(exec(shards, key, &o)),
            Next::Finished(outcome) => return outcome,
        }
    }
    panic!("request on {key} did not finish");
}

enum Phase {
    Start,
    Drain(u64),
    Scan,
    Finish,
    Complete,
    Done,
}

struct Migrator {
    id: u64,
    plan: Arc<ReshardPlan>,
    step: usize,
    phase: Phase,
}

impl Migrator {
    fn advance(&mut self, map: &ShardMap<()>, shards: &mut Shards) {
        let steps = self.plan.steps();
        match self.phase {
            Phase::Start if self.step == steps.len() => self.phase = Phase::Complete,
            Phase::Start => self.phase = Phase::Drain(map.start_step(self.id, self.step).unwrap()),
            Phase::Drain(version) => {
                if map.wait_for_views_before(version, Duration::ZERO).is_ok() {
                    map.open_step(self.id, self.step).unwrap();
                    self.phase = Phase::Scan;
                }
            }
            Phase::Scan => {
                let s = &steps[self.step];
                let keys: Vec<u64> = shards[&s.source]
                    .keys()
                    .copied()
                    .filter(|k| self.plan.moves(k) == Some((s.source, s.target)))
                    .collect();
                if keys.is_empty() {
                    self.phase = Phase::Finish;
                }
                for k in keys {
                    let mut m = MoveKey::new(s.source, s.target);
                    let mut reply = None;
                    while let Next::Op(o) = m.next(reply.take()) {
                        reply = Some(exec(shards, k, &o));
                    }
                }
            }
            Phase::Finish => {
                map.finish_step(self.id, self.step).unwrap();
                self.step += 1;
                self.phase = Phase::Start;
            }
            Phase::Complete => {
                map.complete(self.id).unwrap();
                self.phase = Phase::Done;
            }
            Phase::Done => {}
        }
    }
}

type Held = VecDeque<(u64, Option<u64>, Arc<Snapshot<()>>)>;

/// Runs the oldest held request; a TRYAGAIN goes back to the queue with a fresh view.
fn apply(map: &ShardMap<()>, shards: &mut Shards, truth: &mut BTreeMap<u64, u64>, held: &mut Held) {
    let Some((key, value, snap)) = held.pop_front() else {
        return;
    };
    let request = value.map_or(Request::Delete, Request::Write);
    match run_request(&snap, shards, key, request) {
        Outcome::Done => match value {
            Some(v) => truth.insert(key, v),
            None => truth.remove(&key),
        },
        Outcome::TryAgain => {
            drop(snap);
            held.push_back((key, value, map.snapshot()));
            None
        }
        Outcome::Read(_) => unreachable!("a write"),
    };
}

fn run(
    from: Arc<dyn ShardStrategy>,
    to: impl ShardStrategy + 'static,
    ops: Vec<Op>,
) -> Result<(), TestCaseError> {
    let mut shards: Shards = (0..5).map(|i| (ShardId(i), BTreeMap::new())).collect();
    let map = ShardMap::builder()
        .shards(from.shards().iter().map(|&i| (i, ())))
        .strategy(from)
        .build()
        .unwrap();
    for id in 0..5 {
        let _ = map.add_shard(ShardId(id), ());
    }
    let mut truth: BTreeMap<u64, u64> = BTreeMap::new();
    for key in 0..40 {
        let snap = map.snapshot();
        run_request(&snap, &mut shards, key, Request::Write(key));
        truth.insert(key, key);
    }
    let plan = Arc::new(map.plan_to(to).unwrap());
    let mut migrator = Migrator {
        id: map.begin((*plan).clone()).unwrap(),
        plan,
        step: 0,
        phase: Phase::Start,
    };
    let mut held: Held = VecDeque::new();
    for op in ops {
        match op {
            Op::Route { key, value } => held.push_back((key, value, map.snapshot())),
            Op::Apply => apply(&map, &mut shards, &mut truth, &mut held),
            Op::Read { key } => {
                let snap = map.snapshot();
                match run_request(&snap, &mut shards, key, Request::Read) {
                    Outcome::Read(got) => {
                        prop_assert_eq!(got, truth.get(&key).copied(), "key {}", key)
                    }
                    Outcome::TryAgain => {}
                    Outcome::Done => unreachable!("a read"),
                }
            }
            Op::Migrate => migrator.advance(&map, &mut shards),
        }
    }
    // Drain the held requests (which releases their views), then finish the migration.
    for _ in 0..10_000 {
        if held.is_empty() && matches!(migrator.phase, Phase::Done) {
            break;
        }
        apply(&map, &mut shards, &mut truth, &mut held);
        migrator.advance(&map, &mut shards);
    }
    prop_assert!(
        matches!(migrator.phase, Phase::Done),
        "migration did not finish"
    );
    // Every key reads back, and lives on exactly one shard: the one it routes to.
    let snap = map.snapshot();
    for key in 0..40u64 {
        let got = run_request(&snap, &mut shards, key, Request::Read);
        prop_assert_eq!(got, Outcome::Read(truth.get(&key).copied()));
        let holders: Vec<(ShardId, Entry<u64>)> = shards
            .iter()
            .filter_map(|(id, m)| m.get(&key).map(|e| (*id, e.clone())))
            .collect();
        match truth.get(&key) {
            Some(v) => prop_assert_eq!(
                holders,
                vec![(snap.route(&key).first_shard(), Entry::Value(*v))],
                "key {}",
                key
            ),
            None => prop_assert!(holders.is_empty(), "deleted key {} on {:?}", key, holders),
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn modulo_3_to_4(ops in prop::collection::vec(op(), 1..300)) {
        run(Arc::new(Modulo::new(3).unwrap()), Modulo::new(4).unwrap(), ops)?;
    }

    #[test]
    fn slots_3_to_4(ops in prop::collection::vec(op(), 1..300)) {
        let three = HashSlots::even((0..3).map(ShardId)).unwrap();
        let four = three.rebalanced((0..4).map(ShardId)).unwrap();
        run(Arc::new(three), four, ops)?;
    }

    #[test]
    fn ring_3_to_5(ops in prop::collection::vec(op(), 1..300)) {
        run(Arc::new(Consistent::ring(3).unwrap()), Consistent::ring(5).unwrap(), ops)?;
    }
}

/// The checker of every interleaving, on a small scenario (CI runs the larger one in release).
#[path = "../../examples/protocol_check/model.rs"]
#[allow(dead_code, unreachable_pub)]
mod model;

#[test]
fn every_interleaving_of_the_protocol_is_safe_and_the_broken_variants_are_caught() {
    use model::{Scenario, Variant, explore};
    let ok = explore(Variant::Fixed, &Scenario::small(), 5_000_000);
    assert!(ok.violation.is_none(), "{:?}", ok.violation);
    assert!(ok.states > 10_000, "explored only {} states", ok.states);
    for broken in [
        Variant::TargetFirst,
        Variant::TargetFirstDrained,
        Variant::NoDrain,
    ] {
        let r = explore(broken, &Scenario::small(), 5_000_000);
        assert!(r.violation.is_some(), "{broken:?} passed");
    }
}

#[test]
fn the_drain_waits_for_older_views_and_wakes_on_their_drop() {
    let map = ShardMap::builder()
        .shards((0..2).map(|i| (ShardId(i), ())))
        .strategy(Modulo::new(1).unwrap())
        .build()
        .unwrap();
    let held = map.snapshot();
    let id = map
        .begin(map.plan_to(Modulo::new(2).unwrap()).unwrap())
        .unwrap();
    let started = map.start_step(id, 0).unwrap();
    assert_eq!(
        map.wait_for_views_before(started, Duration::ZERO),
        Err(tierkit_shard::Error::ViewsInUse {
            version: started,
            views: 1
        })
    );
    // A thread blocked without deadline wakes when the old view is dropped (no polling).
    std::thread::scope(|s| {
        let waiter = s.spawn(|| map.wait_for_views_before(started, Duration::MAX));
        drop(held);
        assert_eq!(waiter.join().unwrap(), Ok(()));
    });
    // Views loaded after the step started do not block it.
    let _new = map.snapshot();
    assert_eq!(map.wait_for_views_before(started, Duration::ZERO), Ok(()));
}
