//! Web handlers publish photo jobs; a pool of worker tasks (tokio) scales with the queue's
//! depth; one worker crashes mid-job and its job is delivered again after the visibility
//! timeout.
//!
//! Workers wait with `recv().await` (woken by the send, no polling) and acknowledge with
//! `ack_async` (the journal fsync runs on tokio's blocking pool, shared by concurrent acks),
//! so no runtime thread ever blocks on the disk.
//!
//! `cargo run --example photo_workers`

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tierkit::mq::{Durability, Message, Queue};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Offsets of the jobs whose ack returned.
type Done = Arc<Mutex<BTreeSet<u64>>>;

const JOBS_PER_BURST: u64 = 40;
const BURSTS: u64 = 3;
const CRASHING_JOB: u64 = 17;

struct Worker {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

fn spawn_worker(
    queue: &Queue,
    id: usize,
    done: Done,
    crashed: Arc<AtomicBool>,
) -> Result<Worker, tierkit::mq::Error> {
    let consumer = queue.consumer("photos", "thumbnailers")?;
    let (stop, mut stopped) = watch::channel(false);
    let task = tokio::spawn(async move {
        loop {
            let job = tokio::select! {
                _ = stopped.changed() => return,
                job = consumer.recv() => match job {
                    Ok(job) => job,
                    Err(e) => {
                        eprintln!("worker {id}: {e}");
                        return;
                    }
                },
            };
            tokio::time::sleep(Duration::from_millis(8)).await; // resize the photo
            if job.offset() == CRASHING_JOB && !crashed.swap(true, Ordering::SeqCst) {
                println!(
                    "  worker {id} crashed while processing job {} (no ack)",
                    job.offset()
                );
                return;
            }
            if let Err(e) = consumer.ack_async(&job).await {
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
            if let Ok(mut d) = done.lock() {
                d.insert(job.offset());
            }
        }
    });
    Ok(Worker { stop, task })
}

async fn stop(worker: Worker) {
    let _ = worker.stop.send(true);
    let _ = worker.task.await;
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), tierkit::mq::Error> {
    let dir = std::env::temp_dir().join(format!("tierkit-photo-workers-{}", std::process::id()));
    let queue = Queue::builder()
        .durability(Durability::Always)
        .visibility_timeout(Duration::from_millis(300))
        .build(&dir)?;

    // The web tier: handlers publish bursts of upload jobs.
    let web = {
        let producer = queue.producer("photos")?;
        tokio::spawn(async move {
            for burst in 0..BURSTS {
                for i in 0..JOBS_PER_BURST {
                    let n = burst * JOBS_PER_BURST + i;
                    producer
                        .send_async(
                            Message::new(format!("upload-{n}.jpg"))
                                .with_header("user", format!("u{}", n % 7)),
                        )
                        .await?;
                }
                tokio::time::sleep(Duration::from_millis(600)).await;
            }
            Ok::<(), tierkit::mq::Error>(())
        })
    };

    let done = Done::default();
    let crashed = Arc::new(AtomicBool::new(false));
    let mut workers: Vec<Worker> = Vec::new();
    let total = BURSTS * JOBS_PER_BURST;
    let start = Instant::now();
    println!(
        "{:>6}  {:>5}  {:>9}  {:>7}  {:>4}",
        "t (ms)", "depth", "in flight", "workers", "done"
    );
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tick.tick().await;
        // Replace workers that crashed.
        workers.retain(|w| !w.task.is_finished());
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
                stop(w).await;
            }
        }
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
    }
    for w in workers {
        stop(w).await;
    }
    match web.await {
        Ok(Err(e)) => return Err(e),
        Err(e) => panic!("the web task panicked: {e}"),
        Ok(Ok(())) => {}
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
