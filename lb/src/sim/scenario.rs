//! [`Scenario`]: a workload (servers, load, length, seed) and how to run policies on it.

#[cfg(doc)]
use super::{cold_join, equal_pool, failing_backend, mixed_speeds, outage_recovery, sick_backend};
#[cfg(doc)]
use crate::seed_thread_rng;
use std::time::Duration;

use super::engine::Sim;
use super::{Report, Server};
use crate::{
    Error, LeastConnections, LeastLatency, OutlierDetection, Policy, PowerOfTwoChoices, Random,
    Result, RoundRobin, SlowStart, WeightedRoundRobin,
};

/// Requests per scenario and policy in the standard scenarios.
pub const DEFAULT_REQUESTS: u64 = 200_000;

/// Which weights the balancer gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Weighting {
    /// Every backend has weight 1.
    Equal,
    /// Weights proportional to each server's nominal (warm) capacity, as an operator who knows
    /// the hardware would configure them (weight 100 for the largest).
    Capacity,
}

/// A workload: servers, load, length and seed. Build one, or take a standard one
/// ([`equal_pool`], [`mixed_speeds`], [`sick_backend`], [`failing_backend`], [`cold_join`]),
/// then [`run`](Scenario::run) policies on it.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use tierkit_lb::sim::{Scenario, Server, Weighting};
/// use tierkit_lb::{PowerOfTwoChoices, RoundRobin};
///
/// let ms = Duration::from_millis;
/// let scenario = Scenario::new("one slow server")
///     .servers((0..4).map(|_| Server::exponential(ms(10))))
///     .server(Server::exponential(ms(40)).name("slow"))
///     .load(0.7)
///     .requests(5_000)
///     .seed(7);
///
/// let rr = scenario.run(RoundRobin::new(), Weighting::Equal)?;
/// let p2c = scenario.run(PowerOfTwoChoices::new(), Weighting::Equal)?;
/// assert!(rr.unstable); // the slow server gets 1/5 of the requests, 1.4x its capacity
/// assert!(!p2c.unstable);
/// assert!(p2c.p99 < rr.p99);
/// assert!(p2c.backend("slow").unwrap().share < 0.2);
/// // Deterministic: the same scenario and policy give the same report.
/// assert_eq!(p2c, scenario.run(PowerOfTwoChoices::new(), Weighting::Equal)?);
/// # Ok::<(), tierkit_lb::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
#[must_use]
pub struct Scenario {
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) servers: Vec<Server>,
    pub(crate) load: f64,
    pub(crate) requests: u64,
    pub(crate) seed: u64,
    pub(crate) slow_start: Option<SlowStart>,
    pub(crate) outlier: Option<OutlierDetection>,
    pub(crate) notable: Option<usize>,
    pub(crate) window: Option<(Duration, Duration)>,
}

impl Scenario {
    /// An empty scenario at 70% load, [`DEFAULT_REQUESTS`] requests, seed 1, no slow start and
    /// no outlier detection.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            description: String::new(),
            servers: Vec::new(),
            load: 0.7,
            requests: DEFAULT_REQUESTS,
            seed: 1,
            slow_start: None,
            outlier: None,
            notable: None,
            window: None,
        }
    }

    /// The same scenario under another name.
    pub fn rename(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// A one-line description for reports.
    pub fn describe(mut self, text: impl Into<String>) -> Self {
        self.description = text.into();
        self
    }

    /// Adds a server (its id is its position, starting at 0).
    pub fn server(mut self, server: Server) -> Self {
        self.servers.push(server);
        self
    }

    /// Adds servers.
    pub fn servers(mut self, servers: impl IntoIterator<Item = Server>) -> Self {
        self.servers.extend(servers);
        self
    }

    /// The arrival rate as a fraction of the nominal capacity of the servers present at the
    /// start (default 0.7).
    pub fn load(mut self, load: f64) -> Self {
        self.load = load;
        self
    }

    /// Requests per run (default [`DEFAULT_REQUESTS`]).
    pub fn requests(mut self, n: u64) -> Self {
        self.requests = n;
        self
    }

    /// The seed of arrivals, demands and the policies' thread generator (default 1).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Gives the balancer slow start.
    pub fn slow_start(mut self, slow_start: SlowStart) -> Self {
        self.slow_start = Some(slow_start);
        self
    }

    /// Gives the balancer passive outlier detection.
    pub fn outlier_detection(mut self, od: OutlierDetection) -> Self {
        self.outlier = Some(od);
        self
    }

    /// Marks the server at `index` as the one reports single out (the sick one, the new one).
    pub fn notable(mut self, index: usize) -> Self {
        self.notable = Some(index);
        self
    }

    /// A window of virtual time to report on separately ([`Report::window_p99`]): the requests
    /// arriving in `from..to` (a transition such as a join or a failure).
    pub fn window(mut self, from: Duration, to: Duration) -> Self {
        self.window = Some((from, to));
        self
    }

    /// The scenario's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The scenario's description.
    #[must_use]
    pub fn description(&self) -> &str {
        &self.description
    }

    /// The servers, in id order.
    pub fn server_specs(&self) -> &[Server] {
        &self.servers
    }

    /// Requests per run.
    #[must_use]
    pub fn request_count(&self) -> u64 {
        self.requests
    }

    /// The index of the notable server, if any.
    #[must_use]
    pub fn notable_index(&self) -> Option<usize> {
        self.notable
    }

    /// Arrivals per second: the load times the nominal capacity of the servers present at the
    /// start.
    #[must_use]
    pub fn arrival_rate(&self) -> f64 {
        let capacity: f64 = self
            .servers
            .iter()
            .filter(|s| s.joins_at.is_zero())
            .map(Server::capacity)
            .sum();
        self.load * capacity
    }

    fn validate(&self) -> Result<()> {
        if !self.servers.iter().any(|s| s.joins_at.is_zero()) {
            return Err(Error::invalid(
                "servers",
                "none at time 0",
                "at least one server must be present at the start",
            ));
        }
        if let Some(s) = self.servers.iter().find(|s| s.service.mean().is_zero()) {
            return Err(Error::invalid(
                "servers",
                format!("{:?}", s.service),
                "service times must be > 0",
            ));
        }
        let rate = self.arrival_rate();
        if !(self.load > 0.0 && rate.is_finite() && rate > 0.0) {
            return Err(Error::invalid(
                "load",
                self.load,
                "must be > 0 (and the arrival rate finite)",
            ));
        }
        if self.requests == 0 {
            return Err(Error::invalid("requests", 0, "must be > 0"));
        }
        Ok(())
    }

    /// Runs `policy` over this workload, on the calling thread (whose policy generator it
    /// reseeds with [`seed_thread_rng`]).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a scenario without a server at the start, a zero service
    /// time, a load that is not positive or zero requests; the balancer's own errors (for
    /// example an invalid slow-start window).
    pub fn run<P: Policy<usize>>(&self, policy: P, weighting: Weighting) -> Result<Report> {
        self.validate()?;
        Sim::new(self, policy, weighting)?.run()
    }

    /// Runs the standard set of policies: round robin, random, least connections (a full scan:
    /// least request), P2C least request and least latency with equal weights, and weighted
    /// round robin with [capacity](Weighting::Capacity) weights.
    ///
    /// # Errors
    /// As [`run`](Self::run).
    pub fn compare(&self) -> Result<Vec<Report>> {
        Ok(vec![
            self.run(RoundRobin::new(), Weighting::Equal)?,
            self.run(Random::new(), Weighting::Equal)?,
            self.run(LeastConnections::new(), Weighting::Equal)?,
            self.run(PowerOfTwoChoices::new(), Weighting::Equal)?,
            self.run(LeastLatency::new(), Weighting::Equal)?,
            self.run(WeightedRoundRobin::new(), Weighting::Capacity)?,
        ])
    }
}
