//! Stage 10: users sharded by `user_id % 4` over four SQLite nodes; a celebrity overloads one
//! shard, the hot-key detector finds them and they are pinned to a dedicated shard; then the
//! data moves onto a consistent-hash ring and the ring grows to five shards, all while traffic
//! continues.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rusqlite::params;
use tierkit::lb::{Balancer, RoundRobin};
use tierkit::shard::{
    Arrival, Consistent, HotKeyDetector, MigrationIo, Migrator, Modulo, Redirect, ReshardPlan,
    Route, ShardId, ShardMap, Step,
};

use super::db::{DbNode, Profile, read_user, write_user};
use super::stage_web::{db_metric, lb_metric};
use super::web::{AppError, Handler, Pool, Reply, Request};
use super::{Load, Metric, Options, Result, Rng, Row, Tally, Zipf, db_rates, ratio, run_users};

type Map = ShardMap<Arc<DbNode>>;

const CELEBRITY_SHARD: ShardId = ShardId(9);

/// Stage 10's measurements.
#[derive(Debug, Clone)]
pub struct Sharding {
    /// The summary row.
    pub row: Row,
    /// The celebrity (the workload's hot user).
    pub celebrity: u64,
    /// What the hot-key detector reported first.
    pub detected: Option<u64>,
    /// Requests per shard before the pin (shard, count).
    pub load_before_pin: Vec<(u32, u64)>,
    /// Requests per shard after the pin, before resharding.
    pub load_after_pin: Vec<(u32, u64)>,
    /// Busiest regular shard over the mean of the regular shards, before and after the pin.
    pub imbalance: (f64, f64),
    /// Requests per shard on the grown 5-shard ring.
    pub load_after_grow: Vec<(u32, u64)>,
    /// Keys moved from `% 4` onto the 4-shard ring, as a fraction of all keys.
    pub replace_fraction: f64,
    /// Keys moved growing the ring from 4 to 5 shards, as a fraction of all keys.
    pub moved_fraction: f64,
    /// The plan's estimate of that fraction.
    pub estimated_fraction: f64,
    /// What `user_id % 5` would have moved from `% 4`.
    pub modulo_fraction: f64,
    /// Requests served while a migration was running.
    pub requests_during_migrations: u64,
    /// Profiles missing, duplicated or not at their last written version at the end.
    pub lost: u64,
}

fn shard_of(map: &Map, id: ShardId) -> std::result::Result<Arc<DbNode>, AppError> {
    map.shard(id)
        .map(|s| Arc::clone(&*s))
        .ok_or_else(|| AppError(format!("no shard {id}")))
}

/// One request as the shard servers execute it (Redis Cluster's rules): each validates
/// ownership under its lock with the map's current view and answers MOVED / ASK / TRYAGAIN,
/// which the client follows; `op` runs once a shard accepts.
fn request<T>(
    map: &Map,
    id: u64,
    op: impl Fn(&rusqlite::Connection) -> rusqlite::Result<T>,
) -> std::result::Result<T, AppError> {
    let (mut at, mut asking) = (map.route(&id).first_shard(), false);
    for _ in 0..64 {
        let shard = shard_of(map, at)?;
        let verdict = shard
            .with(|c| {
                let arrival = if asking {
                    Arrival::Asking
                } else if read_user(c, id)?.is_some() {
                    Arrival::Present
                } else {
                    Arrival::Absent
                };
                match map.snapshot().check(&id, at, arrival) {
                    Ok(()) => op(c).map(Ok),
                    Err(r) => Ok(Err(r)),
                }
            })
            .map_err(|e| AppError(e.to_string()))?;
        match verdict {
            Ok(v) => return Ok(v),
            Err(Redirect::Ask(s)) => (at, asking) = (s, true),
            Err(Redirect::Moved(s)) => (at, asking) = (s, false),
            Err(Redirect::TryAgain) => {
                std::thread::yield_now();
                (at, asking) = (map.route(&id).first_shard(), false);
            }
            Err(other) => return Err(AppError(other.to_string())),
        }
    }
    Err(AppError(format!("too many redirects for user {id}")))
}

/// A read, validated by the shard that serves it.
fn read(map: &Map, id: u64) -> std::result::Result<Option<Profile>, AppError> {
    request(map, id, |c| read_user(c, id))
}

/// A write, validated by the shard that serves it.
fn write(map: &Map, p: &Profile) -> std::result::Result<(), AppError> {
    request(map, p.id, |c| write_user(c, p))
}

/// The migrator's access to the SQLite shards.
struct Io<'a> {
    map: &'a Map,
}

impl MigrationIo for Io<'_> {
    type Key = u64;
    type Error = String;

    fn scan(
        &mut self,
        plan: &ReshardPlan,
        step: &Step,
        cursor: u64,
    ) -> std::result::Result<(Vec<u64>, u64), String> {
        const PAGE: usize = 512;
        let shard = self.map.shard(step.source).ok_or("no source shard")?;
        let ids: Vec<u64> = {
            let conn = shard.lock();
            let mut st = conn
                .prepare_cached("SELECT id FROM users WHERE id >= ?1 ORDER BY id LIMIT ?2")
                .map_err(|e| e.to_string())?;
            st.query_map(params![cursor as i64, PAGE as i64], |r| r.get::<_, i64>(0))
                .map_err(|e| e.to_string())?
                .filter_map(std::result::Result::ok)
                .map(|v| v as u64)
                .collect()
        };
        let next = if ids.len() == PAGE {
            ids[PAGE - 1] + 1
        } else {
            0
        };
        let moving = ids
            .into_iter()
            .filter(|k| plan.moves(k) == Some((step.source, step.target)))
            .collect();
        Ok((moving, next))
    }

    fn move_keys(&mut self, step: &Step, keys: &[u64]) -> std::result::Result<(), String> {
        let source = self.map.shard(step.source).ok_or("no source shard")?;
        let target = self.map.shard(step.target).ok_or("no target shard")?;
        // One page at a time, atomically as Redis's MIGRATE: source locked, then target
        // (always in that order; clients hold one shard at a time), the rows copied in one
        // transaction on the target, then deleted in one on the source.
        let mut from = source.lock();
        let mut rows = Vec::with_capacity(keys.len());
        for &k in keys {
            if let Some(p) = read_user(&from, k).map_err(|e| e.to_string())? {
                rows.push(p);
            }
        }
        let mut to = target.lock();
        let tx = to.transaction().map_err(|e| e.to_string())?;
        {
            let mut st = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO users (id, name, bio, version) VALUES (?1, ?2, ?3, ?4)",
                )
                .map_err(|e| e.to_string())?;
            for p in &rows {
                st.execute(params![p.id as i64, p.name, p.bio, p.version as i64])
                    .map_err(|e| e.to_string())?;
            }
        }
        tx.commit().map_err(|e| e.to_string())?;
        let tx = from.transaction().map_err(|e| e.to_string())?;
        for &k in keys {
            tx.execute("DELETE FROM users WHERE id = ?1", [k as i64])
                .map_err(|e| e.to_string())?;
        }
        tx.commit().map_err(|e| e.to_string())?;
        drop(to);
        Ok(())
    }
}

fn migrate(map: &Map, plan: ReshardPlan) -> Result<u64> {
    let mut m = Migrator::start(map, plan)?;
    let progress = m.run(&mut Io { map }).map_err(|e| e.to_string())?;
    Ok(progress.keys_moved)
}

/// Queries per shard so far (the map's shards, plus removed ones are not counted).
fn shard_queries(map: &Map) -> Vec<(u32, u64)> {
    let snap = map.snapshot();
    snap.shard_ids()
        .filter_map(|id| snap.shard(id).map(|s| (id.0, s.queries())))
        .collect()
}

fn delta(after: &[(u32, u64)], before: &[(u32, u64)]) -> Vec<(u32, u64)> {
    after
        .iter()
        .map(|(id, a)| {
            let b = before.iter().find(|(i, _)| i == id).map_or(0, |(_, b)| *b);
            (*id, a - b)
        })
        .collect()
}

/// Busiest regular shard / mean of the regular shards (the celebrity's shard is excluded).
fn imbalance(load: &[(u32, u64)]) -> f64 {
    let regular: Vec<u64> = load
        .iter()
        .filter(|(id, n)| *id != CELEBRITY_SHARD.0 && *n > 0)
        .map(|(_, n)| *n)
        .collect();
    let max = regular.iter().copied().max().unwrap_or(0);
    let mean = regular.iter().sum::<u64>() as f64 / regular.len().max(1) as f64;
    max as f64 / mean.max(1e-9)
}

/// Stage 10.
///
/// # Errors
/// Database, shard-map or migration errors.
#[allow(clippy::too_many_lines)]
pub async fn sharding(
    opts: &Options,
    dir: &std::path::Path,
    metrics: &mut Vec<Metric>,
) -> Result<Sharding> {
    let mut shards = Vec::new();
    for i in 0..4u32 {
        shards.push((ShardId(i), DbNode::open(dir, &format!("shard-{i}"))?));
    }
    let map: Arc<Map> = Arc::new(
        ShardMap::builder()
            .shards(shards)
            .strategy(Modulo::new(4)?)
            .build()?,
    );
    // Load every profile onto its shard.
    {
        let snap = map.snapshot();
        for id in snap.shard_ids() {
            if let Some(s) = snap.shard(id) {
                s.seed_users((0..opts.profiles).filter(|u| map.route(u) == Route::Shard(id)))?;
            }
        }
    }
    let mut rng = Rng::new(opts.seed, &[10]);
    let celebrity = rng.below(opts.profiles);
    let detector: Arc<HotKeyDetector<u64>> = Arc::new(HotKeyDetector::new(256)?);
    let handler: Handler = {
        let (map, detector) = (Arc::clone(&map), Arc::clone(&detector));
        Arc::new(move |_ctx, req| match req {
            Request::GetUser { id, .. } => {
                detector.record(id);
                match read(&map, *id)? {
                    Some(p) => Ok(Reply {
                        body: p.json(),
                        version: p.version,
                        ..Reply::default()
                    }),
                    None => Err(AppError(format!("404 user {id}"))),
                }
            }
            Request::UpdateUser { id, bio } => {
                detector.record(id);
                // The client sends the whole row: bio and the next version it knows.
                let (bio, version) = bio.split_once('#').unwrap_or((bio, "0"));
                let p = Profile {
                    bio: bio.to_string(),
                    version: version.parse().unwrap_or(0),
                    ..Profile::initial(*id)
                };
                write(&map, &p)?;
                Ok(Reply {
                    version: p.version,
                    ..Reply::default()
                })
            }
            other => Err(AppError(format!("unsupported {other:?}"))),
        })
    };
    let pool = Pool::new(Balancer::builder().policy(RoundRobin::new()), handler)?;
    for id in 1..=4 {
        pool.start(id, None)?;
    }
    let load = Load::new(opts, 10, "sharding", opts.requests);
    let migrating = Arc::new(AtomicU8::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let last_written: Arc<Mutex<Vec<(u64, u64)>>> = Arc::default();
    let traffic = {
        let (pool, load, migrating, last_written, stop) = (
            Arc::clone(&pool),
            Arc::clone(&load),
            Arc::clone(&migrating),
            Arc::clone(&last_written),
            Arc::clone(&stop),
        );
        let zipf = Arc::new(Zipf::new(opts.profiles, 0.8));
        let (users, seed, profiles) = (opts.users, opts.seed, opts.profiles);
        tokio::spawn(run_users(users, move |u| {
            let (pool, load, migrating, last_written, zipf, stop) = (
                Arc::clone(&pool),
                Arc::clone(&load),
                Arc::clone(&migrating),
                Arc::clone(&last_written),
                Arc::clone(&zipf),
                Arc::clone(&stop),
            );
            async move {
                let mut rng = Rng::new(seed, &[10, u as u64]);
                // Each user owns one profile (not the celebrity's) and writes only that one.
                let mut home = u as u64 * profiles / users as u64;
                if home == celebrity {
                    home = (home + 1) % profiles;
                }
                let mut version = 0u64;
                let mut t = Tally::default();
                let mut during = 0u64;
                // Users keep going until the operator has seen the grown ring under load.
                for k in 0.. {
                    if stop.load(Ordering::Relaxed) || load.timed_out() {
                        break;
                    }
                    let req = if rng.chance(0.05) {
                        Request::UpdateUser {
                            id: home,
                            bio: format!("user {u} edit {k}#{}", version + 1),
                        }
                    } else if rng.chance(0.3) {
                        Request::GetUser {
                            id: celebrity,
                            token: None,
                        }
                    } else {
                        Request::GetUser {
                            id: zipf.sample(&mut rng),
                            token: None,
                        }
                    };
                    let t0 = Instant::now();
                    let call = pool.call(&req, None).await;
                    t.record(t0);
                    during += u64::from(migrating.load(Ordering::Relaxed) > 0);
                    match (&req, call.result) {
                        (Request::UpdateUser { .. }, Ok(r)) => version = r.version,
                        (_, Err(_)) => t.errors += 1,
                        _ => {}
                    }
                    load.finish_one();
                }
                last_written
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push((home, version));
                (t, during)
            }
        }))
    };

    // The operator: watches the load, pins the celebrity, then reshards.
    let wait_until = |requests: u64| {
        let load = Arc::clone(&load);
        async move {
            while load.done() < requests && !load.timed_out() {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    };
    let q0 = shard_queries(&map);
    wait_until(load.at(0.2)).await;
    let q1 = shard_queries(&map);
    let load_before_pin = delta(&q1, &q0);
    let top = detector.top(3);
    let detected = top.first().map(|h| h.key);
    let pin_key = detected.unwrap_or(celebrity);
    map.add_shard(CELEBRITY_SHARD, DbNode::open(dir, "shard-celebrity")?)?;
    let plan = map.plan_pin(&pin_key, CELEBRITY_SHARD)?;
    let m = Arc::clone(&map);
    migrating.store(1, Ordering::Relaxed);
    tokio::task::spawn_blocking(move || migrate(&m, plan)).await??;
    migrating.store(0, Ordering::Relaxed);
    load.say(format!(
        "  stage 10: hot-key detector found user {pin_key} (~{} requests); pinned to a dedicated shard",
        top.first().map_or(0, |h| h.count)
    ));
    let q2 = shard_queries(&map);
    wait_until(load.at(0.4)).await;
    let q3 = shard_queries(&map);
    let load_after_pin = delta(&q3, &q2);

    // Re-place onto a 4-shard ring (a one-time move), then grow the ring to 5 shards.
    let plan = map.plan_to(Consistent::ring(4)?)?;
    let m = Arc::clone(&map);
    migrating.store(1, Ordering::Relaxed);
    let t0 = Instant::now();
    let replaced = tokio::task::spawn_blocking(move || migrate(&m, plan)).await??;
    let replace_time = t0.elapsed();
    load.say(format!(
        "  stage 10: moved onto a consistent-hash ring of 4 shards ({replaced} keys moved in {replace_time:.1?}, at {} requests)", load.done()
    ));
    map.add_shard(ShardId(4), DbNode::open(dir, "shard-4")?)?;
    let plan = map.plan_to(Consistent::ring(5)?)?;
    let estimate = plan.estimate(0..opts.profiles);
    let m = Arc::clone(&map);
    let t0 = Instant::now();
    let moved = tokio::task::spawn_blocking(move || migrate(&m, plan)).await??;
    let grow_time = t0.elapsed();
    migrating.store(0, Ordering::Relaxed);
    load.say(format!(
        "  stage 10: grew the ring to 5 shards while traffic continued ({moved} keys moved in {grow_time:.1?}, at {} requests)", load.done()
    ));
    // The grown ring under load: another 20% of the requests, then the rest of the load.
    let q4 = shard_queries(&map);
    wait_until(load.done() + load.at(0.2)).await;
    let load_after_grow = delta(&shard_queries(&map), &q4);
    wait_until(load.at(1.0)).await;
    stop.store(true, Ordering::Relaxed);
    let modulo_fraction = ReshardPlan::new(Arc::new(Modulo::new(4)?), Arc::new(Modulo::new(5)?))
        .estimate(0..opts.profiles)
        .fraction;

    let mut tally = Tally::default();
    let mut during = 0;
    for (t, d) in traffic.await?? {
        tally.merge(t);
        during += d;
    }
    let elapsed = load.elapsed();

    // Verify: every profile on exactly one shard, every user's last write in place.
    let snap = map.snapshot();
    let mut holders = vec![0u32; opts.profiles as usize];
    for id in snap.shard_ids() {
        if let Some(s) = snap.shard(id) {
            let conn = s.lock();
            let mut st = conn.prepare("SELECT id FROM users")?;
            for row in st.query_map([], |r| r.get::<_, i64>(0))? {
                if let Some(h) = holders.get_mut(row? as usize) {
                    *h += 1;
                }
            }
        }
    }
    let mut lost = holders.iter().filter(|&&h| h != 1).count() as u64;
    for &(home, version) in last_written
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
    {
        if read(&map, home).ok().flatten().map(|p| p.version) != Some(version) {
            lost += 1;
        }
    }
    let total_keys = opts.profiles;
    let mut row = Row {
        stage: 10,
        name: "sharding".into(),
        changed: "users by id % 4, celebrity pinned, then a 4 -> 5 consistent-hash ring".into(),
        db_qps: db_rates(
            &shard_queries(&map)
                .iter()
                .map(|(id, q)| {
                    let name = if *id == CELEBRITY_SHARD.0 {
                        "shard-celebrity".to_string()
                    } else {
                        format!("shard-{id}")
                    };
                    (name, *q)
                })
                .collect::<Vec<_>>(),
            elapsed,
        ),
        ..Row::default()
    };
    tally.fill(&mut row, elapsed);
    row.lost = lost;
    let imb = (imbalance(&load_before_pin), imbalance(&load_after_pin));
    let moved_fraction = ratio(moved, total_keys);
    let replace_fraction = ratio(replaced, total_keys);
    row.notes.push(format!(
        "celebrity user {celebrity} drew ~30% of requests; detector found {}; busiest regular shard {:.2}x the mean before the pin, {:.2}x after",
        detected.map_or("nobody".into(), |d| format!("user {d}")),
        imb.0,
        imb.1
    ));
    let grown_total: u64 = load_after_grow.iter().map(|(_, n)| n).sum();
    let new_share = load_after_grow
        .iter()
        .find(|(id, _)| *id == 4)
        .map_or(0.0, |(_, n)| ratio(*n, grown_total));
    row.notes.push(format!(
        "on the grown ring the new shard-4 took {:.1}% of the shard queries",
        new_share * 100.0
    ));
    row.notes.push(format!(
        "% 4 -> ring(4) moved {:.1}% once; ring 4 -> 5 moved {:.1}% of keys (plan estimate {:.1}%; % 5 would move {:.1}%); {during} requests served during migrations, {lost} rows lost",
        replace_fraction * 100.0,
        moved_fraction * 100.0,
        estimate.fraction * 100.0,
        modulo_fraction * 100.0
    ));
    load.finish(format!("{:.1}% moved", moved_fraction * 100.0));
    metrics.push(Metric {
        stage: 10,
        component: "shard map".into(),
        values: vec![
            ("version".into(), map.version().to_string()),
            (
                "hot keys".into(),
                detector
                    .top(3)
                    .iter()
                    .map(|h| format!("{}~{}", h.key, h.count))
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
            ("detector bytes".into(), detector.memory_bytes().to_string()),
        ],
    });
    metrics.push(lb_metric(10, "lb shard tier", &pool.lb.stats()));
    let dbs: Vec<Arc<Arc<DbNode>>> = snap.shard_ids().filter_map(|id| map.shard(id)).collect();
    let refs: Vec<&DbNode> = dbs.iter().map(|d| &***d).collect();
    metrics.push(db_metric(10, &refs, elapsed));
    pool.shutdown();
    Ok(Sharding {
        row,
        celebrity,
        detected,
        load_before_pin,
        load_after_pin,
        load_after_grow,
        imbalance: imb,
        replace_fraction,
        moved_fraction,
        estimated_fraction: estimate.fraction,
        modulo_fraction,
        requests_during_migrations: during,
        lost,
    })
}
