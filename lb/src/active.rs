//! Active health checks: an async [`HealthCheck`] run on a tokio task.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::backend::{HEALTH_HEALTHY, HEALTH_UNHEALTHY};
use crate::policy::rng;
use crate::{Balancer, Error, Member, Policy, Result};

/// Is this backend serving? Implement it for your protocol (an HTTP `GET /healthz`, a SQL
/// `SELECT 1`); [`TcpConnect`] is provided.
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub trait HealthCheck<B>: Send + Sync + 'static {
    /// Checks one backend; `true` means healthy. A check that outlives the configured timeout
    /// counts as failed.
    fn check(&self, backend: &B) -> impl Future<Output = bool> + Send;
}

/// Healthy if a TCP connection to the backend's address opens.
///
/// # Examples
///
/// ```
/// use std::net::SocketAddr;
/// use tierkit_lb::TcpConnect;
///
/// struct Server { addr: SocketAddr }
/// let check = TcpConnect::new(|s: &Server| s.addr);
/// # let _ = check;
/// ```
#[derive(Debug, Clone, Copy)]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub struct TcpConnect<F> {
    address: F,
}

impl<F> TcpConnect<F> {
    /// A check connecting to `address(backend)`.
    pub fn new(address: F) -> Self {
        Self { address }
    }
}

impl<B, F> HealthCheck<B> for TcpConnect<F>
where
    B: Sync,
    F: Fn(&B) -> SocketAddr + Send + Sync + 'static,
{
    fn check(&self, backend: &B) -> impl Future<Output = bool> + Send {
        let addr = (self.address)(backend);
        async move { tokio::net::TcpStream::connect(addr).await.is_ok() }
    }
}

/// How often and how strictly active checks run.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use tierkit_lb::CheckConfig;
///
/// let cfg = CheckConfig::new(Duration::from_secs(5)).timeout(Duration::from_secs(1)).rise(2).fall(3);
/// # let _ = cfg;
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
#[must_use]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub struct CheckConfig {
    interval: Duration,
    timeout: Duration,
    rise: u32,
    fall: u32,
    jitter: f64,
}

impl CheckConfig {
    /// Checks every `interval`, timeout 1 s (or the interval if shorter), rise 2, fall 3,
    /// jitter 10%.
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            timeout: interval.min(Duration::from_secs(1)),
            rise: 2,
            fall: 3,
            jitter: 0.1,
        }
    }

    /// A check slower than this fails.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Passing checks in a row that bring an unhealthy backend back (HAProxy's `rise`).
    pub fn rise(mut self, n: u32) -> Self {
        self.rise = n.max(1);
        self
    }

    /// Failing checks in a row that mark a healthy backend unhealthy (HAProxy's `fall`).
    pub fn fall(mut self, n: u32) -> Self {
        self.fall = n.max(1);
        self
    }

    /// Random spread of each interval, as a fraction (0.1 = ±10%), so a fleet of balancers does
    /// not check in lockstep. Clamped to `0..=0.5`.
    pub fn jitter(mut self, fraction: f64) -> Self {
        self.jitter = if fraction.is_finite() {
            fraction.clamp(0.0, 0.5)
        } else {
            0.0
        };
        self
    }
}

impl<B, P> Balancer<B, P>
where
    B: Send + Sync + 'static,
    P: Policy<B>,
{
    /// Spawns a tokio task that checks every member each interval and marks backends healthy
    /// after `rise` passes (the first pass of a never-checked backend suffices) and unhealthy
    /// after `fall` failures. The task ends when the balancer is dropped or the handle aborted.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a zero interval or timeout.
    ///
    /// # Panics
    /// Outside a tokio runtime (as `tokio::spawn` does).
    #[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
    pub fn spawn_health_checks<C: HealthCheck<B>>(
        self: &Arc<Self>,
        check: C,
        config: CheckConfig,
    ) -> Result<tokio::task::JoinHandle<()>> {
        if config.interval.is_zero() {
            return Err(Error::invalid("interval", "0 s", "must be > 0"));
        }
        if config.timeout.is_zero() {
            return Err(Error::invalid("timeout", "0 s", "must be > 0"));
        }
        let weak = Arc::downgrade(self);
        let check = Arc::new(check);
        Ok(tokio::spawn(run_checks(weak, check, config)))
    }

    /// Runs one round of checks now, concurrently (one task per backend on a
    /// [`JoinSet`](tokio::task::JoinSet)), and applies the results.
    #[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
    pub async fn check_now<C: HealthCheck<B>>(&self, check: &Arc<C>, config: &CheckConfig) {
        let members = self.members();
        let mut tasks = tokio::task::JoinSet::new();
        for (i, m) in members.iter().enumerate() {
            let (check, m, timeout) = (Arc::clone(check), m.clone(), config.timeout);
            tasks.spawn(async move {
                let ok = tokio::time::timeout(timeout, check.check(m.value()))
                    .await
                    .unwrap_or(false);
                (i, ok)
            });
        }
        let mut results = vec![false; members.len()];
        while let Some(done) = tasks.join_next().await {
            // A check that panicked counts as failed.
            if let Ok((i, ok)) = done {
                results[i] = ok;
            }
        }
        let mut changed = false;
        for (m, ok) in members.iter().zip(results) {
            changed |= self.record_check(m, ok, config);
        }
        if changed {
            self.refresh();
        }
    }

    fn record_check(&self, m: &Member<B>, ok: bool, config: &CheckConfig) -> bool {
        let c = m.counters();
        let first = c.checks.fetch_add(1, Ordering::Relaxed) == 0;
        let health = c.health.load(Ordering::Acquire);
        if ok {
            c.check_fails.store(0, Ordering::Relaxed);
            let passes = c.check_passes.fetch_add(1, Ordering::Relaxed) + 1;
            if health == HEALTH_UNHEALTHY && (first || passes >= config.rise) {
                self.apply_health(m, true);
                return true;
            }
        } else {
            c.check_passes.store(0, Ordering::Relaxed);
            let fails = c.check_fails.fetch_add(1, Ordering::Relaxed) + 1;
            if health == HEALTH_HEALTHY && fails >= config.fall {
                self.apply_health(m, false);
                return true;
            }
        }
        false
    }
}

async fn run_checks<B, P, C>(weak: Weak<Balancer<B, P>>, check: Arc<C>, config: CheckConfig)
where
    B: Send + Sync + 'static,
    P: Policy<B>,
    C: HealthCheck<B>,
{
    loop {
        {
            let Some(lb) = weak.upgrade() else { return };
            lb.check_now(&check, &config).await;
        }
        // Jitter: the interval times a factor in [1 - j, 1 + j].
        #[allow(clippy::cast_precision_loss)]
        let unit = (rng::next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        let factor = 1.0 + config.jitter * (2.0 * unit - 1.0);
        tokio::time::sleep(config.interval.mul_f64(factor)).await;
    }
}
