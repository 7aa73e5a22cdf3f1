//! Active health checks on a tokio task, with a scripted check and a real TCP check.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tierkit_lb::{
    Backend, BackendId, Balancer, CheckConfig, Context, Health, HealthCheck, RoundRobin, TcpConnect,
};

/// A check whose answer per backend the test sets.
#[derive(Clone, Default)]
struct Scripted(Arc<Mutex<HashMap<u64, bool>>>);

impl Scripted {
    fn set(&self, b: u64, ok: bool) {
        self.0.lock().insert(b, ok);
    }
}

impl HealthCheck<u64> for Scripted {
    fn check(&self, backend: &u64) -> impl std::future::Future<Output = bool> + Send {
        let ok = self.0.lock().get(backend).copied().unwrap_or(true);
        async move { ok }
    }
}

#[tokio::test(start_paused = true)]
async fn rise_and_fall_thresholds() {
    let lb = Arc::new(
        Balancer::builder(RoundRobin::new())
            .backends((0..3u64).map(|i| Backend::new(i, i)))
            .panic_threshold(0)
            .build()
            .unwrap(),
    );
    let check = Scripted::default();
    let cfg = CheckConfig::new(Duration::from_secs(1))
        .rise(2)
        .fall(3)
        .jitter(0.0);
    check.set(1, false);
    for _ in 0..2 {
        lb.check_now(&Arc::new(check.clone()), &cfg).await;
    }
    assert_eq!(
        lb.stats().backends[1].health,
        Health::Healthy,
        "two failures < fall"
    );
    lb.check_now(&Arc::new(check.clone()), &cfg).await;
    assert_eq!(lb.stats().backends[1].health, Health::Unhealthy);
    assert!((0..10).all(|_| *lb.pick(&Context::new()).unwrap() != 1));
    check.set(1, true);
    lb.check_now(&Arc::new(check.clone()), &cfg).await;
    assert_eq!(
        lb.stats().backends[1].health,
        Health::Unhealthy,
        "one pass < rise"
    );
    lb.check_now(&Arc::new(check.clone()), &cfg).await;
    assert_eq!(lb.stats().backends[1].health, Health::Healthy);

    // The spawned task does the same on its own schedule (paused time auto-advances).
    check.set(2, false);
    let task = lb.spawn_health_checks(check.clone(), cfg).unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(lb.stats().backends[2].health, Health::Unhealthy);
    task.abort();
}

#[tokio::test(start_paused = true)]
async fn new_backends_can_start_unhealthy() {
    let lb = Balancer::builder(RoundRobin::new())
        .backends((0..2u64).map(|i| Backend::new(i, i)))
        .start_unhealthy(true)
        .panic_threshold(0)
        .build()
        .unwrap();
    assert!(lb.pick(&Context::new()).is_err());
    let check = Scripted::default();
    check.set(1, false);
    lb.check_now(
        &Arc::new(check.clone()),
        &CheckConfig::new(Duration::from_secs(1)).rise(3),
    )
    .await;
    // The first pass suffices for a never-checked backend.
    assert!((0..4).all(|_| *lb.pick(&Context::new()).unwrap() == 0));
    lb.add(Backend::new(5u64, 5)).unwrap();
    assert!((0..6).all(|_| *lb.pick(&Context::new()).unwrap() != 5));
    assert_eq!(lb.stats().backends[2].id, BackendId(5));
}

#[tokio::test]
async fn tcp_connect_check_sees_a_closed_port() {
    let open = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addrs = [open.local_addr().unwrap(), closed.local_addr().unwrap()];
    drop(closed);
    let lb = Balancer::builder(RoundRobin::new())
        .backends(
            addrs
                .iter()
                .enumerate()
                .map(|(i, a)| Backend::new(i as u64, *a)),
        )
        .panic_threshold(0)
        .build()
        .unwrap();
    let check = Arc::new(TcpConnect::new(|a: &std::net::SocketAddr| *a));
    let cfg = CheckConfig::new(Duration::from_millis(100)).fall(1);
    lb.check_now(&check, &cfg).await;
    let s = lb.stats();
    assert_eq!(s.backends[0].health, Health::Healthy);
    assert_eq!(s.backends[1].health, Health::Unhealthy);
    drop(open);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_drain_wait() {
    let lb = Balancer::builder(RoundRobin::new())
        .backends((0..2u64).map(|i| Backend::new(i, i)))
        .build()
        .unwrap();
    let lease = lb.pick(&Context::new()).unwrap();
    let drain = lb.drain(lease.id()).unwrap();
    let h = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(lease);
    });
    tokio::time::timeout(Duration::from_secs(5), drain.wait())
        .await
        .unwrap();
    h.await.unwrap();
}
