//! [`BalancerBuilder`]: validated configuration.

use std::fmt;
use std::time::Duration;

use tierkit_consistent_hash::KeyHasher;

use crate::control::Control;
use crate::{
    Backend, Balancer, Clock, Error, FastClock, OutlierDetection, Policy, Result, SlowStart,
};

/// Configures a [`Balancer`]. Start with [`Balancer::builder`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use tierkit_lb::{Backend, Balancer, OutlierDetection, SlowStart};
///
/// let lb = Balancer::builder()
///     .backends((0..4).map(|i| Backend::new(i, format!("app-{i}"))))
///     .outlier_detection(OutlierDetection::new())
///     .slow_start(SlowStart::new(Duration::from_secs(30)))
///     .panic_threshold(50)
///     .build()?;
/// assert_eq!(lb.len(), 4);
/// # Ok::<(), tierkit_lb::Error>(())
/// ```
#[must_use]
pub struct BalancerBuilder<B, P> {
    policy: P,
    backends: Vec<Backend<B>>,
    clock: Box<dyn Clock>,
    outlier: Option<OutlierDetection>,
    slow_start: Option<SlowStart>,
    decay: Duration,
    failure_penalty: Duration,
    panic_threshold: u8,
    hasher: KeyHasher,
    start_unhealthy: bool,
    background_refresh: bool,
}

impl<B, P: Policy<B>> BalancerBuilder<B, P> {
    pub(crate) fn with_policy(policy: P) -> Self {
        Self {
            policy,
            backends: Vec::new(),
            // `new` calibrates the counter now (once per process), not on a first request.
            clock: Box::new(FastClock::new()),
            outlier: None,
            slow_start: None,
            decay: Duration::from_secs(10),
            failure_penalty: Duration::from_secs(1),
            panic_threshold: 50,
            hasher: KeyHasher::DEFAULT,
            start_unhealthy: false,
            background_refresh: true,
        }
    }

    /// Balances with `policy` instead of the default [`LeastLatency::new`](crate::LeastLatency::new)
    /// (keeps every other setting).
    ///
    /// ```
    /// use tierkit_lb::{Backend, Balancer, RoundRobin};
    ///
    /// let lb = Balancer::builder().policy(RoundRobin::new()).backend(Backend::new(1, "a")).build()?;
    /// let _: &RoundRobin = lb.policy();
    /// # Ok::<(), tierkit_lb::Error>(())
    /// ```
    pub fn policy<Q: Policy<B>>(self, policy: Q) -> BalancerBuilder<B, Q> {
        BalancerBuilder {
            policy,
            backends: self.backends,
            clock: self.clock,
            outlier: self.outlier,
            slow_start: self.slow_start,
            decay: self.decay,
            failure_penalty: self.failure_penalty,
            panic_threshold: self.panic_threshold,
            hasher: self.hasher,
            start_unhealthy: self.start_unhealthy,
            background_refresh: self.background_refresh,
        }
    }

    /// Adds a backend.
    pub fn backend(mut self, backend: Backend<B>) -> Self {
        self.backends.push(backend);
        self
    }

    /// Adds backends.
    pub fn backends(mut self, backends: impl IntoIterator<Item = Backend<B>>) -> Self {
        self.backends.extend(backends);
        self
    }

    /// Reads time from `clock` (default [`FastClock`]; tests and simulations:
    /// [`ManualClock`](crate::ManualClock), or `TokioClock` under tokio's paused test clock).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Box::new(clock);
        self
    }

    /// Enables passive outlier detection (off by default).
    pub fn outlier_detection(mut self, od: OutlierDetection) -> Self {
        self.outlier = Some(od);
        self
    }

    /// Enables slow start for backends that join or recover.
    pub fn slow_start(mut self, ss: SlowStart) -> Self {
        self.slow_start = Some(ss);
        self
    }

    /// The time constant of the latency EWMA (default 10 s, Linkerd's).
    pub fn latency_decay(mut self, decay: Duration) -> Self {
        self.decay = decay;
        self
    }

    /// The latency a failure counts as (default 1 s; at least twice the current estimate).
    pub fn failure_penalty(mut self, penalty: Duration) -> Self {
        self.failure_penalty = penalty;
        self
    }

    /// Below this percentage of healthy backends, balance over all serving backends, healthy or
    /// not (Envoy's panic threshold; default 50, 0 disables): better to send some requests to a
    /// sick backend than all of them to the few healthy ones.
    pub fn panic_threshold(mut self, percent: u8) -> Self {
        self.panic_threshold = percent;
        self
    }

    /// The key used to hash request keys ([`Balancer::hash_key`]); default
    /// [`KeyHasher::DEFAULT`]. Use a secret key when clients choose the keys.
    pub fn hasher(mut self, hasher: KeyHasher) -> Self {
        self.hasher = hasher;
        self
    }

    /// Whether time-driven changes (an ejection's end, slow-start steps) are published by the
    /// process-wide background refresher thread (default `true`; only balancers with outlier
    /// detection or slow start register with it). With `false`, they are published by
    /// [`Balancer::refresh_if_stale`] / [`Balancer::refresh`] and by the next mutating call:
    /// for simulations and tests that must be deterministic. Picks never publish either way.
    pub fn background_refresh(mut self, on: bool) -> Self {
        self.background_refresh = on;
        self
    }

    /// Backends start unhealthy until their first passing active health check.
    pub fn start_unhealthy(mut self, yes: bool) -> Self {
        self.start_unhealthy = yes;
        self
    }

    /// Validates and builds.
    ///
    /// # Errors
    /// [`Error::DuplicateId`] for two backends with one id, [`Error::InvalidConfig`] (naming the
    /// setting and its value) for a panic threshold above 100, a zero latency decay, an
    /// [`OutlierDetection`] with a zero failure threshold or an ejection cap above 100%, or a
    /// [`SlowStart`] with a zero window, a `min_percent` outside 1..=100 or an aggression that is
    /// not finite and positive.
    pub fn build(self) -> Result<Balancer<B, P>>
    where
        B: Send + Sync + 'static,
    {
        if self.panic_threshold > 100 {
            return Err(Error::invalid(
                "panic_threshold",
                self.panic_threshold,
                "must be a percentage (0..=100)",
            ));
        }
        let mut control = Control::new(
            self.clock,
            self.outlier,
            self.slow_start,
            self.decay,
            self.failure_penalty,
        )?;
        control.count_total = self.policy.counts_total_in_flight();
        Balancer::from_parts(
            self.policy,
            control,
            self.hasher,
            self.panic_threshold,
            self.start_unhealthy,
            self.background_refresh,
            self.backends,
        )
    }
}

impl<B, P: fmt::Debug> fmt::Debug for BalancerBuilder<B, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BalancerBuilder")
            .field("policy", &self.policy)
            .field("backends", &self.backends.len())
            .field("outlier", &self.outlier)
            .field("slow_start", &self.slow_start)
            .field("panic_threshold", &self.panic_threshold)
            .finish_non_exhaustive()
    }
}
