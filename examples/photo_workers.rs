//! Web handlers publish photo jobs; a worker pool scales with the queue's depth; one worker
//! crashes mid-job and its job is delivered again after the visibility timeout.
//!
//! `cargo run --example photo_workers`

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tierkit::mq::{Durability, Message, Queue};

/// Offsets of the jobs whose ack returned.
type Shared = Arc<Mutex<BTreeSet<u64>>>;

const JOBS_PER_BURST: u64 = 40;
const BURSTS: u64 = 3;
const CRASHING_JOB: u64 = 17;

struct Worker {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<()>,
}

fn spawn_worker(
    queue: &Queue,
    id: usize,
    done: Shared,
    crashed: Arc<AtomicBool>,
) -> Result<Worker, tierkit::mq::Error> {
    let consumer = queue.consumer("photos", "thumbnailers")?;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    let handle = std::thread::spawn(move || {
        while !flag.load(Ordering::Relaxed) {
            let job = match consumer.recv_timeout(Duration::from_millis(20)) {
                Ok(Some(job)) => job,
                Ok(None) => continue,
                Err(e) => {
                    eprintln!("worker {id}: {e}");
                    return;
                }
            };
            std::thread::sleep(Duration::from_millis(8)); // resize the photo
            if job.offset() == CRASHING_JOB && !crashed.swap(true, Ordering::SeqCst) {
                println!(
                    "  worker {id} crashed while processing job {} (no ack)",
                    job.offset()
                );
                return;
            }
            if let Err(e) = consumer.ack(&job) {
                eprintln!("worker {id}: ack failed: {e}");
                continue;
            }
            if job.delivery_count() > 1 {
                println!(
                    "  worker {id} finished redelivered job {} (delivery {})",
                    job.offset(),
                    job.delivery_count()
                );
            }
            done.lock()
                .map(|mut d| d.insert(job.offset()))
                .unwrap_or_default();
        }
    });
    Ok(Worker { stop, handle })
}

fn main() -> Result<(), tierkit::mq::Error> {
    let dir = std::env::temp_dir().join(format!("tierkit-photo-workers-{}", std::process::id()));
    let queue = Queue::builder()
        .durability(Durability::Always)
        .visibility_timeout(Duration::from_millis(300))
        .build(&dir)?;

    // The web tier: handlers publish bursts of upload jobs.
    let web = {
        let producer = queue.producer("photos")?;
        std::thread::spawn(move || -> Result<(), tierkit::mq::Error> {
            for burst in 0..BURSTS {
                for i in 0..JOBS_PER_BURST {
                    let n = burst * JOBS_PER_BURST + i;
                    producer.send(
                        Message::new(format!("upload-{n}.jpg"))
                            .with_header("user", format!("u{}", n % 7)),
                    )?;
                }
                std::thread::sleep(Duration::from_millis(600));
            }
            Ok(())
        })
    };

    let done: Shared = Shared::default();
    let crashed = Arc::new(AtomicBool::new(false));
    let mut workers: Vec<Worker> = Vec::new();
    let total = BURSTS * JOBS_PER_BURST;
    let start = Instant::now();
    println!(
        "{:>6}  {:>5}  {:>9}  {:>7}  {:>4}",
        "t (ms)", "depth", "in flight", "workers", "done"
    );
    loop {
        let stats = queue.stats("photos")?;
        let (depth, in_flight) = stats
            .groups
            .first()
            .map_or((stats.log_end, 0), |g| (g.depth, g.in_flight));
        // Scale: one worker per 8 waiting jobs, at most 6; scale to zero when idle.
        let wanted = usize::try_from(depth.div_ceil(8)).unwrap_or(6).min(6);
        while workers.len() < wanted {
            workers.push(spawn_worker(
                &queue,
                workers.len(),
                Arc::clone(&done),
                Arc::clone(&crashed),
            )?);
        }
        while workers.len() > wanted.max(usize::from(depth > 0)) {
            if let Some(w) = workers.pop() {
                w.stop.store(true, Ordering::Relaxed);
                let _ = w.handle.join();
            }
        }
        // Replace workers that crashed.
        workers.retain(|w| !w.handle.is_finished());
        let finished = done.lock().map(|d| d.len()).unwrap_or(0);
        println!(
            "{:>6}  {:>5}  {:>9}  {:>7}  {:>4}",
            start.elapsed().as_millis(),
            depth,
            in_flight,
            workers.len(),
            finished
        );
        if finished as u64 == total && web.is_finished() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    for w in workers {
        w.stop.store(true, Ordering::Relaxed);
        let _ = w.handle.join();
    }
    if let Ok(Err(e)) = web.join() {
        return Err(e);
    }
    let done = done.lock().map(|d| d.clone()).unwrap_or_default();
    let expected: BTreeSet<u64> = (0..total).collect();
    let g = &queue.stats("photos")?.groups[0];
    println!(
        "processed {} of {total} jobs; redeliveries {}; every job processed: {}",
        done.len(),
        g.redeliveries,
        done == expected
    );
    drop(queue);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(
        done, expected,
        "every job is processed exactly once after acks"
    );
    Ok(())
}
