//! The data stages: 3 (replication through a shipped write log), 4 (a read-through cache over
//! the replicas, LRU vs LFU vs FIFO) and 5 (a CDN edge with TTL and versioned invalidation).

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tierkit::cache::{CachePolicy, ConcurrentCache, FifoCache, LfuCache, LruCache, ManualClock};
use tierkit::lb::{Balancer, LeastLatency, RoundRobin};
use tierkit::mq::{Consumer, Durability, Message, Queue};
use tierkit::replication::{
    Config, Consistency, Fallback, Intent, NodeId, Position, Promotion, ReplicaSet, SessionToken,
};

use super::db::{DbNode, Profile};
use super::stage_web::{Hook, ProfileLoad, db_metric, lb_metric, profile_users};
use super::web::{AppError, Handler, Pool, Reply, Request};
use super::{Load, Metric, Options, Result, Rng, Row, Tally, Zipf, db_rates, ratio, run_users};

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

// ---------------------------------------------------------------------------------------------
// The replicated database: a primary that logs its writes, a shipper that publishes the log to a
// tierkit-mq topic, and replicas that consume it.

/// A database node as the replica set holds it: the SQLite node, and its write log when it is
/// the primary.
#[derive(Debug)]
pub struct Node {
    /// Replica-set id.
    pub id: NodeId,
    /// The SQLite node.
    pub db: Arc<DbNode>,
    /// The primary's log: last position written, entries not shipped yet.
    log: Mutex<(u64, Vec<(u64, Profile)>)>,
}

impl Node {
    /// A write on the primary: updates the row and appends the new row to the log, atomically.
    /// Returns (position, version).
    fn write(&self, id: u64, bio: &str) -> std::result::Result<Option<(u64, Profile)>, String> {
        let mut log = lock(&self.log);
        let Some(_) = self.db.update_bio(id, bio).map_err(|e| e.to_string())? else {
            return Ok(None);
        };
        let row = self
            .db
            .with(|c| super::db::read_user(c, id))
            .map_err(|e| e.to_string())?
            .ok_or("row vanished")?;
        log.0 += 1;
        let lsn = log.0;
        log.1.push((lsn, row.clone()));
        Ok(Some((lsn, row)))
    }
}

fn encode(lsn: u64, p: &Profile) -> Message {
    Message::new(format!(
        "{lsn}\u{1f}{}\u{1f}{}\u{1f}{}\u{1f}{}",
        p.id, p.version, p.name, p.bio
    ))
}

fn decode(payload: &[u8]) -> Option<(u64, Profile)> {
    let s = std::str::from_utf8(payload).ok()?;
    let mut it = s.split('\u{1f}');
    let lsn = it.next()?.parse().ok()?;
    let id = it.next()?.parse().ok()?;
    let version = it.next()?.parse().ok()?;
    let name = it.next()?.to_string();
    let bio = it.next()?.to_string();
    Some((
        lsn,
        Profile {
            id,
            name,
            bio,
            version,
        },
    ))
}

/// A replica's log consumer: applies entries in order, reports its position.
struct Applier {
    stop: Arc<AtomicBool>,
    /// Entries past this position are history lost in a failover: not applied.
    cap: Arc<AtomicU64>,
    /// The topic to follow once `cap` is reached (the new primary's log).
    next: Arc<Mutex<Option<Consumer>>>,
    thread: Option<JoinHandle<()>>,
}

impl Applier {
    /// Follows `consumer` up to position `cap`, then `next` (if any).
    fn spawn(
        node: Arc<Node>,
        set: Arc<ReplicaSet<Arc<Node>>>,
        consumer: Consumer,
        cap: u64,
        next: Option<Consumer>,
    ) -> Applier {
        let stop = Arc::new(AtomicBool::new(false));
        let cap = Arc::new(AtomicU64::new(cap));
        let next: Arc<Mutex<Option<Consumer>>> = Arc::new(Mutex::new(next));
        let (s, c, n) = (Arc::clone(&stop), Arc::clone(&cap), Arc::clone(&next));
        let thread = std::thread::spawn(move || {
            let mut consumer = consumer;
            let mut applied = node.db.applied().unwrap_or(0);
            while !s.load(Ordering::Relaxed) {
                if node.db.is_down() {
                    // A dead replica consumes nothing; its group remembers where it was.
                    std::thread::sleep(Duration::from_millis(1));
                    continue;
                }
                if applied >= c.load(Ordering::Relaxed) {
                    match lock(&n).take() {
                        Some(next) => {
                            consumer = next;
                            c.store(u64::MAX, Ordering::Relaxed);
                        }
                        None => std::thread::sleep(Duration::from_millis(1)),
                    }
                    continue;
                }
                let Ok(Some(d)) = consumer.recv_timeout(Duration::from_millis(2)) else {
                    continue;
                };
                let Some((lsn, row)) = decode(d.payload()) else {
                    let _ = consumer.ack(&d);
                    continue;
                };
                if lsn > c.load(Ordering::Relaxed) {
                    // Lost history of the old primary: never applied.
                    let _ = consumer.ack(&d);
                    continue;
                }
                match node.db.apply(lsn, &row) {
                    Ok(true) => {
                        applied = lsn;
                        let _ = consumer.ack(&d);
                        let _ = set.report_position(node.id, Position(lsn));
                    }
                    Ok(false) if lsn <= applied => {
                        let _ = consumer.ack(&d);
                    }
                    _ => {
                        let _ = consumer.nack(&d, Duration::ZERO);
                    }
                }
            }
        });
        Applier {
            stop,
            cap,
            next,
            thread: Some(thread),
        }
    }

    fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Applier {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A primary, its replicas, the log topic between them, and failover.
pub struct Cluster {
    /// The routing brain.
    pub set: Arc<ReplicaSet<Arc<Node>>>,
    /// Every node, by id (0 = first primary).
    pub nodes: Vec<Arc<Node>>,
    queue: Queue,
    appliers: Mutex<Vec<(NodeId, Applier)>>,
    shipper_stop: Arc<AtomicBool>,
    /// The promotion, once one happened.
    pub promotion: Mutex<Option<Promotion>>,
    failing_over: Mutex<()>,
    /// Writes acknowledged in epoch 1, by position (to verify the lost-write report).
    pub acked_epoch1: Mutex<Vec<u64>>,
    /// Entries shipped through the log.
    pub shipped: Arc<AtomicU64>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster").finish_non_exhaustive()
    }
}

impl Cluster {
    /// A primary and `replicas` replicas in `dir`, seeded with the profiles.
    ///
    /// # Errors
    /// Database, queue or replica-set errors.
    pub fn start(opts: &Options, dir: &std::path::Path, replicas: u32) -> Result<Arc<Self>> {
        let mut nodes = Vec::new();
        for i in 0..=replicas {
            let name = if i == 0 {
                "primary".to_string()
            } else {
                format!("replica-{i}")
            };
            let db = DbNode::open(dir, &name)?;
            db.seed_users(0..opts.profiles)?;
            nodes.push(Arc::new(Node {
                id: NodeId(i),
                db,
                log: Mutex::new((0, Vec::new())),
            }));
        }
        let mut builder = ReplicaSet::builder()
            .primary(NodeId(0), Arc::clone(&nodes[0]))
            .read_policy(LeastLatency::new())
            .config(
                Config::default()
                    .fall(3)
                    .failover_after(Duration::ZERO)
                    .quiet_period(Duration::ZERO),
            );
        for n in &nodes[1..] {
            builder = builder.replica(n.id, Arc::clone(n));
        }
        let set = Arc::new(builder.build()?);
        let queue = Queue::builder()
            .durability(Durability::Never)
            .max_deliveries(1_000_000)
            .build(dir.join("binlog"))?;
        let mut appliers = Vec::new();
        for n in &nodes[1..] {
            let consumer = queue.consumer("binlog-1", &format!("replica-{}", n.id.0))?;
            appliers.push((
                n.id,
                Applier::spawn(Arc::clone(n), Arc::clone(&set), consumer, u64::MAX, None),
            ));
        }
        let cluster = Arc::new(Cluster {
            set,
            nodes,
            queue,
            appliers: Mutex::new(appliers),
            shipper_stop: Arc::new(AtomicBool::new(false)),
            promotion: Mutex::new(None),
            failing_over: Mutex::new(()),
            acked_epoch1: Mutex::new(Vec::new()),
            shipped: Arc::new(AtomicU64::new(0)),
        });
        cluster.ship(Arc::clone(&cluster.nodes[0]), "binlog-1")?;
        Ok(cluster)
    }

    /// Starts the shipper of `primary`'s log to `topic`: every millisecond, asynchronously
    /// (what the primary acknowledged but has not shipped yet is what a crash loses).
    fn ship(&self, primary: Arc<Node>, topic: &str) -> Result<()> {
        let producer = self.queue.producer(topic)?;
        let stop = Arc::clone(&self.shipper_stop);
        let shipped = Arc::clone(&self.shipped);
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) && !primary.db.is_down() {
                let batch: Vec<Message> = {
                    let mut log = lock(&primary.log);
                    if primary.db.is_down() {
                        break;
                    }
                    log.1.drain(..).map(|(lsn, p)| encode(lsn, &p)).collect()
                };
                if !batch.is_empty() && producer.send_batch(&batch).is_ok() {
                    shipped.fetch_add(batch.len() as u64, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        });
        Ok(())
    }

    /// Reads a profile with `consistency` as a reply.
    fn read(&self, id: u64, consistency: Consistency) -> std::result::Result<Reply, AppError> {
        let (p, from_replica, after_failover) = self.read_row(id, consistency)?;
        Ok(Reply {
            body: p.json(),
            version: p.version,
            from_replica,
            after_failover,
            ..Reply::default()
        })
    }

    /// Reads a profile with `consistency`; retries on another node when one fails. Returns
    /// the row, whether a replica served it, and whether the session's token predates a
    /// failover.
    fn read_row(
        &self,
        id: u64,
        consistency: Consistency,
    ) -> std::result::Result<(Profile, bool, bool), AppError> {
        let mut last = String::new();
        for attempt in 0..40 {
            if attempt > 2 {
                std::thread::sleep(Duration::from_micros(250));
            }
            let route = match self.set.route(Intent::Read(consistency)) {
                Ok(r) => r,
                Err(e) => {
                    last = e.to_string();
                    self.maybe_failover();
                    std::thread::yield_now();
                    continue;
                }
            };
            let t0 = Instant::now();
            let from_replica = !route.is_primary();
            let after_failover = route.fallback() == Some(Fallback::EarlierEpoch);
            match route.node().db.get_user(id) {
                Ok(Some(p)) => {
                    route.success_after(t0.elapsed());
                    return Ok((p, from_replica, after_failover));
                }
                Ok(None) => return Err(AppError(format!("404 user {id}"))),
                Err(e) => {
                    last = e.to_string();
                    let primary = route.is_primary();
                    route.failure();
                    if primary {
                        self.maybe_failover();
                    }
                }
            }
        }
        Err(AppError(last))
    }

    /// Writes a bio on the primary; fails over if the primary is dead.
    fn write(&self, id: u64, bio: &str) -> std::result::Result<(Reply, Profile), AppError> {
        let mut last = String::new();
        for attempt in 0..40 {
            if attempt > 2 {
                // A failover is under way: give it a moment (a real client backs off too).
                std::thread::sleep(Duration::from_micros(250));
            }
            let route = match self.set.route(Intent::Write) {
                Ok(r) => r,
                Err(e) => {
                    last = e.to_string();
                    self.maybe_failover();
                    continue;
                }
            };
            match route.node().write(id, bio) {
                Ok(Some((lsn, row))) => {
                    let epoch = route.epoch();
                    let token: SessionToken = route.committed(Position(lsn));
                    if epoch.0 == 1 {
                        lock(&self.acked_epoch1).push(lsn);
                    }
                    return Ok((
                        Reply {
                            body: format!(r#"{{"id":{id},"version":{}}}"#, row.version),
                            version: row.version,
                            token: Some(token),
                            ..Reply::default()
                        },
                        row,
                    ));
                }
                Ok(None) => return Err(AppError(format!("404 user {id}"))),
                Err(e) => {
                    last = e;
                    route.failure();
                    self.maybe_failover();
                    std::thread::yield_now();
                }
            }
        }
        Err(AppError(last))
    }

    /// If the primary is marked down: freeze the replicas (stop applying the old log, so their
    /// positions are exact and none runs past the new primary), promote the most advanced one,
    /// start its log, and re-point the others (they first catch up to the new primary's
    /// position on the old log, then follow the new one).
    fn maybe_failover(&self) {
        let Ok(_guard) = self.failing_over.try_lock() else {
            return;
        };
        let primary_down = self.set.primary_healthy() == Some(false);
        if !primary_down || lock(&self.promotion).is_some() {
            return;
        }
        let mut appliers = lock(&self.appliers);
        let followers: Vec<NodeId> = appliers.iter().map(|(id, _)| *id).collect();
        for (_, mut a) in appliers.drain(..) {
            a.stop();
        }
        for n in &self.nodes[1..] {
            if let Ok(p) = n.db.applied() {
                let _ = self.set.report_position(n.id, Position(p));
            }
        }
        let restart = |id: NodeId, cap: u64, next: Option<&str>| -> Option<Applier> {
            let node = self.nodes.iter().find(|n| n.id == id)?;
            let group = format!("replica-{}", id.0);
            let old = self.queue.consumer("binlog-1", &group).ok()?;
            let next = match next {
                Some(topic) => Some(self.queue.consumer(topic, &group).ok()?),
                None => None,
            };
            Some(Applier::spawn(
                Arc::clone(node),
                Arc::clone(&self.set),
                old,
                cap,
                next,
            ))
        };
        // The in-process "engine" takes writes on the candidate at once: finish the promotion
        // right away (a real database would run its promotion hook first).
        let promotion = match self
            .set
            .check_failover()
            .and_then(|p| p.map(|p| self.set.complete_promotion(&p, None)).transpose())
        {
            Ok(Some(p)) => p,
            _ => {
                for id in followers {
                    if let Some(a) = restart(id, u64::MAX, None) {
                        appliers.push((id, a));
                    }
                }
                return;
            }
        };
        let new = promotion.new_primary;
        let Some(node) = self.nodes.iter().find(|n| n.id == new).cloned() else {
            return;
        };
        let position = node.db.applied().unwrap_or(0);
        lock(&node.log).0 = position;
        let _ = self.set.report_position(new, Position(position));
        let topic = format!("binlog-{}", promotion.epoch.0);
        for id in followers.into_iter().filter(|id| *id != new) {
            if let Some(a) = restart(id, position, Some(&topic)) {
                appliers.push((id, a));
            }
        }
        drop(appliers);
        let _ = self.ship(node, &topic);
        *lock(&self.promotion) = Some(promotion);
    }

    /// Database nodes' names and query counts.
    #[must_use]
    pub fn queries(&self) -> Vec<(String, u64)> {
        self.nodes
            .iter()
            .map(|n| (n.db.name.clone(), n.db.queries()))
            .collect()
    }

    /// Stops the shipper and the appliers.
    pub fn stop(&self) {
        self.shipper_stop.store(true, Ordering::Relaxed);
        for (_, mut a) in lock(&self.appliers).drain(..) {
            a.stop();
        }
    }

    /// The replica set's per-node statistics as a dashboard entry.
    #[must_use]
    pub fn metric(&self, stage: u8) -> Metric {
        let mut values: Vec<(String, String)> = self
            .set
            .stats()
            .iter()
            .map(|s| {
                (
                    format!("node {}", s.id.0),
                    format!(
                        "{:?} healthy={} pos={} lag={} reads={} writes={} fallback={} failures={}",
                        s.role,
                        s.healthy,
                        s.position.0,
                        s.lag,
                        s.reads,
                        s.writes,
                        s.fallback_reads,
                        s.failures
                    ),
                )
            })
            .collect();
        if let Ok(st) = self.queue.stats("binlog-1") {
            values.push((
                "binlog-1".into(),
                format!("end={} groups={}", st.log_end, st.groups.len()),
            ));
        }
        Metric {
            stage,
            component: "replica set".into(),
            values,
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The application of stage 3: reads on replicas (read-your-writes after the user's own
/// write), writes on the primary.
fn replicated_app(cluster: Arc<Cluster>) -> Handler {
    Arc::new(move |_ctx, req| match req {
        Request::GetUser { id, token } => {
            let consistency = match token {
                Some(t) => Consistency::ReadYourWrites(*t),
                None => Consistency::BoundedStaleness(50),
            };
            cluster.read(*id, consistency)
        }
        Request::UpdateUser { id, bio } => cluster.write(*id, bio).map(|(r, _)| r),
        other => Err(AppError(format!("unsupported {other:?}"))),
    })
}

// ---------------------------------------------------------------------------------------------
// Stage 3

/// Stage 3: a primary and two replicas, reads split, failures.
#[derive(Debug, Clone)]
pub struct Replication {
    /// The summary row.
    pub row: Row,
    /// Reads answered.
    pub reads: u64,
    /// Reads a replica answered.
    pub replica_reads: u64,
    /// Reads of a user's own profile right after their write.
    pub own_reads: u64,
    /// Of those, reads that missed the write (read-your-writes violations; must be 0).
    pub stale_own_reads: u64,
    /// Own reads after the failover that missed a write lost with the old primary.
    pub lost_own_reads: u64,
    /// Whether a replica was promoted.
    pub promoted: bool,
    /// The promoted node.
    pub new_primary: Option<u32>,
    /// Writes the old primary acknowledged that the new one never received
    /// (`Promotion.lost`).
    pub lost_writes: u64,
    /// The same, counted from the acknowledged writes the users saw.
    pub lost_writes_verified: u64,
    /// Log entries shipped through the tierkit-mq topic.
    pub shipped: u64,
}

/// Stage 3.
///
/// # Errors
/// Database, queue or replica-set errors.
pub async fn replication(
    opts: &Options,
    dir: &std::path::Path,
    metrics: &mut Vec<Metric>,
) -> Result<Replication> {
    let cluster = Cluster::start(opts, dir, 2)?;
    let pool = Pool::new(
        Balancer::builder(RoundRobin::new()),
        replicated_app(Arc::clone(&cluster)),
    )?;
    for id in 1..=4 {
        pool.start(id, None)?;
    }
    let load = Load::new(opts, 3, "replication", opts.requests);
    let hook: Hook = {
        let (c, load) = (Arc::clone(&cluster), Arc::clone(&load));
        let marks = [load.at(0.3), load.at(0.55), load.at(0.75)];
        Arc::new(move |n| {
            if n == marks[0] {
                c.nodes[2].db.set_down(true);
                load.say("  stage 3: replica-2 died".into());
            } else if n == marks[1] {
                c.nodes[2].db.set_down(false);
                let _ = c.set.mark_up(NodeId(2));
                load.say(
                    "  stage 3: replica-2 restarted; it catches up from its log offset".into(),
                );
            } else if n == marks[2] {
                c.nodes[0].db.set_down(true);
                load.say("  stage 3: the primary died".into());
            }
        })
    };
    let cfg = Arc::new(ProfileLoad {
        pool: Arc::clone(&pool),
        load: Arc::clone(&load),
        zipf: Arc::new(Zipf::new(opts.profiles, 0.99)),
        seed: opts.seed,
        stage: 3,
        profiles: opts.profiles,
        users: opts.users,
        write_ratio: 0.1,
        hook,
        phase: Arc::new(AtomicU8::new(0)),
    });
    let out = profile_users(cfg).await?;
    let elapsed = load.elapsed();
    let promotion = *lock(&cluster.promotion);
    let lost_writes = promotion.and_then(|p| p.lost).map_or(0, |l| l.len());
    let lost_verified = promotion.and_then(|p| p.lost).map_or(0, |l| {
        lock(&cluster.acked_epoch1)
            .iter()
            .filter(|&&lsn| l.contains(Position(lsn)))
            .count() as u64
    });
    let mut row = Row {
        stage: 3,
        name: "replication".into(),
        changed: "primary + 2 replicas fed by a write log on a tierkit-mq topic".into(),
        db_qps: db_rates(&cluster.queries(), elapsed),
        ..Row::default()
    };
    out.tally.fill(&mut row, elapsed);
    row.lost = lost_writes;
    row.notes.push(format!(
        "replicas served {:.0}% of {} reads; read-your-writes: {} of {} reads of a user's own update were stale ({} more showed a write lost in the failover)",
        ratio(out.replica_reads, out.reads) * 100.0,
        out.reads,
        out.stale_own,
        out.own_reads,
        out.lost_own
    ));
    row.notes.push(match promotion {
        Some(p) => format!(
            "replica-2 died at 30% (reads moved), came back at 55%; primary died at 75%: node {} promoted (epoch {}), {} acknowledged writes lost ({} verified)",
            p.new_primary.0, p.epoch.0, lost_writes, lost_verified
        ),
        None => "the primary died at 75% but no promotion happened".into(),
    });
    load.finish(format!("{:.0} req/s", row.throughput));
    metrics.push(cluster.metric(3));
    if let Some(s) = cluster.set.read_balancer_stats() {
        metrics.push(lb_metric(3, "lb replica reads", &s));
    }
    let dbs: Vec<&DbNode> = cluster.nodes.iter().map(|n| &*n.db).collect();
    metrics.push(db_metric(3, &dbs, elapsed));
    pool.shutdown();
    cluster.stop();
    Ok(Replication {
        row,
        reads: out.reads,
        replica_reads: out.replica_reads,
        own_reads: out.own_reads,
        stale_own_reads: out.stale_own,
        lost_own_reads: out.lost_own,
        promoted: promotion.is_some(),
        new_primary: promotion.map(|p| p.new_primary.0),
        lost_writes,
        lost_writes_verified: lost_verified,
        shipped: cluster.shipped.load(Ordering::Relaxed),
    })
}

// ---------------------------------------------------------------------------------------------
// Stage 4

/// One cache policy's run of stage 4.
#[derive(Debug, Clone)]
pub struct CacheRun {
    /// Policy name.
    pub policy: String,
    /// The cache's own hit ratio (`stats().hit_ratio()`).
    pub hit_ratio: f64,
    /// Profile reads.
    pub reads: u64,
    /// Reads that reached a database (loader calls).
    pub db_reads: u64,
    /// `1 - db_reads / reads`: how much the cache cut database reads (without it every read
    /// is a query).
    pub db_read_cut: f64,
    /// Throughput, requests/s.
    pub throughput: f64,
    /// Median latency.
    pub p50: Duration,
    /// 99th percentile latency.
    pub p99: Duration,
}

/// Stage 4: a read-through cache tier.
#[derive(Debug, Clone)]
pub struct CacheTier {
    /// The summary row (LRU).
    pub row: Row,
    /// Cache capacity (entries) of each run.
    pub capacity: u64,
    /// LRU, LFU and FIFO on the same load.
    pub runs: Vec<CacheRun>,
}

type ProfileCache<P> = ConcurrentCache<u64, Arc<Profile>, P>;

fn cached_app<P>(
    cluster: Arc<Cluster>,
    cache: Arc<ProfileCache<P>>,
    loads: Arc<AtomicU64>,
) -> Handler
where
    P: CachePolicy<u64, Arc<Profile>> + Send + Sync + 'static,
{
    Arc::new(move |_ctx, req| match req {
        Request::GetUser { id, .. } => {
            let mut loaded = false;
            let got = cache.get_or_load(*id, || {
                loaded = true;
                loads.fetch_add(1, Ordering::Relaxed);
                cluster
                    .read_row(*id, Consistency::BoundedStaleness(50))
                    .map(|(p, _, _)| Arc::new(p))
                    .map_err(|e| std::io::Error::other(e.0))
            });
            match got {
                Ok(p) => Ok(Reply {
                    body: p.json(),
                    version: p.version,
                    cache_hit: !loaded,
                    from_replica: true,
                    ..Reply::default()
                }),
                Err(e) => Err(AppError(e.to_string())),
            }
        }
        Request::UpdateUser { id, bio } => {
            let (reply, row) = cluster.write(*id, bio)?;
            // Write-through: the cache holds the new row, so the writer reads it back.
            cache.insert(*id, Arc::new(row));
            Ok(reply)
        }
        other => Err(AppError(format!("unsupported {other:?}"))),
    })
}

async fn cache_run<P>(
    opts: &Options,
    cluster: &Arc<Cluster>,
    name: &str,
    capacity: u64,
    requests: u64,
    metrics: &mut Vec<Metric>,
) -> Result<(CacheRun, Tally, Duration)>
where
    P: CachePolicy<u64, Arc<Profile>> + Send + Sync + 'static,
{
    let cache: Arc<ProfileCache<P>> = Arc::new(ConcurrentCache::new(capacity)?);
    let loads = Arc::new(AtomicU64::new(0));
    let pool = Pool::new(
        Balancer::builder(RoundRobin::new()),
        cached_app(Arc::clone(cluster), Arc::clone(&cache), Arc::clone(&loads)),
    )?;
    for id in 1..=4 {
        pool.start(id, None)?;
    }
    let load = Load::new(opts, 4, &format!("cache {name}"), requests);
    let cfg = Arc::new(ProfileLoad {
        pool: Arc::clone(&pool),
        load: Arc::clone(&load),
        zipf: Arc::new(Zipf::new(opts.profiles, 0.99)),
        seed: opts.seed,
        // The same stream for every policy: the same requests.
        stage: 4,
        profiles: opts.profiles,
        users: opts.users,
        write_ratio: 0.05,
        hook: Arc::new(|_| {}),
        phase: Arc::new(AtomicU8::new(0)),
    });
    let node_reads = || cluster.nodes.iter().map(|n| n.db.reads()).sum::<u64>();
    let reads_before = node_reads();
    let out = profile_users(cfg).await?;
    let elapsed = load.elapsed();
    let stats = cache.stats();
    // Measured at the database nodes: profile reads they served during this run.
    let db_reads = node_reads() - reads_before;
    let (p50, p99) = out.tally.percentiles();
    let run = CacheRun {
        policy: name.to_string(),
        hit_ratio: stats.hit_ratio(),
        reads: out.reads,
        db_reads,
        db_read_cut: 1.0 - ratio(db_reads, out.reads),
        throughput: out.tally.count() as f64 / elapsed.as_secs_f64().max(1e-9),
        p50,
        p99,
    };
    load.finish(format!(
        "hit ratio {:.1}%, db reads cut {:.1}%",
        run.hit_ratio * 100.0,
        run.db_read_cut * 100.0
    ));
    metrics.push(Metric {
        stage: 4,
        component: format!("cache {name}"),
        values: vec![
            ("hits".into(), stats.hits.to_string()),
            ("misses".into(), stats.misses.to_string()),
            ("inserts".into(), stats.inserts.to_string()),
            ("updates".into(), stats.updates.to_string()),
            ("evictions".into(), stats.evictions.to_string()),
            ("hit ratio".into(), format!("{:.3}", stats.hit_ratio())),
            (
                "loader calls".into(),
                loads.load(Ordering::Relaxed).to_string(),
            ),
        ],
    });
    pool.shutdown();
    Ok((run, out.tally, elapsed))
}

/// Stage 4.
///
/// # Errors
/// Database, queue, cache or replica-set errors.
pub async fn cache_tier(
    opts: &Options,
    dir: &std::path::Path,
    metrics: &mut Vec<Metric>,
) -> Result<CacheTier> {
    let cluster = Cluster::start(opts, dir, 2)?;
    let capacity = (opts.profiles / 20).max(8);
    let requests = (opts.requests / 2).max(opts.users as u64);
    let before = cluster.queries();
    let (lru, tally, elapsed) = cache_run::<LruCache<u64, Arc<Profile>>>(
        opts, &cluster, "LRU", capacity, requests, metrics,
    )
    .await?;
    let after = cluster.queries();
    let (lfu, _, _) = cache_run::<LfuCache<u64, Arc<Profile>>>(
        opts, &cluster, "LFU", capacity, requests, metrics,
    )
    .await?;
    let (fifo, _, _) = cache_run::<FifoCache<u64, Arc<Profile>>>(
        opts, &cluster, "FIFO", capacity, requests, metrics,
    )
    .await?;
    let delta: Vec<(String, u64)> = after
        .iter()
        .zip(&before)
        .map(|((n, a), (_, b))| (n.clone(), a - b))
        .collect();
    let mut row = Row {
        stage: 4,
        name: "cache tier".into(),
        changed: format!("read-through cache ({capacity} entries) over the replicas"),
        db_qps: db_rates(&delta, elapsed),
        hit_ratio: Some(lru.hit_ratio),
        ..Row::default()
    };
    tally.fill(&mut row, elapsed);
    for r in [&lru, &lfu, &fifo] {
        row.notes.push(format!(
            "{:<4} hit ratio {:>5.1}%: {} of {} reads reached a database (cut {:.1}%), {:.0} req/s, p99 {:.2?}",
            r.policy,
            r.hit_ratio * 100.0,
            r.db_reads,
            r.reads,
            r.db_read_cut * 100.0,
            r.throughput,
            r.p99
        ));
    }
    metrics.push(cluster.metric(4));
    cluster.stop();
    Ok(CacheTier {
        row,
        capacity,
        runs: vec![lru, lfu, fifo],
    })
}

// ---------------------------------------------------------------------------------------------
// Stage 5

/// Stage 5: static assets behind CDN edges.
#[derive(Debug, Clone)]
pub struct Cdn {
    /// The summary row.
    pub row: Row,
    /// Asset requests.
    pub requests: u64,
    /// Requests the origin served (edge misses).
    pub origin_requests: u64,
    /// The edges' combined hit ratio.
    pub edge_hit_ratio: f64,
    /// After the deploy: responses of the versioned asset (app.js) with old content (0).
    pub stale_versioned: u64,
    /// After the deploy: responses of the in-place updated asset (logo.png) with old content,
    /// until its purge.
    pub stale_unversioned: u64,
}

/// An asset as the origin serves it.
#[derive(Debug, Clone)]
struct Asset {
    version: u64,
    body: Arc<[u8]>,
}

type Edge = ConcurrentCache<String, Asset, LruCache<String, Asset>>;

/// Stage 5.
///
/// # Errors
/// Database or cache errors.
pub async fn cdn(opts: &Options, dir: &std::path::Path, metrics: &mut Vec<Metric>) -> Result<Cdn> {
    const IMAGES: u64 = 200;
    let origin = DbNode::open(dir, "origin")?;
    {
        let mut conn = origin.lock();
        let tx = conn.transaction()?;
        let put = |path: &str, version: u64, size: usize| {
            tx.execute(
                "INSERT OR REPLACE INTO assets (path, version, body) VALUES (?1, ?2, ?3)",
                rusqlite::params![path, version as i64, vec![(version % 251) as u8; size]],
            )
        };
        put("/static/app.1.js", 1, 40_000)?;
        put("/static/logo.png", 1, 8_000)?;
        for i in 0..IMAGES {
            put(
                &format!("/img/{i}.jpg"),
                1,
                2_000 + (i as usize % 7) * 1_000,
            )?;
        }
        tx.commit()?;
    }
    let clock = ManualClock::new();
    let ttl = Duration::from_secs(60);
    // Simulated time: the load spans four TTLs, whatever its size.
    let tick = ttl * 4 / u32::try_from(opts.requests.max(1)).unwrap_or(u32::MAX);
    let edges: Vec<Arc<Edge>> = (0..2)
        .map(|_| {
            Edge::with_builder(
                &tierkit::cache::CacheBuilder::new(256)
                    .default_ttl(ttl)
                    .clock(clock.clone()),
            )
            .map(Arc::new)
        })
        .collect::<std::result::Result<_, _>>()?;
    let deployed = Arc::new(AtomicU64::new(1));
    let purged = Arc::new(AtomicBool::new(false));
    let load = Load::new(opts, 5, "CDN", opts.requests);
    let (deploy_at, purge_at) = (load.at(0.5), load.at(0.6));
    let zipf = Arc::new(Zipf::new(IMAGES, 1.1));
    let users = opts.users;
    let seed = opts.seed;
    let outs = run_users(users, |u| {
        let (origin, edge, load, zipf, deployed, purged, clock, all_edges) = (
            Arc::clone(&origin),
            Arc::clone(&edges[u % 2]),
            Arc::clone(&load),
            Arc::clone(&zipf),
            Arc::clone(&deployed),
            Arc::clone(&purged),
            clock.clone(),
            edges.clone(),
        );
        async move {
            let mut rng = Rng::new(seed, &[5, u as u64]);
            let mut t = Tally::default();
            let (mut stale_v, mut stale_u) = (0u64, 0u64);
            for _ in 0..load.per_user(users) {
                if load.over() {
                    break;
                }
                let v = deployed.load(Ordering::SeqCst);
                let r = rng.below(10);
                let path = match r {
                    0 => format!("/static/app.{v}.js"),
                    1 => "/static/logo.png".to_string(),
                    _ => format!("/img/{}.jpg", zipf.sample(&mut rng)),
                };
                let t0 = Instant::now();
                let got = match edge.get(&path) {
                    Some(a) => Some(a),
                    None => {
                        // Origin fallback: the edge fetches and caches it for the TTL.
                        let fetched = origin.with(|c| {
                            c.query_row(
                                "SELECT version, body FROM assets WHERE path = ?1",
                                [&path],
                                |row| {
                                    Ok(Asset {
                                        version: row.get::<_, i64>(0)? as u64,
                                        body: row.get::<_, Vec<u8>>(1)?.into(),
                                    })
                                },
                            )
                        });
                        match fetched {
                            Ok(a) => {
                                edge.insert(path.clone(), a.clone());
                                Some(a)
                            }
                            Err(_) => None,
                        }
                    }
                };
                t.record(t0);
                match got {
                    Some(a) if a.body.is_empty() => t.errors += 1,
                    Some(a) => {
                        let current = deployed.load(Ordering::SeqCst);
                        if r == 0 && a.version < v {
                            stale_v += 1;
                        }
                        if r == 1 && current > 1 && a.version < current {
                            stale_u += 1;
                        }
                    }
                    None => t.errors += 1,
                }
                clock.advance(tick);
                let n = load.finish_one();
                if n == deploy_at {
                    // Deploy v2: a new app.js under a new URL, and logo.png replaced in place.
                    let _ = origin.with(|c| {
                        c.execute(
                            "INSERT OR REPLACE INTO assets (path, version, body) VALUES ('/static/app.2.js', 2, ?1)",
                            [vec![2u8; 41_000]],
                        )?;
                        c.execute(
                            "UPDATE assets SET version = 2, body = ?1 WHERE path = '/static/logo.png'",
                            [vec![2u8; 9_000]],
                        )
                    });
                    deployed.store(2, Ordering::SeqCst);
                    load.say("  stage 5: deployed v2 (app.2.js is a new URL; logo.png changed in place)".into());
                }
                if n == purge_at && !purged.swap(true, Ordering::SeqCst) {
                    for e in &all_edges {
                        e.remove("/static/logo.png");
                    }
                    load.say("  stage 5: purged /static/logo.png from the edges".into());
                }
            }
            (t, stale_v, stale_u)
        }
    })
    .await?;
    let elapsed = load.elapsed();
    let mut tally = Tally::default();
    let (mut stale_v, mut stale_u) = (0, 0);
    for (t, v, u) in outs {
        tally.merge(t);
        stale_v += v;
        stale_u += u;
    }
    let mut stats = tierkit::cache::CacheStats::default();
    for e in &edges {
        stats.merge(&e.stats());
    }
    let origin_requests = origin.queries();
    let requests = tally.count() as u64;
    let mut row = Row {
        stage: 5,
        name: "CDN".into(),
        changed: "static assets behind 2 TTL edge caches, origin fallback".into(),
        db_qps: db_rates(&[(origin.name.clone(), origin_requests)], elapsed),
        hit_ratio: Some(stats.hit_ratio()),
        ..Row::default()
    };
    tally.fill(&mut row, elapsed);
    row.notes.push(format!(
        "edges answered {:.1}% of {requests} asset requests; the origin served {origin_requests}",
        stats.hit_ratio() * 100.0
    ));
    row.notes.push(format!(
        "deploy at 50%: versioned app.js served stale {stale_v} times; logo.png (same URL) served stale {stale_u} times until its purge at 60%"
    ));
    load.finish(format!("edge hit ratio {:.1}%", stats.hit_ratio() * 100.0));
    metrics.push(Metric {
        stage: 5,
        component: "cdn edges".into(),
        values: vec![
            ("hits".into(), stats.hits.to_string()),
            ("misses".into(), stats.misses.to_string()),
            ("expirations".into(), stats.expirations.to_string()),
            ("removals".into(), stats.removals.to_string()),
        ],
    });
    metrics.push(db_metric(5, &[&origin], elapsed));
    Ok(Cdn {
        row,
        requests,
        origin_requests,
        edge_hit_ratio: stats.hit_ratio(),
        stale_versioned: stale_v,
        stale_unversioned: stale_u,
    })
}
