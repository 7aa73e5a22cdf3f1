//! The tower integration (`tierkit_lb::tower`) with mock inner services: latency, errors,
//! timeouts, readiness, membership changes at runtime and retries. Time is tokio's paused
//! clock, which the balancers read through `TokioClock`: mock latencies are exact and nothing
//! sleeps for real.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context as TaskContext, Poll, Waker};
use std::time::Duration;

use parking_lot::Mutex;
use tierkit_lb::tower::{
    Balance, BalanceLayer, HashKey, Retries, ServerErrors, Tried, apply, retire, spawn_discover,
};
use tierkit_lb::{
    Backend, BackendId, Balancer, ConsistentHash, Error, Health, LeastConnections, LeastLatency,
    NoBackend, OutlierDetection, Policy, RoundRobin, TokioClock,
};
use tower::discover::Change;
use tower::retry::Retry;
use tower::{BoxError, Layer, Service, ServiceExt};

type Req = http::Request<()>;
type BoxFut = Pin<Box<dyn Future<Output = Result<u16, BoxError>> + Send>>;

/// A backend: answers its status after its delay, or fails; counts calls; optionally gated
/// (not ready until opened).
#[derive(Clone)]
struct Mock {
    id: u64,
    delay: Duration,
    fail: bool,
    status: u16,
    calls: Arc<AtomicU64>,
    gate: Option<Gate>,
}

/// Readiness the test controls.
#[derive(Clone, Default)]
struct Gate {
    open: Arc<AtomicBool>,
    broken: Arc<AtomicBool>,
    waiters: Arc<Mutex<Vec<Waker>>>,
}

impl Gate {
    fn open(&self) {
        self.open.store(true, Ordering::SeqCst);
        self.waiters.lock().drain(..).for_each(Waker::wake);
    }

    fn break_it(&self) {
        self.broken.store(true, Ordering::SeqCst);
        self.waiters.lock().drain(..).for_each(Waker::wake);
    }
}

impl Mock {
    fn new(id: u64) -> Self {
        Self {
            id,
            delay: Duration::from_millis(1),
            fail: false,
            status: 200,
            calls: Arc::default(),
            gate: None,
        }
    }

    fn delay(mut self, ms: u64) -> Self {
        self.delay = Duration::from_millis(ms);
        self
    }

    fn failing(mut self) -> Self {
        self.fail = true;
        self
    }

    fn status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    fn gated(mut self, gate: &Gate) -> Self {
        self.gate = Some(gate.clone());
        self
    }

    fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }
}

impl<R> Service<R> for Mock {
    type Response = u16;
    type Error = BoxError;
    type Future = BoxFut;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), BoxError>> {
        let Some(gate) = &self.gate else {
            return Poll::Ready(Ok(()));
        };
        gate.waiters.lock().push(cx.waker().clone());
        if gate.broken.load(Ordering::SeqCst) {
            return Poll::Ready(Err("backend broke while not ready".into()));
        }
        if gate.open.load(Ordering::SeqCst) {
            return Poll::Ready(Ok(()));
        }
        Poll::Pending
    }

    fn call(&mut self, _: R) -> BoxFut {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let (delay, fail, status, id) = (self.delay, self.fail, self.status, self.id);
        Box::pin(async move {
            tokio::time::sleep(delay).await;
            if fail {
                Err(format!("backend {id} failed").into())
            } else {
                Ok(status)
            }
        })
    }
}

fn pool<P: Policy<Mock>>(policy: P, mocks: &[Mock]) -> Arc<Balancer<Mock, P>> {
    Arc::new(
        Balancer::builder()
            .clock(TokioClock::new())
            .policy(policy)
            .backends(mocks.iter().map(|m| Backend::new(m.id, m.clone())))
            .panic_threshold(0)
            .build()
            .unwrap(),
    )
}

fn backend_stats<P: Policy<Mock>>(lb: &Balancer<Mock, P>, id: u64) -> tierkit_lb::BackendStats {
    lb.stats()
        .backends
        .into_iter()
        .find(|b| b.id == BackendId(id))
        .unwrap()
}

fn tried_request() -> Req {
    let mut req = http::Request::new(());
    req.extensions_mut().insert(Tried::new());
    req
}

async fn unit<S>(svc: &mut S) -> Result<u16, BoxError>
where
    S: Service<(), Response = u16, Error = BoxError>,
{
    svc.ready().await?.call(()).await
}

async fn send<S>(svc: &mut S, req: Req) -> Result<u16, BoxError>
where
    S: Service<Req, Response = u16, Error = BoxError>,
{
    svc.ready().await?.call(req).await
}

fn lb_error(e: &BoxError) -> Option<&Error> {
    e.downcast_ref::<Error>()
}

#[tokio::test(start_paused = true)]
async fn measures_latency_of_each_response() {
    let mocks = [Mock::new(1).delay(10), Mock::new(2).delay(50)];
    let lb = pool(RoundRobin::new(), &mocks);
    let mut svc = Balance::new(Arc::clone(&lb));
    for _ in 0..4 {
        assert_eq!(unit(&mut svc).await.unwrap(), 200);
    }
    for (id, ms) in [(1, 10u64), (2, 50)] {
        let s = backend_stats(&lb, id);
        assert_eq!((s.successes, s.failures, s.in_flight), (2, 0, 0));
        let latency = s.latency.unwrap();
        // Paused time: the measured latency is the mock's delay (rounded to tokio's 1 ms
        // timer granularity).
        assert!(
            latency >= Duration::from_millis(ms) && latency <= Duration::from_millis(ms + 1),
            "backend {id}: {latency:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn latency_steers_least_latency_away_from_a_slow_backend() {
    let mocks = [
        Mock::new(1).delay(2),
        Mock::new(2).delay(2),
        Mock::new(3).delay(40),
    ];
    let lb = pool(LeastLatency::new(), &mocks);
    let svc = Balance::new(Arc::clone(&lb));
    // Concurrent requests, 8 at a time.
    for _ in 0..50 {
        let mut batch = Vec::new();
        for _ in 0..8 {
            batch.push(tokio::spawn(ServiceExt::<()>::oneshot(svc.clone(), ())));
        }
        for h in batch {
            h.await.unwrap().unwrap();
        }
    }
    let slow = mocks[2].calls();
    let total: u64 = mocks.iter().map(Mock::calls).sum();
    assert_eq!(total, 400);
    assert!(
        slow * 10 < total,
        "the 20x slower backend got {slow} of {total}"
    );
}

#[tokio::test(start_paused = true)]
async fn errors_and_rejected_responses_are_failures_and_eject() {
    let mocks = [
        Mock::new(1).failing(),
        Mock::new(2).status(503),
        Mock::new(3),
    ];
    let lb = Arc::new(
        Balancer::builder()
            .clock(TokioClock::new())
            .policy(RoundRobin::new())
            .backends(mocks.iter().map(|m| Backend::new(m.id, m.clone())))
            .outlier_detection(
                OutlierDetection::new()
                    .consecutive_failures(3)
                    .max_ejected_percent(100),
            )
            .panic_threshold(0)
            .build()
            .unwrap(),
    );
    let mut svc = Balance::new(Arc::clone(&lb)).classify(|status: &u16| *status >= 500);
    let mut errors = 0;
    for _ in 0..9 {
        match unit(&mut svc).await {
            Ok(_) => {}
            Err(e) => {
                assert_eq!(e.to_string(), "backend 1 failed", "the inner error, as is");
                errors += 1;
            }
        }
    }
    assert_eq!(errors, 3);
    for id in [1, 2] {
        let s = backend_stats(&lb, id);
        assert_eq!((s.failures, s.successes), (3, 0), "backend {id}");
        assert_eq!(s.health, Health::Ejected, "backend {id}");
    }
    assert_eq!(backend_stats(&lb, 3).successes, 3);
    // Only backend 3 serves now.
    for _ in 0..5 {
        assert_eq!(unit(&mut svc).await.unwrap(), 200);
    }
    assert_eq!(mocks[2].calls(), 8);
}

#[tokio::test(start_paused = true)]
async fn timeout_is_a_failure_and_cancellation_is_not() {
    let mocks = [Mock::new(1).delay(10_000)];
    let lb = pool(RoundRobin::new(), &mocks);
    let mut svc = Balance::new(Arc::clone(&lb)).timeout(Duration::from_millis(100));
    let start = tokio::time::Instant::now();
    let err = unit(&mut svc).await.unwrap_err();
    assert_eq!(start.elapsed(), Duration::from_millis(100));
    assert!(matches!(lb_error(&err), Some(Error::Timeout(d)) if *d == Duration::from_millis(100)));
    let s = backend_stats(&lb, 1);
    assert_eq!((s.failures, s.in_flight), (1, 0));
    // Dropped before the answer: cancelled, neither success nor failure.
    let fut = ServiceExt::<()>::ready(&mut svc).await.unwrap().call(());
    assert_eq!(backend_stats(&lb, 1).in_flight, 1);
    drop(fut);
    let s = backend_stats(&lb, 1);
    assert_eq!(
        (s.failures, s.successes, s.cancelled, s.in_flight),
        (1, 0, 1, 0)
    );
    // Duration::MAX is "no timeout", not an overflow.
    let mut svc = Balance::new(Arc::clone(&lb)).timeout(Duration::MAX);
    assert_eq!(unit(&mut svc).await.unwrap(), 200);
}

#[tokio::test(start_paused = true)]
async fn no_backend_fails_fast_with_the_reason() {
    let lb: Arc<Balancer<Mock, RoundRobin>> = Arc::new(
        Balancer::builder()
            .clock(TokioClock::new())
            .policy(RoundRobin::new())
            .build()
            .unwrap(),
    );
    let mut svc = Balance::new(Arc::clone(&lb));
    let err = unit(&mut svc).await.unwrap_err();
    assert_eq!(lb_error(&err), Some(&Error::NoBackend(NoBackend::Empty)));
}

#[tokio::test(start_paused = true)]
async fn readiness_is_awaited_while_counted_in_flight() {
    let gate = Gate::default();
    let mocks = [Mock::new(1).gated(&gate), Mock::new(2)];
    let lb = pool(LeastConnections::new(), &mocks);
    let mut svc = Balance::new(Arc::clone(&lb));
    // The balancer itself is always ready.
    let mut cx = TaskContext::from_waker(Waker::noop());
    assert!(matches!(
        Service::<()>::poll_ready(&mut svc, &mut cx),
        Poll::Ready(Ok(()))
    ));
    // Find a request that landed on the gated backend: it waits, holding its lease. Ties
    // between idle backends are broken by a per-process random choice, so try until one lands
    // there (each try does with probability 1/2).
    let mut waiting = None;
    for _ in 0..64 {
        let mut fut = Box::pin(Service::<()>::call(&mut svc, ()));
        if fut.as_mut().poll(&mut cx).is_pending() && backend_stats(&lb, 1).in_flight == 1 {
            waiting = Some(fut);
            break;
        }
        assert_eq!(fut.await.unwrap(), 200);
    }
    let waiting = waiting.expect("one of 64 least-connections picks reaches backend 1");
    assert_eq!(backend_stats(&lb, 1).in_flight, 1);
    // Least connections sees it busy: the next requests go to backend 2.
    for _ in 0..3 {
        assert_eq!(Service::<()>::call(&mut svc, ()).await.unwrap(), 200);
    }
    assert_eq!(mocks[0].calls(), 0);
    let waiter = tokio::spawn(waiting);
    tokio::task::yield_now().await;
    gate.open();
    assert_eq!(waiter.await.unwrap().unwrap(), 200);
    assert_eq!(mocks[0].calls(), 1);
    assert_eq!(backend_stats(&lb, 1).successes, 1);
    // A readiness error is that backend's failure.
    let gate = Gate::default();
    let lb = pool(RoundRobin::new(), &[Mock::new(7).gated(&gate)]);
    let mut svc = Balance::new(Arc::clone(&lb));
    let fut = tokio::spawn(Service::<()>::call(&mut svc, ()));
    tokio::task::yield_now().await;
    gate.break_it();
    let err = fut.await.unwrap().unwrap_err();
    assert_eq!(err.to_string(), "backend broke while not ready");
    assert_eq!(backend_stats(&lb, 7).failures, 1);
}

/// A `Discover` stream fed by the test.
struct Feed(tokio::sync::mpsc::UnboundedReceiver<Change<u64, Mock>>);

impl futures_core::Stream for Feed {
    type Item = Result<Change<u64, Mock>, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx).map(|c| c.map(Ok))
    }
}

#[tokio::test(start_paused = true)]
async fn membership_follows_a_discover_stream() {
    let lb: Arc<Balancer<Mock, RoundRobin>> = Arc::new(
        Balancer::builder()
            .clock(TokioClock::new())
            .policy(RoundRobin::new())
            .build()
            .unwrap(),
    );
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let task = spawn_discover(&lb, Feed(rx), |k: &u64| BackendId(*k));
    let (a, b, c) = (Mock::new(1), Mock::new(2).delay(100), Mock::new(3));
    tx.send(Change::Insert(1, a.clone())).unwrap();
    tx.send(Change::Insert(2, b.clone())).unwrap();
    tokio::task::yield_now().await;
    assert_eq!(lb.len(), 2);
    let mut svc = Balance::new(Arc::clone(&lb));
    for _ in 0..4 {
        unit(&mut svc).await.unwrap();
    }
    assert_eq!((a.calls(), b.calls()), (2, 2));
    // A request in flight on backend 2 when it is removed completes there.
    let mut in_flight = None;
    while in_flight.is_none() {
        let fut = tokio::spawn(Service::<()>::call(&mut svc, ()));
        tokio::task::yield_now().await;
        if b.calls() == 3 {
            in_flight = Some(fut);
        } else {
            fut.await.unwrap().unwrap();
        }
    }
    tx.send(Change::Remove(2)).unwrap();
    tx.send(Change::Insert(3, c.clone())).unwrap();
    tokio::task::yield_now().await;
    assert_eq!(lb.len(), 2);
    assert_eq!(in_flight.unwrap().await.unwrap().unwrap(), 200);
    let (calls_a, calls_b) = (a.calls(), b.calls());
    for _ in 0..6 {
        unit(&mut svc).await.unwrap();
    }
    assert_eq!(b.calls(), calls_b, "no request reaches a removed backend");
    assert_eq!(
        (a.calls() - calls_a, c.calls()),
        (3, 3),
        "round robin over 1 and 3"
    );
    // Reweighting through the balancer handle: weight 0 drains backend 1.
    svc.balancer().set_weight(BackendId(1), 0).unwrap();
    let before = a.calls();
    for _ in 0..4 {
        unit(&mut svc).await.unwrap();
    }
    assert_eq!(a.calls(), before);
    // Re-inserting an id replaces the service; removing an unknown id is a no-op.
    let c2 = Mock::new(3);
    apply(&lb, Change::Insert(3, c2.clone()), |k: &u64| BackendId(*k)).unwrap();
    apply(&lb, Change::Remove(42), |k: &u64| BackendId(*k)).unwrap();
    unit(&mut svc).await.unwrap();
    assert_eq!(c2.calls(), 1);
    drop(tx);
    assert!(task.await.unwrap().is_ok(), "the task ends with its stream");
}

#[tokio::test(start_paused = true)]
async fn retire_waits_for_requests_in_flight() {
    let mocks = [Mock::new(1).delay(500), Mock::new(2)];
    let lb = pool(RoundRobin::new(), &mocks);
    let svc = Balance::new(Arc::clone(&lb));
    let mut slow = Vec::new();
    for _ in 0..2 {
        slow.push(tokio::spawn(ServiceExt::<()>::oneshot(svc.clone(), ())));
    }
    tokio::task::yield_now().await;
    assert_eq!(backend_stats(&lb, 1).in_flight, 1);
    let start = tokio::time::Instant::now();
    assert!(
        retire(&lb, BackendId(1), Duration::from_secs(5))
            .await
            .unwrap()
    );
    assert!(start.elapsed() >= Duration::from_millis(490));
    assert_eq!(lb.len(), 1);
    for h in slow {
        assert_eq!(h.await.unwrap().unwrap(), 200);
    }
    assert_eq!(
        retire(&lb, BackendId(1), Duration::MAX).await.unwrap_err(),
        Error::UnknownBackend(BackendId(1))
    );
}

#[tokio::test(start_paused = true)]
async fn retries_never_revisit_a_backend() {
    // Three of four backends fail: every request succeeds within its retries, and no backend
    // sees the same request twice.
    let mocks = [
        Mock::new(1).failing(),
        Mock::new(2).failing(),
        Mock::new(3).failing(),
        Mock::new(4),
    ];
    let lb = pool(tierkit_lb::Random::new(), &mocks);
    let mut svc = Retry::new(Retries::new(3), Balance::new(Arc::clone(&lb)));
    for _ in 0..50 {
        let req = tried_request();
        let tried = req.extensions().get::<Tried>().unwrap().clone();
        assert_eq!(send(&mut svc, req).await.unwrap(), 200);
        let mut ids = tried.ids();
        assert_eq!(ids.last(), Some(&BackendId(4)));
        ids.sort();
        ids.dedup();
        assert_eq!(
            ids.len(),
            tried.len(),
            "a retry went back to a tried backend"
        );
    }
    // All four failing: four attempts, one per backend, then "all excluded" ends it.
    let mocks: Vec<Mock> = (1..=4).map(|i| Mock::new(i).failing()).collect();
    let lb = pool(RoundRobin::new(), &mocks);
    let mut svc = Retry::new(Retries::new(10), Balance::new(Arc::clone(&lb)));
    let err = send(&mut svc, tried_request()).await.unwrap_err();
    assert_eq!(
        lb_error(&err),
        Some(&Error::NoBackend(NoBackend::AllExcluded))
    );
    assert!(mocks.iter().all(|m| m.calls() == 1));
}

#[tokio::test(start_paused = true)]
async fn retries_need_a_record_and_an_idempotent_request() {
    let mocks = [Mock::new(1).failing(), Mock::new(2).failing()];
    let lb = pool(RoundRobin::new(), &mocks);
    let mut svc = Retry::new(Retries::new(3), Balance::new(Arc::clone(&lb)));
    // No `Tried`: one attempt (a retry could land on the same backend).
    send(&mut svc, http::Request::new(())).await.unwrap_err();
    assert_eq!(mocks[0].calls() + mocks[1].calls(), 1);
    // POST is not idempotent: one attempt.
    let mut post = tried_request();
    *post.method_mut() = http::Method::POST;
    send(&mut svc, post).await.unwrap_err();
    assert_eq!(mocks[0].calls() + mocks[1].calls(), 2);
    // 5xx responses are retried when the policy classifies them.
    let mocks = [Mock::new(1).status(502), Mock::new(2)];
    let lb = pool(RoundRobin::new(), &mocks);
    let mut svc = Retry::new(
        Retries::new(1).classify(|s: &u16| *s >= 500),
        Balance::new(Arc::clone(&lb)).classify(|s: &u16| *s >= 500),
    );
    for _ in 0..6 {
        assert_eq!(send(&mut svc, tried_request()).await.unwrap(), 200);
    }
    assert_eq!(backend_stats(&lb, 1).failures, mocks[0].calls());
}

/// The inner "client" of the layer: answers with the URI it was sent to; readiness scripted.
#[derive(Clone, Default)]
struct Client {
    ready: Arc<AtomicBool>,
}

impl Service<http::Request<()>> for Client {
    type Response = http::Response<String>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<http::Response<String>, Infallible>>;

    fn poll_ready(&mut self, _: &mut TaskContext<'_>) -> Poll<Result<(), Infallible>> {
        if self.ready.load(Ordering::SeqCst) {
            Poll::Ready(Ok(()))
        } else {
            Poll::Pending
        }
    }

    fn call(&mut self, req: http::Request<()>) -> Self::Future {
        let status = if req.uri().port_u16() == Some(9) {
            500
        } else {
            200
        };
        let mut res = http::Response::new(req.uri().to_string());
        *res.status_mut() = http::StatusCode::from_u16(status).unwrap();
        std::future::ready(Ok(res))
    }
}

#[tokio::test(start_paused = true)]
async fn layer_routes_one_client_and_forwards_readiness() {
    let lb = Arc::new(
        Balancer::builder()
            .clock(TokioClock::new())
            .policy(ConsistentHash::maglev())
            .backends((1..=9u16).map(|p| Backend::new(u64::from(p), p)))
            .build()
            .unwrap(),
    );
    let layer = BalanceLayer::new(Arc::clone(&lb), |port: &u16, req: &mut Req| {
        *req.uri_mut() = format!("http://127.0.0.1:{port}/").parse().unwrap();
    })
    .classify(ServerErrors);
    let client = Client::default();
    let mut svc = layer.layer(client.clone());
    let mut cx = TaskContext::from_waker(Waker::noop());
    assert!(
        svc.poll_ready(&mut cx).is_pending(),
        "the inner client's readiness"
    );
    client.ready.store(true, Ordering::SeqCst);
    assert!(matches!(svc.poll_ready(&mut cx), Poll::Ready(Ok(()))));
    // A hash key routes the same key to the same backend.
    let keyed = |k: u64| {
        let mut req = http::Request::new(());
        req.extensions_mut().insert(HashKey(k));
        req
    };
    for k in 0..20u64 {
        let first = svc.ready().await.unwrap().call(keyed(k)).await.unwrap();
        let again = svc.ready().await.unwrap().call(keyed(k)).await.unwrap();
        assert_eq!(first.body(), again.body());
    }
    // The 5xx of port 9 counted as its failures, the rest as successes.
    let stats = lb.stats();
    let failures: u64 = stats.backends.iter().map(|b| b.failures).sum();
    let nine = stats
        .backends
        .iter()
        .find(|b| b.id == BackendId(9))
        .unwrap();
    assert_eq!(failures, nine.failures);
    assert_eq!(
        stats
            .backends
            .iter()
            .map(|b| b.successes + b.failures)
            .sum::<u64>(),
        40
    );
}

#[test]
fn tower_types_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Balance<Mock, LeastLatency>>();
    assert_send_sync::<Tried>();
    fn assert_send<T: Send>() {}
    assert_send::<tierkit_lb::tower::future::ResponseFuture<BoxFut, Mock, ServerErrors>>();
}
