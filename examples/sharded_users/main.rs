//! Sharding users, the celebrity problem and resharding, while traffic continues.
//!
//! ```text
//! cargo run --release --example sharded_users
//! TIERKIT_SERVERS=redis-cluster .ci/with-servers cargo run --release --example sharded_users -- --redis
//! ```
//!
//! 100,000 users live on 4 shards (Redis-style hash slots by user id). Two client threads read
//! and write profiles; one celebrity draws a third of all traffic and overloads its shard. The
//! hot-key detector finds the celebrity, the map pins them to a dedicated shard (a one-key
//! migration), then the cluster grows from 4 to 5 shards with a live migration. Every read and
//! write goes through the route protocol (server-side MOVED/ASK checks), and at the end every
//! user's profile is verified against the last value written. Deterministic workload (seeded).
//!
//! `--redis` runs the 4 -> 5 story on a real Redis Cluster instead: the 3-master cluster named
//! by `TIERKIT_REDIS_CLUSTER` (`.ci/with-servers` starts one), grown with masters of the
//! example's own on the next two ports and `redis-cli --cluster rebalance`, 20,000 users, and
//! put back as it was found (see `mod redis_mode`). It repairs what an interrupted earlier run
//! left, so it can run again on the same cluster.

// Request counts become percentages for display.
#![allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tierkit::shard::{
    Arrival, HashSlots, HotKeyDetector, MigrationIo, Migrator, Redirect, ReshardPlan, ShardId,
    ShardMap, Step,
};

const USERS: u64 = 100_000;
const CELEBRITY: u64 = 42_424;
const CELEBRITY_SHARD: ShardId = ShardId(9);

/// One shard: a table of profiles and a request counter.
#[derive(Default)]
struct Shard {
    rows: Mutex<BTreeMap<u64, u64>>,
    requests: AtomicU64,
}

type Map = ShardMap<Shard>;

fn lock(shard: &Shard) -> std::sync::MutexGuard<'_, BTreeMap<u64, u64>> {
    shard.rows.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One request as shard servers execute it (Redis Cluster's rules): each shard validates
/// under its own lock with the map's current view and answers MOVED / ASK / TRYAGAIN, which the
/// client follows. `op` runs on the rows once a shard accepts.
fn request<T>(map: &Map, user: u64, mut op: impl FnMut(&mut BTreeMap<u64, u64>) -> T) -> T {
    let (mut at, mut asking) = (map.route(&user).first_shard(), false);
    loop {
        let shard = map.shard(at).expect("routes name existing shards");
        shard.requests.fetch_add(1, Ordering::Relaxed);
        let mut rows = lock(&shard);
        let arrival = match (asking, rows.contains_key(&user)) {
            (true, _) => Arrival::Asking,
            (false, true) => Arrival::Present,
            (false, false) => Arrival::Absent,
        };
        match map.snapshot().check(&user, at, arrival) {
            Ok(()) => return op(&mut rows),
            Err(Redirect::Ask(s)) => (at, asking) = (s, true),
            Err(Redirect::Moved(s)) => (at, asking) = (s, false),
            Err(_) => {
                // TRYAGAIN: the step is preparing; route again with a newer view.
                drop(rows);
                std::thread::yield_now();
                (at, asking) = (map.route(&user).first_shard(), false);
            }
        }
    }
}

fn write(map: &Map, user: u64, value: u64) {
    request(map, user, |rows| rows.insert(user, value));
}

fn read(map: &Map, user: u64) -> Option<u64> {
    request(map, user, |rows| rows.get(&user).copied())
}

/// The migrator's access to the shards.
struct Io<'a> {
    map: &'a Map,
}

impl MigrationIo for Io<'_> {
    type Key = u64;
    type Error = std::convert::Infallible;

    fn scan(
        &mut self,
        plan: &ReshardPlan,
        step: &Step,
        cursor: u64,
    ) -> Result<(Vec<u64>, u64), Self::Error> {
        let shard = self.map.shard(step.source).expect("plan shards exist");
        let rows = lock(&shard);
        let page: Vec<u64> = rows
            .range(cursor..)
            .map(|(k, _)| *k)
            .filter(|k| plan.moves(k) == Some((step.source, step.target)))
            .take(1024)
            .collect();
        let next = if page.len() == 1024 {
            page[1023] + 1
        } else {
            0
        };
        Ok((page, next))
    }

    fn move_keys(&mut self, step: &Step, keys: &[u64]) -> Result<(), Self::Error> {
        let (source, target) = (self.map.shard(step.source), self.map.shard(step.target));
        let (Some(source), Some(target)) = (source, target) else {
            return Ok(());
        };
        for k in keys {
            // Per key, atomically (as Redis's MIGRATE): lock source then target, always in
            // that order; clients hold one shard lock at a time.
            let mut from = lock(&source);
            if let Some(v) = from.remove(k) {
                lock(&target).insert(*k, v);
            }
        }
        Ok(())
    }
}

/// Deterministic traffic: 1/3 to the celebrity, the rest Zipf-ish over all users.
struct Traffic(u64);
impl Traffic {
    fn next_user(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        if self.0.is_multiple_of(3) {
            CELEBRITY
        } else {
            (self.0 >> 8) % USERS
        }
    }
}

/// Runs two client threads until `stop`; each writes only its own users (`user % 2 == t`) and
/// remembers its last write, so the final state can be checked exactly.
fn clients(
    map: &Map,
    detector: &HotKeyDetector<u64>,
    stop: &AtomicBool,
    ops: u64,
    last: &[Mutex<BTreeMap<u64, u64>>; 2],
) -> u64 {
    let errors = AtomicU64::new(0);
    std::thread::scope(|s| {
        for t in 0..2u64 {
            let (errors, last) = (&errors, &last[t as usize]);
            s.spawn(move || {
                let mut traffic = Traffic(0x9e37_79b9 + t);
                let mut n = 0;
                while n < ops || (ops == 0 && !stop.load(Ordering::Relaxed)) {
                    if ops == 0 && stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let user = traffic.next_user();
                    detector.record(&user);
                    if n % 10 == 0 && user % 2 == t {
                        let value = n + 1_000_000 * (t + 1);
                        write(map, user, value);
                        last.lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .insert(user, value);
                    } else if read(map, user).is_none() {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                    n += 1;
                }
            });
        }
    });
    errors.into_inner()
}

fn loads(map: &Map) -> Vec<(ShardId, u64)> {
    let snap = map.snapshot();
    snap.shard_ids()
        .filter_map(|id| {
            snap.shard(id)
                .map(|s| (id, s.requests.swap(0, Ordering::Relaxed)))
        })
        .collect()
}

fn print_loads(title: &str, loads: &[(ShardId, u64)]) {
    let total: u64 = loads.iter().map(|(_, n)| n).sum::<u64>().max(1);
    // Balance among the regular shards (the celebrity's dedicated shard is busy by design).
    let regular: Vec<u64> = loads
        .iter()
        .filter(|(id, n)| *id != CELEBRITY_SHARD && *n > 0)
        .map(|(_, n)| *n)
        .collect();
    let max = regular.iter().copied().max().unwrap_or(0);
    let mean = regular.iter().sum::<u64>() as f64 / regular.len().max(1) as f64;
    println!(
        "{title}: busiest regular shard {:.2}x their mean",
        max as f64 / mean
    );
    for (id, n) in loads.iter().filter(|(_, n)| *n > 0) {
        let share = *n as f64 / total as f64;
        println!(
            "  shard {id:<4} {:>6.1}%  {}",
            share * 100.0,
            "#".repeat((share * 60.0) as usize)
        );
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::args().any(|a| a == "--redis") {
        return redis_mode::run();
    }
    let four = HashSlots::even((0..4).map(ShardId))?;
    let map: Map = ShardMap::builder()
        .shards((0..4).map(|i| (ShardId(i), Shard::default())))
        .strategy(four.clone())
        .build()?;
    for user in 0..USERS {
        write(&map, user, user);
    }
    loads(&map);
    let last = [Mutex::new(BTreeMap::new()), Mutex::new(BTreeMap::new())];
    let detector = HotKeyDetector::<u64>::new(2048)?.sampled(8);
    let stop = AtomicBool::new(false);

    println!("{USERS} users on 4 shards (hash slots by user id); 2 client threads, 90% reads\n");
    let errors = clients(&map, &detector, &stop, 200_000, &last);
    print_loads("1. a celebrity draws a third of the traffic", &loads(&map));

    let hot = detector.top(3);
    println!(
        "\n2. hot-key detector (sampled 1 in 8, {} bytes):",
        detector.memory_bytes()
    );
    for h in &hot {
        println!("  user {:<8} ~{} requests (+-{})", h.key, h.count, h.error);
    }
    let celebrity = hot.first().map(|h| h.key).ok_or("no hot key found")?;
    map.add_shard(CELEBRITY_SHARD, Shard::default())?;
    let mut pin = Migrator::start(&map, map.plan_pin(&celebrity, CELEBRITY_SHARD)?)?;
    let moved = pin.run(&mut Io { map: &map }).map_err(|e| e.to_string())?;
    println!(
        "  pinned user {celebrity} to dedicated shard {CELEBRITY_SHARD} ({} key moved)\n",
        moved.keys_moved
    );
    let errors = errors + clients(&map, &detector, &stop, 200_000, &last);
    print_loads("3. after the pin", &loads(&map));

    map.add_shard(ShardId(4), Shard::default())?;
    let five = four.rebalanced((0..5).map(ShardId))?;
    let plan = map.plan_to(five)?;
    let estimate = plan.estimate(0..USERS);
    let naive = ReshardPlan::new(
        Arc::new(tierkit::shard::Modulo::new(4)?),
        Arc::new(tierkit::shard::Modulo::new(5)?),
    )
    .estimate(0..USERS);
    println!(
        "\n4. resharding 4 -> 5 shards while the clients keep going: {} steps, {:.1}% of users move \
         (minimum {:.1}%; user_id % n would move {:.1}%)",
        plan.steps().len(),
        estimate.fraction * 100.0,
        estimate.minimum_fraction * 100.0,
        naive.fraction * 100.0
    );
    let mut errors = errors;
    let progress = std::thread::scope(|s| {
        let traffic = s.spawn(|| clients(&map, &detector, &stop, 0, &last));
        let mut migrator = Migrator::start(&map, plan)?;
        let done = migrator
            .run(&mut Io { map: &map })
            .map_err(|e| e.to_string());
        stop.store(true, Ordering::Relaxed);
        errors += traffic.join().map_err(|_| "client thread panicked")?;
        done.map_err(Into::<Box<dyn std::error::Error>>::into)
    })?;
    println!(
        "  migrated {} users; map version {}",
        progress.keys_moved,
        map.version()
    );
    stop.store(false, Ordering::Relaxed);
    let errors = errors + clients(&map, &detector, &stop, 200_000, &last);
    print_loads("5. after resharding", &loads(&map));

    // Verify: every user reads back its last written value and lives on exactly one shard.
    let mut expected: BTreeMap<u64, u64> = (0..USERS).map(|u| (u, u)).collect();
    for l in &last {
        expected.extend(l.lock().unwrap_or_else(PoisonError::into_inner).iter());
    }
    let snap = map.snapshot();
    let mut wrong = 0;
    for (user, value) in &expected {
        let holders = snap
            .shard_ids()
            .filter(|id| snap.shard(*id).is_some_and(|s| lock(s).contains_key(user)))
            .count();
        if read(&map, *user) != Some(*value) || holders != 1 {
            wrong += 1;
        }
    }
    println!(
        "\nverified {} users: {wrong} wrong or duplicated, {errors} reads found nothing",
        expected.len()
    );
    if wrong > 0 || errors > 0 {
        return Err("data was lost or duplicated".into());
    }
    Ok(())
}

/// `--redis`: the same story on a real Redis Cluster (see the module's docs).
mod redis_mode;
