//! The web-tier stages: 1 (single server), 2 (load balancer and failover), 6 (stateless web
//! tier with autoscaling) and 7 (two data centers); and the profile workload the data stages
//! reuse.

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tierkit::cache::{ConcurrentCache, LruCache};
use tierkit::lb::{
    Balancer, BalancerStats, Locality, OutlierDetection, Policy, RoundRobin, Sticky, Tier,
};

use super::db::DbNode;
use super::web::{AppError, Endpoint, Handler, Pool, Reply, Request};
use super::{Load, Metric, Options, Result, Rng, Row, Tally, Zipf, db_rates, ratio, run_users};

/// Called with the number of completed requests after each one: where a stage's events fire.
pub type Hook = Arc<dyn Fn(u64) + Send + Sync>;

/// One request as the client saw it.
#[derive(Debug, Clone, Copy)]
pub struct CallRec {
    /// When it started.
    pub t0: Instant,
    /// The server that answered.
    pub served_by: Option<u64>,
    /// Attempts that failed before it was answered (or before giving up).
    pub failed: u8,
    /// Whether it failed as the user saw it.
    pub error: bool,
    /// The stage's phase when it started.
    pub phase: u8,
}

/// The profile workload: each user reads Zipf-popular profiles and now and then updates their
/// own, then reads it back (read-your-writes is checked on that read).
pub struct ProfileLoad<P: Policy<Endpoint>> {
    /// The web tier.
    pub pool: Arc<Pool<P>>,
    /// Progress and events.
    pub load: Arc<Load>,
    /// Profile popularity.
    pub zipf: Arc<Zipf>,
    /// Workload seed.
    pub seed: u64,
    /// Stage number (a separate random stream per stage).
    pub stage: u64,
    /// Profiles in the database.
    pub profiles: u64,
    /// Concurrent users.
    pub users: usize,
    /// Share of requests that update the user's own profile.
    pub write_ratio: f64,
    /// Events.
    pub hook: Hook,
    /// The stage's current phase (recorded with each request).
    pub phase: Arc<AtomicU8>,
}

/// What the users of a profile load measured.
#[derive(Debug, Default)]
pub struct ProfileOut {
    /// Latencies and user-visible errors.
    pub tally: Tally,
    /// Every request.
    pub calls: Vec<CallRec>,
    /// Reads answered.
    pub reads: u64,
    /// Writes answered.
    pub writes: u64,
    /// Reads a replica answered.
    pub replica_reads: u64,
    /// Reads the cache answered.
    pub cache_hits: u64,
    /// Reads of the user's own profile right after their update.
    pub own_reads: u64,
    /// Of those, reads that did not show the update (read-your-writes violations).
    pub stale_own: u64,
    /// Reads after a failover that did not show the user's update: it was lost with the old
    /// primary (reported by the promotion; not a routing error).
    pub lost_own: u64,
}

impl ProfileOut {
    fn merge(&mut self, o: ProfileOut) {
        self.tally.merge(o.tally);
        self.calls.extend(o.calls);
        self.reads += o.reads;
        self.writes += o.writes;
        self.replica_reads += o.replica_reads;
        self.cache_hits += o.cache_hits;
        self.own_reads += o.own_reads;
        self.stale_own += o.stale_own;
        self.lost_own += o.lost_own;
    }
}

/// Runs the profile workload to the end of the load.
///
/// # Errors
/// A user task panicked.
pub async fn profile_users<P>(cfg: Arc<ProfileLoad<P>>) -> Result<ProfileOut>
where
    P: Policy<Endpoint> + Send + Sync + 'static,
    P::Prepared: Send + Sync,
{
    let outs = run_users(cfg.users, |u| {
        let cfg = Arc::clone(&cfg);
        async move { profile_user(&cfg, u).await }
    })
    .await?;
    let mut all = ProfileOut::default();
    for o in outs {
        all.merge(o);
    }
    Ok(all)
}

async fn profile_user<P: Policy<Endpoint>>(cfg: &ProfileLoad<P>, u: usize) -> ProfileOut {
    let mut rng = Rng::new(cfg.seed, &[cfg.stage, u as u64]);
    let home = u as u64 * cfg.profiles / cfg.users as u64;
    let mut out = ProfileOut::default();
    let mut token = None;
    let mut written = 0u64;
    let mut check_own = false;
    for k in 0..cfg.load.per_user(cfg.users) {
        if cfg.load.over() {
            break;
        }
        let req = if check_own {
            Request::GetUser { id: home, token }
        } else if rng.chance(cfg.write_ratio) {
            Request::UpdateUser {
                id: home,
                bio: format!("user {u} says {k}"),
            }
        } else {
            Request::GetUser {
                id: cfg.zipf.sample(&mut rng),
                token: None,
            }
        };
        let phase = cfg.phase.load(Ordering::Relaxed);
        let t0 = Instant::now();
        let call = cfg.pool.call(&req, None).await;
        out.tally.record(t0);
        match (&req, &call.result) {
            (Request::UpdateUser { .. }, Ok(r)) => {
                out.writes += 1;
                written = r.version;
                token = r.token.or(token);
                check_own = true;
            }
            (Request::GetUser { .. }, Ok(r)) => {
                out.reads += 1;
                out.replica_reads += u64::from(r.from_replica);
                out.cache_hits += u64::from(r.cache_hit);
                if check_own {
                    out.own_reads += 1;
                    let missed = u64::from(r.version < written);
                    if r.after_failover {
                        out.lost_own += missed;
                    } else {
                        out.stale_own += missed;
                    }
                }
                check_own = false;
            }
            (_, Err(_)) => {
                out.tally.errors += 1;
                check_own = false;
            }
            _ => {}
        }
        out.calls.push(CallRec {
            t0,
            served_by: call.served_by,
            failed: call.failed.len() as u8,
            error: call.result.is_err(),
            phase,
        });
        let n = cfg.load.finish_one();
        (cfg.hook)(n);
    }
    out
}

/// The application of stages 1, 2 and 7: profiles on one database node.
pub fn profile_app(db: Arc<DbNode>) -> Handler {
    Arc::new(move |_ctx, req| match req {
        Request::GetUser { id, .. } => match db.get_user(*id) {
            Ok(Some(p)) => Ok(Reply {
                body: p.json(),
                version: p.version,
                ..Reply::default()
            }),
            Ok(None) => Err(AppError(format!("404 user {id}"))),
            Err(e) => Err(AppError(e.to_string())),
        },
        Request::UpdateUser { id, bio } => match db.update_bio(*id, bio) {
            Ok(Some(version)) => Ok(Reply {
                body: format!(r#"{{"id":{id},"version":{version}}}"#),
                version,
                ..Reply::default()
            }),
            Ok(None) => Err(AppError(format!("404 user {id}"))),
            Err(e) => Err(AppError(e.to_string())),
        },
        other => Err(AppError(format!("unsupported {other:?}"))),
    })
}

/// The load balancer's counters as a dashboard entry.
#[must_use]
pub fn lb_metric(stage: u8, name: &str, s: &BalancerStats) -> Metric {
    let mut values = vec![
        ("policy".to_string(), s.policy.to_string()),
        ("eligible".to_string(), s.eligible.to_string()),
    ];
    for b in &s.backends {
        values.push((
            format!("{}", b.id),
            format!(
                "picks {} ok {} fail {} ejections {} {:?}",
                b.picks, b.successes, b.failures, b.ejections, b.health
            ),
        ));
    }
    Metric {
        stage,
        component: name.to_string(),
        values,
    }
}

/// A database node's counters as a dashboard entry.
#[must_use]
pub fn db_metric(stage: u8, nodes: &[&DbNode], elapsed: Duration) -> Metric {
    Metric {
        stage,
        component: "sqlite nodes".to_string(),
        values: nodes
            .iter()
            .map(|n| {
                (
                    n.name.clone(),
                    format!(
                        "{} queries, {:.0} q/s{}",
                        n.queries(),
                        n.queries() as f64 / elapsed.as_secs_f64().max(1e-9),
                        if n.is_down() { ", DOWN" } else { "" }
                    ),
                )
            })
            .collect(),
    }
}

fn seeded_db(opts: &Options, dir: &std::path::Path, name: &str) -> Result<Arc<DbNode>> {
    let db = DbNode::open(dir, name)?;
    db.seed_users(0..opts.profiles)?;
    Ok(db)
}

fn no_hook() -> Hook {
    Arc::new(|_| {})
}

// ---------------------------------------------------------------------------------------------
// Stage 1

/// Stage 1: one node runs the web server and the database.
#[derive(Debug, Clone)]
pub struct Single {
    /// The summary row.
    pub row: Row,
}

/// Stage 1.
///
/// # Errors
/// Database or balancer errors.
pub async fn single(
    opts: &Options,
    dir: &std::path::Path,
    metrics: &mut Vec<Metric>,
) -> Result<Single> {
    let db = seeded_db(opts, dir, "db")?;
    let pool = Pool::new(
        Balancer::builder().policy(RoundRobin::new()),
        profile_app(Arc::clone(&db)),
    )?;
    pool.start(1, None)?;
    let load = Load::new(opts, 1, "single server", opts.requests);
    let cfg = Arc::new(ProfileLoad {
        pool: Arc::clone(&pool),
        load: Arc::clone(&load),
        zipf: Arc::new(Zipf::new(opts.profiles, 0.99)),
        seed: opts.seed,
        stage: 1,
        profiles: opts.profiles,
        users: opts.users,
        write_ratio: 0.1,
        hook: no_hook(),
        phase: Arc::default(),
    });
    let out = profile_users(cfg).await?;
    let elapsed = load.elapsed();
    let mut row = Row {
        stage: 1,
        name: "single server".into(),
        changed: "web server + SQLite in one node".into(),
        db_qps: db_rates(&[(db.name.clone(), db.queries())], elapsed),
        ..Row::default()
    };
    out.tally.fill(&mut row, elapsed);
    row.notes.push(format!(
        "{} users share one web process and one database: {} reads, {} writes, every one a query on the same node",
        opts.users, out.reads, out.writes
    ));
    load.finish(format!("{:.0} req/s", row.throughput));
    metrics.push(lb_metric(1, "lb (1 server)", &pool.lb.stats()));
    metrics.push(db_metric(1, &[&db], elapsed));
    pool.shutdown();
    Ok(Single { row })
}

// ---------------------------------------------------------------------------------------------
// Stage 2

/// Stage 2: a load balancer over several web servers; one dies, one joins.
#[derive(Debug, Clone)]
pub struct Balanced {
    /// The summary row.
    pub row: Row,
    /// Web servers at the start.
    pub servers: usize,
    /// The server killed mid-run.
    pub killed: u64,
    /// The server added later.
    pub added: u64,
    /// Whether outlier detection ejected the killed server.
    pub detected: bool,
    /// Time from the kill to the ejection.
    pub detection_time: Option<Duration>,
    /// Attempts that hit the dead server before it was ejected (each retried elsewhere).
    pub failed_before_detection: u64,
    /// Requests started after the ejection that still hit the dead server (must be 0).
    pub failed_after_detection: u64,
    /// Requests the new server served.
    pub added_served: u64,
    /// Requests per server (id, count).
    pub per_server: Vec<(u64, u64)>,
}

/// Stage 2.
///
/// # Errors
/// Database or balancer errors.
pub async fn balanced(
    opts: &Options,
    dir: &std::path::Path,
    metrics: &mut Vec<Metric>,
) -> Result<Balanced> {
    const SERVERS: u64 = 4;
    const KILLED: u64 = 2;
    const ADDED: u64 = 5;
    let db = seeded_db(opts, dir, "db")?;
    let pool = Pool::new(
        Balancer::builder()
            .policy(RoundRobin::new())
            .outlier_detection(
                OutlierDetection::new()
                    .consecutive_failures(3)
                    .base_ejection(Duration::from_secs(600))
                    .max_ejected_percent(50),
            ),
        profile_app(Arc::clone(&db)),
    )?;
    for id in 1..=SERVERS {
        pool.start(id, None)?;
    }
    let load = Load::new(opts, 2, "load balancer", opts.requests);
    let killed_at: Arc<Mutex<Option<Instant>>> = Arc::default();
    let detected_at: Arc<Mutex<Option<Instant>>> = Arc::default();
    let phase = Arc::new(AtomicU8::new(0));
    let hook: Hook = {
        let (pool, load, killed_at, detected_at, phase) = (
            Arc::clone(&pool),
            Arc::clone(&load),
            Arc::clone(&killed_at),
            Arc::clone(&detected_at),
            Arc::clone(&phase),
        );
        let (kill_at, add_at) = (load.at(0.3), load.at(0.6));
        Arc::new(move |n| {
            let lock =
                |m: &Mutex<Option<Instant>>| *m.lock().unwrap_or_else(PoisonError::into_inner);
            if n == kill_at {
                pool.kill(KILLED);
                *killed_at.lock().unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
                phase.store(1, Ordering::Relaxed);
                load.say(format!(
                    "  stage 2: web server {KILLED} killed after {n} requests"
                ));
            }
            if lock(&killed_at).is_some()
                && lock(&detected_at).is_none()
                && !pool.is_serving(KILLED)
            {
                *detected_at.lock().unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
                load.say(format!(
                    "  stage 2: server {KILLED} ejected by outlier detection"
                ));
            }
            if n == add_at {
                match pool.start(ADDED, None) {
                    Ok(()) => load.say(format!("  stage 2: web server {ADDED} added")),
                    Err(e) => load.say(format!("  stage 2: adding server {ADDED} failed: {e}")),
                }
                phase.store(2, Ordering::Relaxed);
            }
        })
    };
    let cfg = Arc::new(ProfileLoad {
        pool: Arc::clone(&pool),
        load: Arc::clone(&load),
        zipf: Arc::new(Zipf::new(opts.profiles, 0.99)),
        seed: opts.seed,
        stage: 2,
        profiles: opts.profiles,
        users: opts.users,
        write_ratio: 0.1,
        hook,
        phase,
    });
    let out = profile_users(cfg).await?;
    let elapsed = load.elapsed();
    let killed_at = *killed_at.lock().unwrap_or_else(PoisonError::into_inner);
    let detected_at = *detected_at.lock().unwrap_or_else(PoisonError::into_inner);
    let mut before = 0;
    let mut after = 0;
    for c in out.calls.iter().filter(|c| c.failed > 0) {
        match detected_at {
            Some(d) if c.t0 > d => after += u64::from(c.failed),
            _ => before += u64::from(c.failed),
        }
    }
    let per_server = pool.handled();
    let added_served = per_server
        .iter()
        .find(|(id, _)| *id == ADDED)
        .map_or(0, |(_, n)| *n);
    let mut row = Row {
        stage: 2,
        name: "load balancer".into(),
        changed: format!("lb (round robin + outlier detection) over {SERVERS} web servers"),
        db_qps: db_rates(&[(db.name.clone(), db.queries())], elapsed),
        ..Row::default()
    };
    out.tally.fill(&mut row, elapsed);
    let detection_time = killed_at.zip(detected_at).map(|(k, d)| d.duration_since(k));
    row.notes.push(format!(
        "server {KILLED} killed at 30%: {before} attempts failed before ejection ({}), all retried on another server; {after} after",
        detection_time.map_or("not detected".to_string(), |d| format!("detected in {d:.1?}"))
    ));
    row.notes.push(format!(
        "server {ADDED} added at 60% and served {added_served} requests; per server: {}",
        per_server
            .iter()
            .map(|(id, n)| format!("#{id}={n}"))
            .collect::<Vec<_>>()
            .join(" ")
    ));
    row.lost = 0;
    load.finish(format!("{:.0} req/s", row.throughput));
    metrics.push(lb_metric(2, "lb web tier", &pool.lb.stats()));
    metrics.push(db_metric(2, &[&db], elapsed));
    pool.shutdown();
    Ok(Balanced {
        row,
        servers: SERVERS as usize,
        killed: KILLED,
        added: ADDED,
        detected: detected_at.is_some(),
        detection_time,
        failed_before_detection: before,
        failed_after_detection: after,
        added_served,
        per_server,
    })
}

// ---------------------------------------------------------------------------------------------
// Stage 6

/// One run of stage 6 (sticky sessions in server memory, or a shared session store).
#[derive(Debug, Clone, Default)]
pub struct SessionRun {
    /// Requests that found no session (the user was logged out and logged in again).
    pub lost_sessions: u64,
    /// Distinct users logged out at least once.
    pub users_logged_out: u64,
    /// Requests made.
    pub requests: u64,
    /// Servers over time: (started, retired).
    pub scaled: (u64, u64),
}

/// Stage 6: sessions move out of the web servers; the pool scales out and in.
#[derive(Debug, Clone)]
pub struct Sessions {
    /// The summary row (shared store run).
    pub row: Row,
    /// Sessions in server memory, sticky load balancing.
    pub sticky: SessionRun,
    /// Sessions in a shared store, any server.
    pub shared: SessionRun,
}

type SessionStore = ConcurrentCache<u64, u64, LruCache<u64, u64>>;

fn session_app(store: Option<Arc<SessionStore>>) -> Handler {
    Arc::new(move |ctx, req| {
        let reply = |logged_out: bool| Reply {
            body: if logged_out {
                r#"{"error":"401 log in again"}"#.to_string()
            } else {
                format!(r#"{{"server":{}}}"#, ctx.id)
            },
            logged_out,
            ..Reply::default()
        };
        match (req, &store) {
            (Request::Login { user, session }, Some(store)) => {
                store.insert(*session, *user);
                Ok(reply(false))
            }
            (Request::Login { user, session }, None) => {
                ctx.sessions().insert(*session, *user);
                Ok(reply(false))
            }
            (Request::Me { session }, Some(store)) => Ok(reply(store.get(session).is_none())),
            (Request::Me { session }, None) => Ok(reply(!ctx.sessions().contains_key(session))),
            (other, _) => Err(AppError(format!("unsupported {other:?}"))),
        }
    })
}

/// The autoscaler's decision at phase `i` (after 1/4, 1/2 and 3/4 of every user's requests):
/// +2 servers, -2 servers (drained, then removed with their memory), +1 server.
async fn scale<P: Policy<Endpoint>>(pool: &Pool<P>, load: &Load, i: usize, next_id: &AtomicU64) {
    match i {
        0 | 2 => {
            for _ in 0..(if i == 0 { 2 } else { 1 }) {
                let id = next_id.fetch_add(1, Ordering::Relaxed);
                if pool.start(id, None).is_ok() {
                    load.say(format!(
                        "  stage 6 ({}): autoscaler added web server {id}",
                        load.name()
                    ));
                }
            }
        }
        _ => {
            for id in [1, 2] {
                if pool.retire(id).await.is_ok() {
                    load.say(format!(
                        "  stage 6 ({}): autoscaler removed web server {id}",
                        load.name()
                    ));
                }
            }
        }
    }
}

async fn session_run<P>(
    opts: &Options,
    policy: P,
    store: Option<Arc<SessionStore>>,
    load: Arc<Load>,
    tally: &mut Tally,
) -> Result<(SessionRun, Arc<Pool<P>>)>
where
    P: Policy<Endpoint> + Send + Sync + 'static,
    P::Prepared: Send + Sync,
{
    let pool = Pool::new(Balancer::builder().policy(policy), session_app(store))?;
    for id in 1..=3 {
        pool.start(id, None)?;
    }
    let next_id = Arc::new(AtomicU64::new(4));
    // Scaling happens between phases: every user reaches the mark, one of them runs the
    // autoscaler's decision to completion, then all continue.
    let barrier = Arc::new(tokio::sync::Barrier::new(opts.users));
    let users = opts.users;
    let seed = opts.seed;
    let outs = run_users(users, |u| {
        let (pool, load, next_id, barrier) = (
            Arc::clone(&pool),
            Arc::clone(&load),
            Arc::clone(&next_id),
            Arc::clone(&barrier),
        );
        async move {
            let mut rng = Rng::new(seed, &[6, u as u64]);
            let mut t = Tally::default();
            let (mut lost, mut requests) = (0u64, 0u64);
            let mut session = rng.next_u64();
            let mut logged_in = false;
            let per_user = load.per_user(users);
            let marks = [per_user / 4, per_user / 2, per_user * 3 / 4];
            for k in 0..per_user {
                if let Some(i) = marks.iter().position(|&m| m == k) {
                    if barrier.wait().await.is_leader() {
                        scale(&pool, &load, i, &next_id).await;
                    }
                    barrier.wait().await;
                }
                let req = if logged_in {
                    Request::Me { session }
                } else {
                    Request::Login {
                        user: u as u64,
                        session,
                    }
                };
                let t0 = Instant::now();
                let call = pool.call(&req, Some(session)).await;
                t.record(t0);
                requests += 1;
                match call.result {
                    Ok(r) if r.logged_out => {
                        lost += 1;
                        session = rng.next_u64();
                        logged_in = false;
                    }
                    Ok(_) => logged_in = true,
                    Err(_) => t.errors += 1,
                }
                load.finish_one();
            }
            (t, lost, requests)
        }
    })
    .await?;
    let mut run = SessionRun::default();
    for (t, lost, requests) in outs {
        tally.merge(t);
        run.lost_sessions += lost;
        run.users_logged_out += u64::from(lost > 0);
        run.requests += requests;
    }
    run.scaled = (next_id.load(Ordering::Relaxed) - 1, 2);
    Ok((run, pool))
}

/// Stage 6.
///
/// # Errors
/// Balancer or cache errors.
pub async fn sessions(opts: &Options, metrics: &mut Vec<Metric>) -> Result<Sessions> {
    let half = (opts.requests / 2).max(opts.users as u64);
    let mut sticky_tally = Tally::default();
    let load = Load::new(opts, 6, "sticky sessions", half);
    let (sticky, sticky_pool) = session_run(
        opts,
        Sticky::new(RoundRobin::new()),
        None,
        Arc::clone(&load),
        &mut sticky_tally,
    )
    .await?;
    load.finish(format!("{} sessions lost", sticky.lost_sessions));
    metrics.push(lb_metric(6, "lb sticky", &sticky_pool.lb.stats()));
    drop(sticky_pool);

    let store: Arc<SessionStore> = Arc::new(SessionStore::new((opts.users as u64 * 4).max(1024))?);
    let mut tally = Tally::default();
    let load = Load::new(opts, 6, "shared session store", half);
    let (shared, pool) = session_run(
        opts,
        RoundRobin::new(),
        Some(Arc::clone(&store)),
        Arc::clone(&load),
        &mut tally,
    )
    .await?;
    let elapsed = load.elapsed();
    load.finish(format!("{} sessions lost", shared.lost_sessions));
    let mut row = Row {
        stage: 6,
        name: "stateless web".into(),
        changed: "sessions in a shared store; autoscaling 3 -> 5 -> 3 -> 4 servers".into(),
        hit_ratio: Some(store.stats().hit_ratio()),
        ..Row::default()
    };
    tally.fill(&mut row, elapsed);
    row.lost = shared.lost_sessions;
    row.notes.push(format!(
        "sticky sessions in server memory: removing 2 servers logged {} users out ({} sessions lost)",
        sticky.users_logged_out, sticky.lost_sessions
    ));
    row.notes.push(format!(
        "shared store (ConcurrentCache standing in for Redis): {} sessions lost over the same scaling",
        shared.lost_sessions
    ));
    let s = store.stats();
    metrics.push(Metric {
        stage: 6,
        component: "session store".into(),
        values: vec![
            ("entries".into(), store.len().to_string()),
            ("hits".into(), s.hits.to_string()),
            ("misses".into(), s.misses.to_string()),
            ("inserts".into(), s.inserts.to_string()),
        ],
    });
    metrics.push(lb_metric(6, "lb stateless", &pool.lb.stats()));
    pool.shutdown();
    Ok(Sessions {
        row,
        sticky,
        shared,
    })
}

// ---------------------------------------------------------------------------------------------
// Stage 7

/// Stage 7: two data centers, a traffic split, and a data-center failure.
#[derive(Debug, Clone)]
pub struct MultiDc {
    /// The summary row.
    pub row: Row,
    /// Share of requests served by us-east while both were up.
    pub east_share_before: f64,
    /// Share served by us-east after it went down.
    pub east_share_after: f64,
    /// Requests that failed as users saw them.
    pub errors: u64,
    /// Requests after the failure.
    pub requests_after: u64,
}

/// Stage 7.
///
/// # Errors
/// Database or balancer errors.
pub async fn multi_dc(
    opts: &Options,
    dir: &std::path::Path,
    metrics: &mut Vec<Metric>,
) -> Result<MultiDc> {
    const EAST: [u64; 3] = [1, 2, 3];
    const WEST: [u64; 3] = [11, 12, 13];
    let east_db = seeded_db(opts, dir, "db-us-east")?;
    let west_db = seeded_db(opts, dir, "db-us-west")?;
    // Each data center reads its own database; writes go to both (standing in for
    // cross-data-center replication).
    let apps = [
        profile_app(Arc::clone(&east_db)),
        profile_app(Arc::clone(&west_db)),
    ];
    let (edb, wdb) = (Arc::clone(&east_db), Arc::clone(&west_db));
    let handler: Handler = Arc::new(move |ctx, req| {
        let east = ctx.id < 10;
        if let Request::UpdateUser { id, bio } = req {
            let other = if east { &wdb } else { &edb };
            let _ = other.update_bio(*id, bio);
        }
        apps[usize::from(!east)](ctx, req)
    });
    let policy =
        Locality::new(RoundRobin::new()).tier(Tier::new().zone("us-east", 70).zone("us-west", 30));
    let pool = Pool::new(Balancer::builder().policy(policy), handler)?;
    for id in EAST {
        pool.start(id, Some("us-east"))?;
    }
    for id in WEST {
        pool.start(id, Some("us-west"))?;
    }
    let load = Load::new(opts, 7, "two data centers", opts.requests);
    let phase = Arc::new(AtomicU8::new(0));
    let down = Arc::new(AtomicBool::new(false));
    let hook: Hook = {
        let (pool, load, phase, down) = (
            Arc::clone(&pool),
            Arc::clone(&load),
            Arc::clone(&phase),
            Arc::clone(&down),
        );
        let at = load.at(0.5);
        Arc::new(move |n| {
            if n == at && !down.swap(true, Ordering::SeqCst) {
                // The health checks of us-east fail: mark them, then the data center is gone.
                for id in EAST {
                    let _ = pool.lb.set_healthy(id.into(), false);
                }
                phase.store(1, Ordering::SeqCst);
                for id in EAST {
                    pool.kill(id);
                }
                load.say("  stage 7: data center us-east is down".to_string());
            }
        })
    };
    let cfg = Arc::new(ProfileLoad {
        pool: Arc::clone(&pool),
        load: Arc::clone(&load),
        zipf: Arc::new(Zipf::new(opts.profiles, 0.99)),
        seed: opts.seed,
        stage: 7,
        profiles: opts.profiles,
        users: opts.users,
        write_ratio: 0.05,
        hook,
        phase,
    });
    let out = profile_users(cfg).await?;
    let elapsed = load.elapsed();
    let share = |phase: u8| {
        let in_phase: Vec<&CallRec> = out.calls.iter().filter(|c| c.phase == phase).collect();
        let east = in_phase
            .iter()
            .filter(|c| c.served_by.is_some_and(|s| s < 10))
            .count() as u64;
        (ratio(east, in_phase.len() as u64), in_phase.len() as u64)
    };
    let (before, _) = share(0);
    let (after, requests_after) = share(1);
    let mut row = Row {
        stage: 7,
        name: "multi data center".into(),
        changed: "locality tiers: us-east 70 / us-west 30, each with its own database".into(),
        db_qps: db_rates(
            &[
                (east_db.name.clone(), east_db.queries()),
                (west_db.name.clone(), west_db.queries()),
            ],
            elapsed,
        ),
        ..Row::default()
    };
    out.tally.fill(&mut row, elapsed);
    row.notes.push(format!(
        "split while both were up: us-east {:.0}% / us-west {:.0}%",
        before * 100.0,
        (1.0 - before) * 100.0
    ));
    row.notes.push(format!(
        "us-east down at 50%: us-west served {:.0}% of the {requests_after} requests after, {} failed",
        (1.0 - after) * 100.0,
        out.tally.errors
    ));
    load.finish(format!("{:.0} req/s", row.throughput));
    metrics.push(lb_metric(7, "lb locality", &pool.lb.stats()));
    metrics.push(db_metric(7, &[&east_db, &west_db], elapsed));
    pool.shutdown();
    Ok(MultiDc {
        row,
        east_share_before: before,
        east_share_after: after,
        errors: out.tally.errors,
        requests_after,
    })
}
