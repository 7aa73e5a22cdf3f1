//! Stage 8: photo uploads become jobs on a tierkit-mq topic; a worker pool sized by the queue's
//! depth processes them; every worker crashes once mid-run and the pool restarts.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tierkit::lb::{Balancer, RoundRobin};
use tierkit::mq::{Durability, Message, Queue};

use super::db::DbNode;
use super::stage_web::{db_metric, lb_metric};
use super::web::{AppError, Handler, Pool, Reply, Request};
use super::{Load, Metric, Options, Result, Rng, Row, Tally, run_users};

/// One sample of the worker pool over time.
#[derive(Debug, Clone, Copy)]
pub struct PoolSample {
    /// Milliseconds since the stage started.
    pub t_ms: u64,
    /// Jobs waiting.
    pub depth: u64,
    /// Workers running.
    pub workers: usize,
}

/// Stage 8's measurements.
#[derive(Debug, Clone)]
pub struct PhotoQueue {
    /// The summary row.
    pub row: Row,
    /// Jobs published (uploads acknowledged to users).
    pub published: u64,
    /// Jobs whose photo was processed (distinct).
    pub processed: u64,
    /// Deliveries made again after a crash (visibility timeout).
    pub redelivered: u64,
    /// Published jobs never processed (must be 0).
    pub lost: u64,
    /// Jobs processed more than once (a crash between processing and ack); detected by the
    /// idempotent update and reported.
    pub duplicates: u64,
    /// Workers that crashed.
    pub crashes: u64,
    /// Most workers at once.
    pub peak_workers: usize,
    /// Workers when the queue was drained.
    pub final_workers: usize,
    /// Job latency from upload to processed, (p50, p99).
    pub job_latency: (Duration, Duration),
    /// The pool over time.
    pub timeline: Vec<PoolSample>,
}

struct Worker {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

struct Shared {
    photos: Arc<DbNode>,
    queue: Queue,
    started: Instant,
    /// Workers crash on their next job while this is above their generation.
    crash_generation: AtomicU64,
    /// The first worker to take a job at or past this offset sets off the crash.
    crash_at: u64,
    crash_fired: AtomicBool,
    crashes: AtomicU64,
    job_latency_us: Mutex<Vec<u32>>,
}

fn spawn_worker(shared: &Arc<Shared>, n: u64) -> Result<Worker> {
    let consumer = shared.queue.consumer("photos", "thumbnailers")?;
    let stop = Arc::new(AtomicBool::new(false));
    let (flag, shared) = (Arc::clone(&stop), Arc::clone(shared));
    let generation = shared.crash_generation.load(Ordering::SeqCst);
    let thread = std::thread::spawn(move || {
        while !flag.load(Ordering::Relaxed) {
            // Take what is ready, up to a batch: one ack (one state fsync) per batch.
            let Ok(Some(first)) = consumer.recv_timeout(Duration::from_millis(2)) else {
                continue;
            };
            let mut batch = vec![first];
            while batch.len() < 16 {
                match consumer.try_recv() {
                    Ok(Some(job)) => batch.push(job),
                    _ => break,
                }
            }
            if batch.iter().any(|j| j.offset() >= shared.crash_at)
                && !shared.crash_fired.swap(true, Ordering::SeqCst)
            {
                // Mid-run, every worker running now crashes on its batch in hand.
                shared.crash_generation.fetch_add(1, Ordering::SeqCst);
            }
            let crash = shared.crash_generation.load(Ordering::SeqCst) > generation;
            if crash && n.is_multiple_of(2) {
                // Crash before processing: the jobs come back after the visibility timeout.
                shared.crashes.fetch_add(1, Ordering::Relaxed);
                return;
            }
            let mut done = Vec::with_capacity(batch.len());
            for job in batch {
                let payload = String::from_utf8_lossy(job.payload()).to_string();
                let mut parts = payload.split(':');
                let photo: u64 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
                let sent_us: u64 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
                // "Make the thumbnail": some real work on the bytes.
                let mut h = photo.wrapping_mul(0x9e37_79b9_7f4a_7c15);
                for i in 0..20_000u64 {
                    h = (h ^ i).wrapping_mul(0x1000_0000_01b3).rotate_left(5);
                }
                let updated = shared.photos.with(|c| {
                    c.execute(
                        "UPDATE photos SET status = 'done', thumb = ?2, processed = processed + 1 WHERE id = ?1",
                        rusqlite::params![photo as i64, (h >> 1) as i64],
                    )
                });
                if updated.is_ok() {
                    done.push((job, sent_us));
                } else {
                    let _ = consumer.nack(&job, Duration::ZERO);
                }
            }
            if crash {
                // Crash after processing, before the ack: processed twice, reported.
                shared.crashes.fetch_add(1, Ordering::Relaxed);
                return;
            }
            let jobs: Vec<_> = done.iter().map(|(j, _)| j.clone()).collect();
            if consumer.ack_batch(&jobs).is_ok() {
                let now = shared.started.elapsed().as_micros() as u64;
                shared
                    .job_latency_us
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .extend(
                        done.iter()
                            .map(|(_, sent)| now.saturating_sub(*sent) as u32),
                    );
            }
        }
    });
    Ok(Worker { stop, thread })
}

/// Stage 8.
///
/// # Errors
/// Database, queue or balancer errors.
pub async fn photo_queue(
    opts: &Options,
    dir: &std::path::Path,
    metrics: &mut Vec<Metric>,
) -> Result<PhotoQueue> {
    const MAX_WORKERS: usize = 6;
    let photos = DbNode::open(dir, "photos")?;
    let uploads = (opts.requests / 10).max(opts.users as u64 * 4);
    let queue = Queue::builder()
        .durability(Durability::Interval(Duration::from_millis(5)))
        .visibility_timeout(Duration::from_millis(100))
        .build(dir.join("jobs"))?;
    let shared = Arc::new(Shared {
        photos: Arc::clone(&photos),
        queue: queue.clone(),
        started: Instant::now(),
        crash_generation: AtomicU64::new(0),
        crash_at: uploads * 4 / 10,
        crash_fired: AtomicBool::new(false),
        crashes: AtomicU64::new(0),
        job_latency_us: Mutex::new(Vec::new()),
    });
    // The web tier: an upload stores the photo row and publishes the job, then answers.
    let producer = queue.producer("photos")?;
    let published = Arc::new(AtomicU64::new(0));
    let handler: Handler = {
        let (photos, published, shared) = (
            Arc::clone(&photos),
            Arc::clone(&published),
            Arc::clone(&shared),
        );
        Arc::new(move |_ctx, req| match req {
            Request::Upload { user, photo } => {
                photos
                    .with(|c| {
                        c.execute(
                            "INSERT INTO photos (id, user_id, status) VALUES (?1, ?2, 'pending')",
                            rusqlite::params![*photo as i64, *user as i64],
                        )
                    })
                    .map_err(|e| AppError(e.to_string()))?;
                let sent = shared.started.elapsed().as_micros();
                producer
                    .send(Message::new(format!("{photo}:{sent}")).with_key(user.to_string()))
                    .map_err(|e| AppError(e.to_string()))?;
                published.fetch_add(1, Ordering::Relaxed);
                Ok(Reply {
                    body: format!(r#"{{"photo":{photo},"status":"processing"}}"#),
                    ..Reply::default()
                })
            }
            other => Err(AppError(format!("unsupported {other:?}"))),
        })
    };
    let pool = Pool::new(Balancer::builder().policy(RoundRobin::new()), handler)?;
    for id in 1..=3 {
        pool.start(id, None)?;
    }
    let load = Load::new(opts, 8, "photo queue", uploads);
    let users = opts.users;
    let seed = opts.seed;
    let traffic = {
        let (pool, load) = (Arc::clone(&pool), Arc::clone(&load));
        tokio::spawn(async move {
            run_users(users, move |u| {
                let (pool, load) = (Arc::clone(&pool), Arc::clone(&load));
                async move {
                    let mut rng = Rng::new(seed, &[8, u as u64]);
                    let mut t = Tally::default();
                    for k in 0..load.per_user(users) {
                        if load.over() {
                            break;
                        }
                        // Bursty users: sometimes a whole album at once.
                        let burst = if rng.chance(0.05) { 8 } else { 1 };
                        for b in 0..burst {
                            let photo = ((u as u64) << 32) | (k << 4) | b;
                            let t0 = Instant::now();
                            let call = pool
                                .call(
                                    &Request::Upload {
                                        user: u as u64,
                                        photo,
                                    },
                                    None,
                                )
                                .await;
                            t.record(t0);
                            if call.result.is_err() {
                                t.errors += 1;
                            }
                        }
                        load.finish_one();
                        tokio::task::yield_now().await;
                    }
                    t
                }
            })
            .await
        })
    };

    // The autoscaler: one worker per 8 waiting jobs, at most MAX_WORKERS; idle -> scale in.
    let mut workers: Vec<Worker> = Vec::new();
    let mut spawned = 0u64;
    let mut timeline = Vec::new();
    let mut peak = 0usize;
    let mut crashed = false;
    let mut drained_at: Option<Instant> = None;
    let started = Instant::now();
    loop {
        let stats = queue.stats("photos")?;
        let (depth, in_flight) = stats
            .groups
            .first()
            .map_or((stats.log_end, 0), |g| (g.depth, g.in_flight));
        // Restart crashed workers (the pool's supervisor) by dropping the dead ones.
        workers.retain(|w| !w.thread.is_finished());
        let wanted = usize::try_from(depth.div_ceil(8))
            .unwrap_or(MAX_WORKERS)
            .min(MAX_WORKERS);
        while workers.len() < wanted.max(usize::from(in_flight > 0)) {
            workers.push(spawn_worker(&shared, spawned)?);
            spawned += 1;
        }
        if depth == 0 && in_flight == 0 {
            // Idle: scale in one worker per tick.
            if let Some(w) = workers.pop() {
                w.stop.store(true, Ordering::Relaxed);
                let _ = w.thread.join();
            }
        }
        peak = peak.max(workers.len());
        if timeline
            .last()
            .is_none_or(|s: &PoolSample| started.elapsed().as_millis() as u64 >= s.t_ms + 5)
        {
            timeline.push(PoolSample {
                t_ms: started.elapsed().as_millis() as u64,
                depth,
                workers: workers.len(),
            });
        }
        let processed = photos.with(|c| {
            c.query_row(
                "SELECT COUNT(*) FROM photos WHERE status = 'done'",
                [],
                |r| r.get::<_, i64>(0),
            )
        })? as u64;
        if !crashed && shared.crash_generation.load(Ordering::SeqCst) > 0 {
            // The supervisor restarts them (above, on its next tick).
            crashed = true;
            load.say(format!(
                "  stage 8: the workers crashed after {processed} jobs (deliveries in hand not acked)"
            ));
        }
        let all_sent = traffic.is_finished();
        if all_sent && processed >= published.load(Ordering::Relaxed) && in_flight == 0 {
            drained_at.get_or_insert_with(Instant::now);
            if workers.is_empty() {
                break;
            }
        }
        if all_sent && started.elapsed() > opts.duration * 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let final_workers = workers.len();
    for w in workers {
        w.stop.store(true, Ordering::Relaxed);
        let _ = w.thread.join();
    }
    let mut tally = Tally::default();
    for t in traffic.await?? {
        tally.merge(t);
    }
    let elapsed = load.elapsed();
    let published = published.load(Ordering::Relaxed);
    let (processed, pending, duplicates) = photos.with(|c| {
        c.query_row(
            "SELECT SUM(status = 'done'), SUM(status = 'pending'), SUM(MAX(processed - 1, 0)) FROM photos",
            [],
            |r| {
                Ok((
                    r.get::<_, Option<i64>>(0)?.unwrap_or(0) as u64,
                    r.get::<_, Option<i64>>(1)?.unwrap_or(0) as u64,
                    r.get::<_, Option<i64>>(2)?.unwrap_or(0) as u64,
                ))
            },
        )
    })?;
    let group = queue.stats("photos")?.groups.into_iter().next();
    let redelivered = group.as_ref().map_or(0, |g| g.redeliveries);
    let mut lat = shared
        .job_latency_us
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    lat.sort_unstable();
    let q = |p: f64| {
        lat.get(((lat.len().max(1) - 1) as f64 * p) as usize)
            .map_or(Duration::ZERO, |&us| Duration::from_micros(u64::from(us)))
    };
    let job_latency = (q(0.5), q(0.99));
    let crashes = shared.crashes.load(Ordering::Relaxed);
    let mut row = Row {
        stage: 8,
        name: "message queue".into(),
        changed: format!(
            "uploads publish jobs to tierkit-mq; 0..{MAX_WORKERS} workers by queue depth"
        ),
        db_qps: super::db_rates(&[(photos.name.clone(), photos.queries())], elapsed),
        ..Row::default()
    };
    tally.fill(&mut row, elapsed);
    row.lost = pending;
    row.notes.push(format!(
        "{published} jobs published, {processed} processed, {pending} lost; upload p99 {:.2?} vs job p99 {:.2?} (the user does not wait for the thumbnail)",
        row.p99, job_latency.1
    ));
    row.notes.push(format!(
        "{crashes} workers crashed mid-job: {redelivered} redeliveries, {duplicates} jobs processed twice (idempotent update, reported); pool peaked at {peak}, {final_workers} when idle"
    ));
    load.finish(format!("{processed}/{published} jobs"));
    let s = queue.stats("photos")?;
    let mut values = vec![
        ("log end".to_string(), s.log_end.to_string()),
        ("fsyncs".to_string(), s.fsyncs.to_string()),
        ("bytes".to_string(), s.bytes.to_string()),
    ];
    if let Some(g) = group {
        values.push((
            format!("group {}", g.group),
            format!(
                "committed {} depth {} in flight {} redeliveries {} dead-lettered {}",
                g.committed, g.depth, g.in_flight, g.redeliveries, g.dead_lettered
            ),
        ));
    }
    metrics.push(Metric {
        stage: 8,
        component: "mq photos".into(),
        values,
    });
    metrics.push(lb_metric(8, "lb upload tier", &pool.lb.stats()));
    metrics.push(db_metric(8, &[&photos], elapsed));
    pool.shutdown();
    Ok(PhotoQueue {
        row,
        published,
        processed,
        redelivered,
        lost: pending,
        duplicates,
        crashes,
        peak_workers: peak,
        final_workers,
        job_latency,
        timeline,
    })
}
