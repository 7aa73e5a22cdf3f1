//! The cost of one pick per tierkit-lb policy, next to its peers in the same criterion group:
//! pingora-load-balancing (`LoadBalancer::select`) and tower's p2c balancer.
//!
//! `cargo bench -p tierkit-benches --bench lb` (or `-- round_robin` for one group). What is timed, per iteration:
//!
//! - **tierkit**: `Balancer::pick(&Context)` and dropping the returned `Lease` (the in-flight
//!   count goes up and down again: "pick + lease drop"), over 100 backends (weighted round robin
//!   also over 1000). `least_latency/tierkit_pick_success` reports a latency instead of dropping
//!   (the full request cycle: `success`'s clock read, the pick itself reads none, and the
//!   peak-EWMA update). `least_latency/*/tierkit` is the default policy (`LeastLatency::new()`:
//!   a full scan up to 16 backends, 2 choices above); `tierkit_2_choices` the former default. Backends of least latency have latency observations before timing, so
//!   the EWMA path is the one timed.
//! - **pingora**: `LoadBalancer::select(key, 256)` over the same number of static backends
//!   (built once, `update()` run before timing), dropping the returned `Backend` (a clone).
//!   Round robin and random ignore the key (empty); consistent hashing (`Consistent`, Ketama)
//!   hashes the key bytes itself, so tierkit appears twice there: with keys hashed before timing
//!   (`Context::hash`, as a caller that already has the key hash does) and with
//!   `Balancer::hash_key` in the loop.
//! - **tower**: `tower::balance::p2c::Balance` over 100 always-ready `service_fn` services wrapped
//!   in a load metric (`PendingRequests`, or `PeakEwma` with a 10 s decay): `poll_ready` (with a
//!   no-op waker; the services are always ready, so it returns `Ready` at once after re-polling
//!   the service used last) plus `call(())`, whose returned future is dropped unpolled. This is
//!   tower's pick (two random ready services, compare their load) plus its bookkeeping, the
//!   closest equivalent of "pick + lease drop".
//! - **threads/**: the per-pick time seen by each of 1 or 2 threads picking from one shared
//!   balancer (`iter_custom`; threads are started before timing and released by a barrier; the
//!   machine has 2 cores). tower's `Balance` needs `&mut self`, so it has no threaded variant.
//!
//! - **tower_service/**: one request through a tower `Service`, polled to completion with a
//!   no-op waker (`poll_ready` + `call` + polling the response future once; every inner
//!   service here answers at once): the in-memory inner service called directly
//!   (`inner_direct`, the floor), tierkit-lb's `tower::Balance` over 100 of them (pick, clone of
//!   the picked service, its `poll_ready` + `call`, latency measured with two reads of the
//!   balancer's clock and reported on the lease), and tower's `p2c::Balance` over 100 `PendingRequests` wrappers of
//!   the same service. Overhead = row - `inner_direct`; `baseline_two_clock_reads` is the
//!   floor of any service that times its requests with `Instant` (`Instant::now` at the call,
//!   `elapsed` at the answer), `baseline_two_fast_clock_reads` the same with the balancer's
//!   default clock (`FastClock`, the CPU's timestamp counter), which `Balance` reads.
//!
//! Inputs (addresses, weights, keys) are deterministic and built before timing.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::hint::black_box;
use std::sync::Barrier;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

mod common;

use criterion::{
    BenchmarkGroup, Criterion, criterion_group, criterion_main, measurement::WallTime,
};
use pingora_load_balancing::selection::{BackendIter, BackendSelection};
use pingora_load_balancing::{Backend as PingoraBackend, Backends, LoadBalancer, discovery};
use tierkit::lb::{
    Backend, Balancer, Clock, ConsistentHash, Context, FastClock, LeastLatency, Policy,
    PowerOfTwoChoices, Random, RoundRobin, WeightedRoundRobin,
};
use tower::Service;
use tower::balance::p2c::Balance;
use tower::discover::ServiceList;
use tower::load::{CompleteOnResponse, PeakEwma, PendingRequests};

const BACKENDS: usize = 100;

/// An atomic on its own cache line.
#[derive(Default)]
#[repr(align(128))]
struct CachePadded(AtomicU64);
/// Pingora's search bound for `select` (its docs' example value).
const MAX_ITERATIONS: usize = 256;

/// Varied weights 1..=10, deterministic.
fn weights(n: usize) -> Vec<u32> {
    common::splitmix(n)
        .iter()
        .map(|z| u32::try_from(z % 10).unwrap_or(0) + 1)
        .collect()
}

fn tierkit<P: Policy<u64>>(policy: P, weights: &[u32]) -> Balancer<u64, P> {
    Balancer::builder()
        .policy(policy)
        .backends(
            (0u64..)
                .zip(weights)
                .map(|(i, &w)| Backend::new(i, i).weight(w)),
        )
        .build()
        .expect("valid pool")
}

fn addr(i: usize) -> String {
    format!("10.{}.{}.{}:80", (i >> 16) & 255, (i >> 8) & 255, i & 255)
}

fn pingora<S>(weights: &[u32]) -> LoadBalancer<S>
where
    S: BackendSelection + Send + Sync + 'static,
    S::Iter: BackendIter,
{
    let set: BTreeSet<PingoraBackend> = weights
        .iter()
        .enumerate()
        .map(|(i, &w)| {
            PingoraBackend::new_with_weight(&addr(i), w as usize).expect("valid address")
        })
        .collect();
    let lb = LoadBalancer::<S>::from_backends(Backends::new(discovery::Static::new(set)));
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
        .block_on(lb.update())
        .expect("static discovery");
    lb
}

fn bench_tierkit<P: Policy<u64>>(
    g: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    lb: &Balancer<u64, P>,
) {
    let ctx = Context::new();
    g.bench_function(name, |b| b.iter(|| lb.pick(black_box(&ctx))));
}

fn bench_pingora<S>(g: &mut BenchmarkGroup<'_, WallTime>, name: &str, lb: &LoadBalancer<S>)
where
    S: BackendSelection + 'static,
    S::Iter: BackendIter,
{
    g.bench_function(name, |b| {
        b.iter(|| lb.select(black_box(b""), MAX_ITERATIONS))
    });
}

fn ok(_: ()) -> std::future::Ready<Result<(), Infallible>> {
    std::future::ready(Ok(()))
}

/// Times tower's p2c `poll_ready` + `call` over `services` (already wrapped in a load metric).
fn bench_tower<S>(g: &mut BenchmarkGroup<'_, WallTime>, name: &str, services: Vec<S>)
where
    S: Service<(), Response = (), Error = Infallible> + tower::load::Load + Unpin,
    S::Metric: std::fmt::Debug,
{
    let mut balance: Balance<_, ()> = Balance::new(ServiceList::new::<()>(services));
    let mut cx = std::task::Context::from_waker(Waker::noop());
    // Discovery (100 inserts) and the first readiness poll happen before timing.
    assert!(matches!(balance.poll_ready(&mut cx), Poll::Ready(Ok(()))));
    g.bench_function(name, |b| {
        b.iter(|| {
            match balance.poll_ready(&mut cx) {
                Poll::Ready(Ok(())) => {}
                _ => panic!("always-ready services"),
            }
            balance.call(())
        })
    });
}

fn pending_services() -> Vec<PendingRequests<impl Service<(), Response = (), Error = Infallible>>> {
    (0..BACKENDS)
        .map(|_| PendingRequests::new(tower::service_fn(ok), CompleteOnResponse::default()))
        .collect()
}

fn ewma_services() -> Vec<PeakEwma<impl Service<(), Response = (), Error = Infallible>>> {
    (0..BACKENDS)
        .map(|_| {
            PeakEwma::new(
                tower::service_fn(ok),
                Duration::from_millis(1),
                Duration::from_secs(10).as_nanos() as f64,
                CompleteOnResponse::default(),
            )
        })
        .collect()
}

/// Least latency (the default: 2 choices above 16 backends) with an observation on every
/// backend (so picks take the EWMA path).
fn warmed_least_latency() -> Balancer<u64, LeastLatency> {
    warmed(LeastLatency::new(), BACKENDS)
}

fn warmed(policy: LeastLatency, n: usize) -> Balancer<u64, LeastLatency> {
    let lb = tierkit(policy, &vec![1; n]);
    for i in 0..10 * n {
        let lease = lb.pick(&Context::new()).expect("pool");
        lease.success(Duration::from_micros(200 + (i as u64 % 7) * 50));
    }
    lb
}

/// Polls a future that must be ready at once.
fn ready_now<F: std::future::Future>(fut: F) -> F::Output {
    let mut cx = std::task::Context::from_waker(Waker::noop());
    match std::pin::pin!(fut).poll(&mut cx) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("in-memory services answer at once"),
    }
}

/// `poll_ready` + `call` + the response, for services that are always ready.
fn one_request<S: Service<()>>(svc: &mut S) -> Result<S::Response, S::Error> {
    let mut cx = std::task::Context::from_waker(Waker::noop());
    match svc.poll_ready(&mut cx) {
        Poll::Ready(Ok(())) => {}
        _ => panic!("always-ready services"),
    }
    ready_now(svc.call(()))
}

fn tower_service(c: &mut Criterion) {
    let mut g = c.benchmark_group("tower_service/100");
    let mut direct = tower::service_fn(ok);
    g.bench_function("inner_direct", |b| {
        b.iter(|| one_request(black_box(&mut direct)))
    });
    // What timing a request needs at least: a clock read at the call and one at the answer,
    // with `Instant::now` and with the balancer's default clock (what `Balance` reads).
    g.bench_function("baseline_two_clock_reads", |b| {
        b.iter(|| black_box(Instant::now()).elapsed())
    });
    let clock = FastClock::new();
    g.bench_function("baseline_two_fast_clock_reads", |b| {
        b.iter(|| black_box(clock.now_nanos()).wrapping_sub(clock.now_nanos()))
    });
    let lb = std::sync::Arc::new(
        Balancer::builder()
            .policy(PowerOfTwoChoices::new())
            .backends((0..BACKENDS as u64).map(|i| Backend::new(i, tower::service_fn(ok))))
            .build()
            .expect("valid pool"),
    );
    let mut balance = tierkit::lb::tower::Balance::new(lb);
    g.bench_function("tierkit_balance_p2c", |b| {
        b.iter(|| one_request(black_box(&mut balance)))
    });
    let lb = std::sync::Arc::new(
        Balancer::builder()
            .policy(LeastLatency::new())
            .backends((0..BACKENDS as u64).map(|i| Backend::new(i, tower::service_fn(ok))))
            .build()
            .expect("valid pool"),
    );
    let mut balance = tierkit::lb::tower::Balance::new(lb);
    g.bench_function("tierkit_balance_least_latency", |b| {
        b.iter(|| one_request(black_box(&mut balance)))
    });
    let mut p2c: Balance<_, ()> = Balance::new(ServiceList::new::<()>(pending_services()));
    one_request(&mut p2c).expect("discovery and first readiness before timing");
    g.bench_function("tower_p2c_pending_requests", |b| {
        b.iter(|| one_request(black_box(&mut p2c)))
    });
    g.finish();
}

fn round_robin(c: &mut Criterion) {
    let mut g = c.benchmark_group("round_robin/100");
    // Floors for reading the numbers, uncontended: a bare shared cursor (one atomic RMW and a
    // modulo); two RMWs on one word, which is all the atomic work of tierkit's pick + lease drop
    // (the lease's increment of the backend's state word and the drop's decrement), so no pick
    // can beat it; and eight RMWs on separate cache lines (what a pick cost before the
    // lease-as-reference-count rework: cursor, `Arc` clone/drop, in flight up/down, picks, ...).
    let cursor = AtomicUsize::new(0);
    g.bench_function("baseline_one_rmw", |b| {
        b.iter(|| cursor.fetch_add(1, Ordering::Relaxed) % black_box(BACKENDS))
    });
    // The decrement is a call away, as the lease's drop is.
    let state = CachePadded::default();
    g.bench_function("baseline_two_rmw", |b| {
        b.iter(|| {
            black_box(&state).0.fetch_add(1, Ordering::Relaxed);
            release(black_box(&state))
        })
    });
    let lines: Vec<CachePadded> = (0..8).map(|_| CachePadded::default()).collect();
    g.bench_function("baseline_eight_rmw", |b| {
        b.iter(|| {
            for l in &lines {
                l.0.fetch_add(1, Ordering::AcqRel);
            }
        })
    });
    bench_tierkit(
        &mut g,
        "tierkit",
        &tierkit(RoundRobin::new(), &[1; BACKENDS]),
    );
    bench_pingora(
        &mut g,
        "pingora",
        &pingora::<pingora_load_balancing::selection::RoundRobin>(&[1; BACKENDS]),
    );
    g.finish();
}

#[inline(never)]
fn release(state: &CachePadded) -> u64 {
    state.0.fetch_sub(1, Ordering::Release)
}

fn random(c: &mut Criterion) {
    let mut g = c.benchmark_group("random/100");
    bench_tierkit(&mut g, "tierkit", &tierkit(Random::new(), &[1; BACKENDS]));
    bench_pingora(
        &mut g,
        "pingora",
        &pingora::<pingora_load_balancing::selection::Random>(&[1; BACKENDS]),
    );
    g.finish();
}

fn p2c(c: &mut Criterion) {
    let mut g = c.benchmark_group("p2c/100");
    bench_tierkit(
        &mut g,
        "tierkit_least_request",
        &tierkit(PowerOfTwoChoices::new(), &[1; BACKENDS]),
    );
    bench_tower(&mut g, "tower_pending_requests", pending_services());
    bench_tower(&mut g, "tower_peak_ewma", ewma_services());
    g.finish();
}

fn least_latency(c: &mut Criterion) {
    let mut g = c.benchmark_group("least_latency/100");
    let lb = warmed_least_latency();
    // `tierkit` is the default policy (`LeastLatency::new()`: 2 choices at 100 backends).
    bench_tierkit(&mut g, "tierkit", &lb);
    let p2c = warmed(LeastLatency::with_choices(2).expect("2 choices"), BACKENDS);
    bench_tierkit(&mut g, "tierkit_2_choices", &p2c);
    let ctx = Context::new();
    let rtt = Duration::from_micros(300);
    g.bench_function("tierkit_pick_success", |b| {
        b.iter(|| {
            if let Ok(lease) = lb.pick(black_box(&ctx)) {
                lease.success(black_box(rtt));
            }
        })
    });
    bench_tower(&mut g, "tower_peak_ewma", ewma_services());
    g.finish();
    // The default at 1000 backends (2 choices) and at 16 (a full scan).
    for n in [16, 1000] {
        let mut g = c.benchmark_group(format!("least_latency/{n}"));
        bench_tierkit(&mut g, "tierkit", &warmed(LeastLatency::new(), n));
        g.finish();
    }
}

fn weighted_round_robin(c: &mut Criterion) {
    for n in [BACKENDS, 1000] {
        let w = weights(n);
        let mut g = c.benchmark_group(format!("weighted_round_robin/{n}"));
        bench_tierkit(&mut g, "tierkit", &tierkit(WeightedRoundRobin::new(), &w));
        // pingora's round robin is weighted (`Weighted<RoundRobin>`).
        bench_pingora(
            &mut g,
            "pingora",
            &pingora::<pingora_load_balancing::selection::RoundRobin>(&w),
        );
        g.finish();
    }
}

fn consistent_hash(c: &mut Criterion) {
    let keys: Vec<String> = common::splitmix(4096)
        .iter()
        .map(|z| format!("user:{}", z % 100_000_000))
        .collect();
    let mask = keys.len() - 1;
    let mut g = c.benchmark_group("consistent_hash/100");
    for (name, policy) in [
        ("ring", ConsistentHash::ring()),
        ("maglev", ConsistentHash::maglev()),
    ] {
        let lb = tierkit(policy, &[1; BACKENDS]);
        let hashes: Vec<u64> = keys.iter().map(|k| lb.hash_key(k.as_str())).collect();
        let mut i = 0;
        g.bench_function(format!("tierkit_{name}_prehashed"), |b| {
            b.iter(|| {
                i = (i + 1) & mask;
                lb.pick(&Context::new().with_hash(black_box(hashes[i])))
            })
        });
        g.bench_function(format!("tierkit_{name}_hash_in_loop"), |b| {
            b.iter(|| {
                i = (i + 1) & mask;
                let h = lb.hash_key(black_box(keys[i].as_str()));
                lb.pick(&Context::new().with_hash(h))
            })
        });
    }
    let lb = pingora::<pingora_load_balancing::selection::Consistent>(&[1; BACKENDS]);
    let mut i = 0;
    g.bench_function("pingora_ketama", |b| {
        b.iter(|| {
            i = (i + 1) & mask;
            lb.select(black_box(keys[i].as_bytes()), MAX_ITERATIONS)
        })
    });
    g.finish();
}

/// Per-operation time seen by each of `threads` threads running `op` `iters` times, started
/// before timing and released together by a barrier.
fn per_thread(threads: usize, iters: u64, op: &(dyn Fn() + Sync)) -> Duration {
    let barrier = Barrier::new(threads + 1);
    std::thread::scope(|s| {
        for _ in 0..threads {
            let barrier = &barrier;
            s.spawn(move || {
                barrier.wait();
                for _ in 0..iters {
                    op();
                }
                barrier.wait();
            });
        }
        barrier.wait();
        let start = Instant::now();
        barrier.wait();
        start.elapsed()
    })
}

fn threads(c: &mut Criterion) {
    // `Context` is built per pick (it is free: `Context::new` is a const fn) because it is not
    // `Sync` and these closures are shared between threads.
    let rr = tierkit(RoundRobin::new(), &[1; BACKENDS]);
    let p2c = tierkit(PowerOfTwoChoices::new(), &[1; BACKENDS]);
    let ll = warmed_least_latency();
    let pingora_rr = pingora::<pingora_load_balancing::selection::RoundRobin>(&[1; BACKENDS]);
    let cases: [(&str, &str, &(dyn Fn() + Sync)); 4] = [
        ("round_robin", "tierkit", &|| {
            drop(black_box(rr.pick(&Context::new())))
        }),
        ("round_robin", "pingora", &|| {
            drop(black_box(pingora_rr.select(b"", MAX_ITERATIONS)));
        }),
        ("p2c", "tierkit_least_request", &|| {
            drop(black_box(p2c.pick(&Context::new())))
        }),
        ("least_latency", "tierkit", &|| {
            drop(black_box(ll.pick(&Context::new())))
        }),
    ];
    for (group, _, _) in cases.iter().take(1).chain(&cases[2..]) {
        let mut g = c.benchmark_group(format!("threads/{group}/100"));
        for (_, name, op) in cases.iter().filter(|(gr, _, _)| gr == group) {
            for n in [1, 2] {
                g.bench_function(format!("{name}/{n}_threads"), |b| {
                    b.iter_custom(|iters| per_thread(n, iters, *op))
                });
            }
        }
        g.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(50)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = tower_service, round_robin, random, p2c, least_latency, weighted_round_robin, consistent_hash, threads
}
criterion_main!(benches);
