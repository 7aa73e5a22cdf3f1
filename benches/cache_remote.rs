//! tierkit-cache's remote tier (feature `redis`) against the `redis` crate's own multiplexed
//! connection, on loopback, in the same run.
//!
//! `TIERKIT_SERVERS=redis .ci/with-servers cargo bench -p tierkit-benches --bench cache_remote`
//! (needs `TIERKIT_REDIS_NODES`; the rows use its first node).
//!
//! - `remote/near_hit`: a read served by the near cache: `TieredCache::get_or_load` of a
//!   present key (the future is ready on its first poll) against `ConcurrentCache::get` of the
//!   same `Bytes` key in a plain `ConcurrentCache` of `LruCache` built the same way (10,000
//!   entries, 60 s TTL, std hasher), 1,000 present keys cycled.
//! - `remote/get_pipelined/{tierkit,redis_multiplexed}`: batches of 64 concurrent `GET`s of
//!   present 16-byte values from one node, awaited together on one task (the multiplexed
//!   connection pipelines them): `RemoteTier::get` (ring lookup, health check, timeout per
//!   request) against `MultiplexedConnection` + `GET` directly. Throughput in gets.
//! - `remote/get_many/{tierkit,redis_mget}`: 64 keys in one call: `RemoteTier::get_many` (one
//!   `MGET` per node) against one raw `MGET`.

use std::hint::black_box;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use redis::aio::MultiplexedConnection;
use tierkit::cache::remote::{Bytes, RemoteTier, TieredCache};
use tierkit::cache::{CacheBuilder, ConcurrentCache, LruCache};

const BATCH: usize = 64;

fn node() -> String {
    let nodes = std::env::var("TIERKIT_REDIS_NODES").expect(
        "TIERKIT_REDIS_NODES is unset: run `TIERKIT_SERVERS=redis .ci/with-servers cargo bench -p tierkit-benches --bench cache_remote`",
    );
    nodes
        .split(',')
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// Polls a future that must be ready at once (a near-cache hit).
fn ready<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    match f.as_mut().poll(&mut cx) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("a near hit must not wait"),
    }
}

/// Awaits every future together (the same helper for both sides).
async fn join_all<F: Future>(futs: Vec<F>) -> usize {
    let mut pinned: Vec<Pin<Box<F>>> = futs.into_iter().map(Box::pin).collect();
    let mut done = vec![false; pinned.len()];
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, d) in pinned.iter_mut().zip(done.iter_mut()) {
            if !*d {
                match f.as_mut().poll(cx) {
                    Poll::Ready(_) => *d = true,
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    done.len()
}

fn keys(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("bench:{i:08}")).collect()
}

fn near_hit(c: &mut Criterion, rt: &tokio::runtime::Runtime) {
    let addr = node();
    let tiered: TieredCache = rt.block_on(async {
        TieredCache::builder(RemoteTier::builder().node(&addr).key_prefix("bench-near:"))
            .near_capacity(10_000)
            .near_ttl(Duration::from_secs(60))
            .connect()
            .await
            .expect("connect")
    });
    let builder: CacheBuilder<Bytes, Bytes> =
        CacheBuilder::new(10_000).default_ttl(Duration::from_secs(60));
    let plain: ConcurrentCache<Bytes, Bytes, LruCache<Bytes, Bytes>> =
        ConcurrentCache::with_builder(&builder).expect("cache");
    let ks: Vec<Bytes> = keys(1_000).into_iter().map(Bytes::from).collect();
    for k in &ks {
        let v = Bytes::from_static(b"0123456789abcdef");
        plain.insert(k.clone(), v.clone());
        let got = rt.block_on(tiered.get_or_load(k.clone(), async move {
            Ok::<_, std::convert::Infallible>(Some(v))
        }));
        assert!(got.is_ok());
        assert!(tiered.near().contains(k), "filled near cache");
    }
    let mut g = c.benchmark_group("remote/near_hit");
    g.throughput(Throughput::Elements(1));
    let mut i = 0;
    g.bench_function("tierkit_tiered_get_or_load", |b| {
        b.iter(|| {
            i = (i + 1) % ks.len();
            let none = async { Ok::<_, std::convert::Infallible>(None) };
            black_box(ready(tiered.get_or_load(&ks[i], none)).ok())
        });
    });
    let mut i = 0;
    g.bench_function("plain_concurrent_cache_get", |b| {
        b.iter(|| {
            i = (i + 1) % ks.len();
            black_box(plain.get(&ks[i][..]))
        });
    });
    g.finish();
}

fn pipelined(c: &mut Criterion, rt: &tokio::runtime::Runtime) {
    let addr = node();
    let (tier, raw) = rt.block_on(async {
        let tier = RemoteTier::builder()
            .node(&addr)
            .key_prefix("bench-get:")
            .connect()
            .await
            .expect("connect");
        let raw: MultiplexedConnection = redis::Client::open(format!("redis://{addr}/"))
            .expect("client")
            .get_multiplexed_async_connection()
            .await
            .expect("connect");
        (tier, raw)
    });
    let ks = keys(BATCH * 16);
    let raw_keys: Vec<String> = ks.iter().map(|k| format!("bench-get:{k}")).collect();
    rt.block_on(async {
        for k in &ks {
            tier.set(k, Bytes::from_static(b"0123456789abcdef"), Duration::MAX)
                .await
                .expect("set");
        }
    });
    let mut g = c.benchmark_group("remote/get_pipelined");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("tierkit", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for it in 0..iters {
                    let off = (it as usize % 16) * BATCH;
                    let futs: Vec<_> = ks[off..off + BATCH].iter().map(|k| tier.get(k)).collect();
                    black_box(join_all(futs).await);
                }
                start.elapsed()
            })
        });
    });
    g.bench_function("redis_multiplexed", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for it in 0..iters {
                    let off = (it as usize % 16) * BATCH;
                    let futs: Vec<_> = raw_keys[off..off + BATCH]
                        .iter()
                        .map(|k| {
                            let mut conn = raw.clone();
                            async move {
                                let v: redis::RedisResult<Option<Bytes>> =
                                    redis::cmd("GET").arg(k).query_async(&mut conn).await;
                                v
                            }
                        })
                        .collect();
                    black_box(join_all(futs).await);
                }
                start.elapsed()
            })
        });
    });
    g.finish();

    let mut g = c.benchmark_group("remote/get_many");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("tierkit", |b| {
        let mut it = 0;
        b.iter(|| {
            it = (it + 1) % 16;
            let off = it * BATCH;
            black_box(rt.block_on(tier.get_many(&ks[off..off + BATCH])).len())
        });
    });
    g.bench_function("redis_mget", |b| {
        let mut it = 0;
        b.iter(|| {
            it = (it + 1) % 16;
            let off = it * BATCH;
            let mut conn = raw.clone();
            let v: Vec<Option<Bytes>> = rt
                .block_on(
                    redis::cmd("MGET")
                        .arg(&raw_keys[off..off + BATCH])
                        .query_async(&mut conn),
                )
                .expect("mget");
            black_box(v.len())
        });
    });
    g.finish();
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut c = Criterion::default().configure_from_args();
    near_hit(&mut c, &rt);
    pipelined(&mut c, &rt);
    c.final_summary();
}
