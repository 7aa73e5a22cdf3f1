//! tierkit-mq against yaque, and against the disk's own fsync rate.
//!
//! `cargo bench -p tierkit-benches --bench mq`. Queues live under `target/tierkit-mq-bench` (a real disk: `/tmp`
//! may be a tmpfs where fsync is free); set `TIERKIT_MQ_BENCH_DIR` to move them.
//!
//! - `raw_fdatasync`: write 64 B + `fdatasync` in a loop: the physical limit of one durable
//!   write at a time.
//! - `send_never/*`: one producer, `Durability::Never`, against yaque (which never fsyncs).
//!   `tierkit` and yaque both make one `write` per send (a returned send survives a process
//!   crash); `tierkit_buffered` uses a 64 KiB / 1 ms write buffer (a process crash may lose the
//!   last 1 ms of sends).
//! - `send_always/N`: N producer threads (on a 2-core machine) sharing fsyncs by group commit;
//!   messages per fsync are printed after the group.
//! - `send_batch_always`: `send_batch` of 128 x 256 B, one fsync per batch.
//! - `end_to_end_never`: produce + consume + acknowledge 64 B messages (tierkit acks in batches
//!   of 64, one state write each; yaque commits each message).
//! - `async_recv_latency`: a tokio task awaits `recv()`; time from `send` returning (64 B,
//!   `Never`) to the task holding the message. The true p50 of single latencies is printed
//!   after the group.
//! - `async_ack/64_tasks`: 64 tokio tasks `recv().await` + `ack_async().await` under `Always`
//!   (every ack durable before it returns); compare with `raw_fdatasync`: acks per journal
//!   fsync come from group commit.

// Byte and iteration counts are small; the casts cannot truncate here.
#![allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]

use std::hint::black_box;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use tierkit::mq::{Bytes, Durability, Message, Queue};

fn bench_dir(name: &str) -> PathBuf {
    let base = std::env::var_os("TIERKIT_MQ_BENCH_DIR")
        .map_or_else(|| PathBuf::from("target/tierkit-mq-bench"), PathBuf::from);
    let dir = base.join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("bench dir");
    dir
}

fn payload(len: usize) -> Bytes {
    Bytes::from((0..len).map(|i| (i * 31 % 251) as u8).collect::<Vec<u8>>())
}

fn config(c: &mut Criterion) -> &mut Criterion {
    c
}

fn raw_fsync(c: &mut Criterion) {
    let dir = bench_dir("raw");
    let mut file = std::fs::File::create(dir.join("f")).expect("file");
    let data = [7u8; 64];
    let mut g = config(c).benchmark_group("mq/raw_fdatasync");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    g.throughput(Throughput::Elements(1));
    g.bench_function("64B", |b| {
        b.iter(|| {
            file.write_all(black_box(&data)).expect("write");
            file.sync_data().expect("fdatasync");
        });
    });
    g.finish();
}

fn send_never(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let mut g = c.benchmark_group("mq/send_never");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    g.throughput(Throughput::Elements(1));
    for len in [64usize, 1024] {
        let data = payload(len);
        let q = Queue::builder()
            .durability(Durability::Never)
            .build(bench_dir("never"))
            .expect("queue");
        let p = q.producer("bench").expect("producer");
        g.bench_with_input(BenchmarkId::new("tierkit", len), &data, |b, data| {
            b.iter(|| p.send(Message::new(data.clone())).expect("send"));
        });
        drop((p, q));
        let q = Queue::builder()
            .durability(Durability::Never)
            .write_buffer(64 << 10, Duration::from_millis(1))
            .build(bench_dir("never-buffered"))
            .expect("queue");
        let p = q.producer("bench").expect("producer");
        g.bench_with_input(
            BenchmarkId::new("tierkit_buffered", len),
            &data,
            |b, data| {
                b.iter(|| p.send(Message::new(data.clone())).expect("send"));
            },
        );
        drop((p, q));
        let (mut tx, _rx) = yaque::channel(bench_dir("yaque")).expect("yaque");
        g.bench_with_input(
            BenchmarkId::new("yaque (no fsync)", len),
            &data,
            |b, data| {
                b.iter(|| rt.block_on(tx.send(&data[..])).expect("send"));
            },
        );
    }
    g.finish();
}

fn send_always(c: &mut Criterion) {
    let mut g = c.benchmark_group("mq/send_always");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    g.throughput(Throughput::Elements(1));
    let data = payload(64);
    for producers in [1usize, 4, 64] {
        let q = Queue::builder().build(bench_dir("always")).expect("queue");
        let p = q.producer("bench").expect("producer");
        let before = q.stats("bench").expect("stats");
        g.bench_function(BenchmarkId::new("tierkit_64B", producers), |b| {
            b.iter_custom(|iters| {
                let per = iters.div_ceil(producers as u64);
                let start = Arc::new(Barrier::new(producers + 1));
                let handles: Vec<_> = (0..producers)
                    .map(|_| {
                        let (p, data, start) = (p.clone(), data.clone(), Arc::clone(&start));
                        std::thread::spawn(move || {
                            start.wait();
                            for _ in 0..per {
                                p.send(Message::new(data.clone())).expect("send");
                            }
                        })
                    })
                    .collect();
                start.wait();
                let t = Instant::now();
                for h in handles {
                    h.join().expect("producer");
                }
                // Whole rounds: time per message sent.
                t.elapsed()
                    .mul_f64(iters as f64 / (per * producers as u64) as f64)
            });
        });
        let after = q.stats("bench").expect("stats");
        let msgs = after.log_end - before.log_end;
        let fsyncs = (after.fsyncs - before.fsyncs).max(1);
        eprintln!(
            "send_always/{producers}: {msgs} messages, {fsyncs} fsyncs, {:.1} messages per fsync",
            msgs as f64 / fsyncs as f64
        );
    }
    g.finish();
}

fn send_batch_always(c: &mut Criterion) {
    let mut g = c.benchmark_group("mq/send_batch_always");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    g.throughput(Throughput::Elements(128));
    let batch: Vec<Message> = (0..128).map(|_| Message::new(payload(256))).collect();
    let q = Queue::builder().build(bench_dir("batch")).expect("queue");
    let p = q.producer("bench").expect("producer");
    g.bench_function("tierkit_128x256B", |b| {
        b.iter(|| p.send_batch(black_box(&batch)).expect("send"))
    });
    g.finish();
}

fn end_to_end(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let mut g = c.benchmark_group("mq/end_to_end_never");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    g.throughput(Throughput::Elements(64));
    let data = payload(64);
    for (name, buffered) in [("tierkit_64B", false), ("tierkit_buffered_64B", true)] {
        let mut builder = Queue::builder().durability(Durability::Never);
        if buffered {
            builder = builder.write_buffer(64 << 10, Duration::from_millis(1));
        }
        let q = builder.build(bench_dir(name)).expect("queue");
        let p = q.producer("bench").expect("producer");
        let consumer = q.consumer("bench", "workers").expect("consumer");
        g.bench_function(name, |b| {
            b.iter(|| {
                for _ in 0..64 {
                    p.send(Message::new(data.clone())).expect("send");
                }
                let ds: Vec<_> = (0..64)
                    .map(|_| consumer.try_recv().expect("recv").expect("ready"))
                    .collect();
                consumer.ack_batch(&ds).expect("ack");
            });
        });
    }
    let (mut tx, mut rx) = yaque::channel(bench_dir("yaque-e2e")).expect("yaque");
    g.bench_function("yaque_64B (no fsync)", |b| {
        b.iter(|| {
            rt.block_on(async {
                for _ in 0..64 {
                    tx.send(&data[..]).await.expect("send");
                }
                for _ in 0..64 {
                    let guard = rx.recv().await.expect("recv");
                    black_box(&*guard);
                    guard.commit().expect("commit");
                }
            });
        });
    });
    g.finish();
}

fn async_recv_latency(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let q = Queue::builder()
        .durability(Durability::Never)
        .build(bench_dir("async-recv"))
        .expect("queue");
    let p = q.producer("bench").expect("producer");
    let consumer = q.consumer("bench", "workers").expect("consumer");
    let (tx, rx) = std::sync::mpsc::channel::<Instant>();
    rt.spawn(async move {
        while let Ok(d) = consumer.recv().await {
            if tx.send(Instant::now()).is_err() {
                break;
            }
            black_box(d);
        }
    });
    let data = payload(64);
    let mut singles: Vec<Duration> = Vec::new();
    let mut g = c.benchmark_group("mq/async_recv_latency");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    g.bench_function("send_to_recv_64B", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                p.send(Message::new(data.clone())).expect("send");
                let sent = Instant::now();
                let got = rx.recv().expect("the task received");
                let d = got.saturating_duration_since(sent);
                singles.push(d);
                total += d;
            }
            total
        });
    });
    g.finish();
    singles.sort_unstable();
    if !singles.is_empty() {
        let at = |q: f64| singles[((singles.len() - 1) as f64 * q) as usize];
        eprintln!(
            "async_recv_latency: {} sends, p50 {:?}, p90 {:?}, p99 {:?}",
            singles.len(),
            at(0.5),
            at(0.9),
            at(0.99)
        );
    }
    drop((p, q));
    rt.shutdown_timeout(Duration::from_secs(1));
}

fn async_ack(c: &mut Criterion) {
    const TASKS: usize = 64;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let q = Queue::builder()
        .build(bench_dir("async-ack"))
        .expect("queue");
    let p = q.producer("bench").expect("producer");
    let consumer = q.consumer("bench", "workers").expect("consumer");
    let batch: Vec<Message> = (0..256).map(|_| Message::new(payload(64))).collect();
    let mut g = c.benchmark_group("mq/async_ack");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    g.throughput(Throughput::Elements(1));
    let mut acks = 0u64;
    let mut syncs = 0u64;
    g.bench_function(
        BenchmarkId::new("always_64B", format!("{TASKS}_tasks")),
        |b| {
            b.iter_custom(|iters| {
                // Messages to acknowledge, produced before timing.
                let mut sent = 0;
                while sent < iters {
                    p.send_batch(&batch).expect("send");
                    sent += batch.len() as u64;
                }
                let journal_syncs =
                    |q: &Queue| q.stats("bench").expect("stats").groups[0].journal_fsyncs;
                let before = journal_syncs(&q);
                let left = Arc::new(std::sync::atomic::AtomicU64::new(iters));
                let t = Instant::now();
                rt.block_on(async {
                    let tasks: Vec<_> = (0..TASKS)
                        .map(|_| {
                            let (c, left) = (consumer.clone(), Arc::clone(&left));
                            tokio::spawn(async move {
                                while left
                                    .fetch_update(
                                        std::sync::atomic::Ordering::AcqRel,
                                        std::sync::atomic::Ordering::Acquire,
                                        |n| n.checked_sub(1),
                                    )
                                    .is_ok()
                                {
                                    let d = c.recv().await.expect("recv");
                                    c.ack_async(&d).await.expect("ack");
                                }
                            })
                        })
                        .collect();
                    for t in tasks {
                        t.await.expect("task");
                    }
                });
                let elapsed = t.elapsed();
                // Leftover messages from the rounding up above stay for the next round.
                acks += iters;
                syncs += journal_syncs(&q) - before;
                elapsed
            });
        },
    );
    g.finish();
    eprintln!(
        "async_ack/{TASKS}_tasks: {acks} acks, {syncs} journal fsyncs, {:.1} acks per fsync",
        acks as f64 / syncs.max(1) as f64
    );
    drop((p, consumer, q));
    rt.shutdown_timeout(Duration::from_secs(1));
}

criterion_group!(
    benches,
    raw_fsync,
    send_never,
    send_always,
    send_batch_always,
    end_to_end,
    async_recv_latency,
    async_ack
);
criterion_main!(benches);
