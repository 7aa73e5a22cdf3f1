//! The Migrator moves exactly the keys whose owner changes, survives failing callbacks by
//! resuming, and cuts over at the end.

use std::collections::BTreeMap;

use tierkit_shard::{
    HashSlots, MigrateError, MigrationIo, Migrator, Modulo, Progress, ReshardPlan, Route, ShardId,
    ShardMap, Step,
};

type Shards = BTreeMap<ShardId, BTreeMap<u64, String>>;

/// Storage whose callbacks fail on chosen call numbers.
struct Io {
    shards: Shards,
    calls: usize,
    fail_on: Vec<usize>,
    progress: Vec<Progress>,
}

impl Io {
    fn tick(&mut self) -> Result<(), String> {
        self.calls += 1;
        if self.fail_on.contains(&self.calls) {
            Err(format!("injected failure at call {}", self.calls))
        } else {
            Ok(())
        }
    }
}

impl MigrationIo for Io {
    type Key = u64;
    type Error = String;

    fn scan(
        &mut self,
        plan: &ReshardPlan,
        step: &Step,
        cursor: u64,
    ) -> Result<(Vec<u64>, u64), String> {
        self.tick()?;
        // Pages of up to 5 keys above `cursor - 1`.
        let page: Vec<u64> = self.shards[&step.source]
            .keys()
            .copied()
            .filter(|&k| k + 1 > cursor && plan.moves(&k) == Some((step.source, step.target)))
            .take(5)
            .collect();
        let next = if page.len() == 5 { page[4] + 2 } else { 0 };
        Ok((page, next))
    }

    fn move_keys(&mut self, step: &Step, keys: &[u64]) -> Result<(), String> {
        self.tick()?;
        // One thread owns both maps here: copying and deleting is atomic per key.
        for k in keys {
            if let Some(v) = self.shards.get_mut(&step.source).unwrap().remove(k) {
                self.shards.get_mut(&step.target).unwrap().insert(*k, v);
            }
        }
        Ok(())
    }

    fn progress(&mut self, p: &Progress) {
        self.progress.push(*p);
    }
}

fn setup(n_old: u32, n_new: u32) -> (ShardMap<()>, Io) {
    let map = ShardMap::builder()
        .shards((0..n_new).map(|i| (ShardId(i), ())))
        .strategy(HashSlots::even((0..n_old).map(ShardId)).unwrap())
        .build()
        .unwrap();
    let mut shards: Shards = (0..n_new).map(|i| (ShardId(i), BTreeMap::new())).collect();
    for k in 0..500u64 {
        let Route::Shard(s) = map.route(&k) else {
            unreachable!()
        };
        shards.get_mut(&s).unwrap().insert(k, format!("v{k}"));
    }
    (
        map,
        Io {
            shards,
            calls: 0,
            fail_on: Vec::new(),
            progress: Vec::new(),
        },
    )
}

fn check_final(map: &ShardMap<()>, io: &Io) {
    for k in 0..500u64 {
        let Route::Shard(owner) = map.route(&k) else {
            panic!("still migrating")
        };
        let holders: Vec<ShardId> = io
            .shards
            .iter()
            .filter(|(_, m)| m.contains_key(&k))
            .map(|(s, _)| *s)
            .collect();
        assert_eq!(holders, vec![owner], "key {k}");
        assert_eq!(io.shards[&owner][&k], format!("v{k}"));
    }
}

#[test]
fn moves_exactly_the_changed_keys() {
    let (map, mut io) = setup(4, 5);
    let plan = map
        .plan_to(
            HashSlots::even((0..4).map(ShardId))
                .unwrap()
                .rebalanced((0..5).map(ShardId))
                .unwrap(),
        )
        .unwrap();
    let expected = plan.estimate(0..500u64).moved as u64;
    let mut m = Migrator::start(&map, plan).unwrap();
    let p = m.run(&mut io).unwrap();
    assert!(p.complete);
    assert_eq!(p.keys_moved, expected);
    assert!(
        io.progress
            .windows(2)
            .all(|w| w[0].steps_done <= w[1].steps_done)
    );
    check_final(&map, &io);
}

#[test]
fn resumes_after_failures() {
    let (map, mut io) = setup(3, 4);
    io.fail_on = vec![2, 7, 8, 20, 33];
    let plan = map.plan_to(Modulo::new(4).unwrap()).unwrap();
    let mut m = Migrator::start(&map, plan).unwrap();
    let mut failures = 0;
    loop {
        match m.run(&mut io) {
            Ok(p) => {
                assert!(p.complete);
                break;
            }
            Err(MigrateError::Io { during, error, .. }) => {
                failures += 1;
                assert!(error.contains("injected"), "{during}: {error}");
                // Every other time, resume from a fresh Migrator (as after a process restart).
                if failures % 2 == 0 {
                    m = Migrator::resume(&map).unwrap();
                }
            }
            Err(other) => panic!("{other}"),
        }
    }
    assert_eq!(failures, 5);
    check_final(&map, &io);
}
