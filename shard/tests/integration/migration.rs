//! Model check of online migration: shards are `BTreeMap`s, clients route with possibly stale
//! snapshots and shard servers validate with `Snapshot::check` (MOVED / ASK), interleaved at
//! random with a migrator's steps (start, scan, copy, delete, finish, cut-over). After every
//! event every key reads back its last written value (no loss, no resurrection), and after the
//! cut-over every key lives on exactly one shard, the one it routes to.

use std::collections::BTreeMap;
use std::sync::Arc;

use proptest::prelude::*;
use tierkit_shard::{
    Consistent, HashSlots, Modulo, Redirect, ReshardPlan, Route, ShardId, ShardMap, ShardStrategy,
    Snapshot,
};

type Shards = BTreeMap<ShardId, BTreeMap<u64, u64>>;

#[derive(Debug, Clone)]
enum Op {
    /// A client routes key with the current snapshot and queues the operation.
    Route { key: u64, value: Option<u64> },
    /// The oldest queued operation reaches its shard (validated against the current snapshot).
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

#[derive(Debug)]
enum Phase {
    Start,
    Scan,
    Copy(Vec<u64>),
    Delete(Vec<u64>),
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
        match std::mem::replace(&mut self.phase, Phase::Done) {
            Phase::Start if self.step == steps.len() => self.phase = Phase::Complete,
            Phase::Start => {
                map.start_step(self.id, self.step).unwrap();
                self.phase = Phase::Scan;
            }
            Phase::Scan => {
                let s = &steps[self.step];
                let keys: Vec<u64> = shards[&s.source]
                    .keys()
                    .copied()
                    .filter(|k| self.plan.moves(k) == Some((s.source, s.target)))
                    .collect();
                if keys.is_empty() {
                    map.finish_step(self.id, self.step).unwrap();
                    self.step += 1;
                    self.phase = Phase::Start;
                } else {
                    self.phase = Phase::Copy(keys);
                }
            }
            Phase::Copy(keys) => {
                // Per key, atomically: the source's current value, unless the target has one.
                let s = &steps[self.step];
                for k in &keys {
                    if let Some(&v) = shards[&s.source].get(k) {
                        shards.get_mut(&s.target).unwrap().entry(*k).or_insert(v);
                    }
                }
                self.phase = Phase::Delete(keys);
            }
            Phase::Delete(keys) => {
                let s = &steps[self.step];
                for k in &keys {
                    shards.get_mut(&s.source).unwrap().remove(k);
                }
                self.phase = Phase::Scan;
            }
            Phase::Complete => {
                map.complete(self.id).unwrap();
                self.phase = Phase::Done;
            }
            Phase::Done => self.phase = Phase::Done,
        }
    }
}

/// A write or delete reaching shard `at` with a possibly stale route, validated by the server.
fn apply(snap: &Snapshot<()>, shards: &mut Shards, key: u64, value: Option<u64>, route: Route) {
    let mut at = match (route, value) {
        // Deletes during a migration go to both: source first, then target.
        (Route::Migrating { source, target }, None) => {
            shards.get_mut(&source).unwrap().remove(&key);
            target
        }
        (r, _) => r.write_shard(),
    };
    for _ in 0..4 {
        let has = shards[&at].contains_key(&key);
        match snap.check(&key, at, true, has) {
            Ok(()) => {
                let shard = shards.get_mut(&at).unwrap();
                match value {
                    Some(v) => shard.insert(key, v),
                    None => shard.remove(&key),
                };
                return;
            }
            Err(Redirect::Ask(target)) => {
                if value.is_none() {
                    // A delete asked away from the source removes the source copy too.
                    shards.get_mut(&at).unwrap().remove(&key);
                }
                at = target;
            }
            Err(Redirect::Moved(s)) => at = s,
            Err(other) => panic!("unexpected redirect {other:?}"),
        }
    }
    panic!("write of {key} bounced more than 4 times");
}

/// The read protocol: target, then source, then target again, with server-side checks.
fn read(snap: &Snapshot<()>, shards: &Shards, key: u64) -> Option<u64> {
    match snap.route(&key) {
        Route::Shard(s) => {
            assert_eq!(
                snap.check(&key, s, false, shards[&s].contains_key(&key)),
                Ok(())
            );
            shards[&s].get(&key).copied()
        }
        Route::Migrating { source, target } => shards[&target]
            .get(&key)
            .or_else(|| shards[&source].get(&key))
            .or_else(|| shards[&target].get(&key))
            .copied(),
    }
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
    // Some data before the migration starts.
    for key in 0..40 {
        let route = map.route(&key);
        apply(&map.snapshot(), &mut shards, key, Some(key), route);
        truth.insert(key, key);
    }
    let plan = Arc::new(map.plan_to(to).unwrap());
    let mut migrator = Migrator {
        id: map.begin((*plan).clone()).unwrap(),
        plan,
        step: 0,
        phase: Phase::Start,
    };
    let mut queue: std::collections::VecDeque<(u64, Option<u64>, Route)> = Default::default();
    let ops = ops
        .into_iter()
        .chain(std::iter::repeat_n(Op::Migrate, 2_000));
    for op in ops {
        match op {
            Op::Route { key, value } => queue.push_back((key, value, map.route(&key))),
            Op::Apply => {
                if let Some((key, value, route)) = queue.pop_front() {
                    apply(&map.snapshot(), &mut shards, key, value, route);
                    match value {
                        Some(v) => truth.insert(key, v),
                        None => truth.remove(&key),
                    };
                }
            }
            Op::Read { key } => {
                prop_assert_eq!(
                    read(&map.snapshot(), &shards, key),
                    truth.get(&key).copied(),
                    "key {}",
                    key
                );
            }
            Op::Migrate => migrator.advance(&map, &mut shards),
        }
        if matches!(migrator.phase, Phase::Done) && queue.is_empty() {
            break;
        }
        // Drain the queue at the end so every queued write lands.
        if matches!(migrator.phase, Phase::Done) {
            while let Some((key, value, route)) = queue.pop_front() {
                apply(&map.snapshot(), &mut shards, key, value, route);
                match value {
                    Some(v) => truth.insert(key, v),
                    None => truth.remove(&key),
                };
            }
        }
    }
    prop_assert!(
        matches!(migrator.phase, Phase::Done),
        "migration did not finish"
    );
    // Every key reads back, and lives on exactly one shard: the one it routes to.
    let snap = map.snapshot();
    for key in 0..40u64 {
        prop_assert_eq!(read(&snap, &shards, key), truth.get(&key).copied());
        let holders: Vec<ShardId> = shards
            .iter()
            .filter(|(_, m)| m.contains_key(&key))
            .map(|(id, _)| *id)
            .collect();
        match truth.get(&key) {
            Some(_) => {
                prop_assert_eq!(holders, vec![snap.route(&key).write_shard()], "key {}", key)
            }
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
