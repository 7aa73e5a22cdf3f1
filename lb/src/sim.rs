//! A seeded, virtual-time discrete-event simulator for comparing policies on a workload
//! (feature `sim`).
//!
//! # Model
//! - **Clients**: requests arrive as a Poisson process whose rate is a fraction
//!   ([`Scenario::load`]) of the pool's nominal capacity (the sum of `workers / mean service
//!   time` over the servers present at time zero).
//! - **Servers**: each backend is a server with `c` workers (default 1) and an unbounded FIFO
//!   queue. A request's service time is exponential with the server's mean, or fixed; a
//!   [cold](Server::cold) server's mean starts `k` times higher and warms linearly (a request
//!   is served at the speed of the moment its service starts); a [failing](Server::fails_fast) server answers every request with an error after a
//!   fixed time. Servers can [join](Server::joins_at) and [leave](Server::leaves_at) mid-run.
//! - **Balancer**: a real [`Balancer`] over the servers, reading a [`MockClock`] that is set to
//!   each event's virtual time. Every arrival is one [`pick`](Balancer::pick); the [`Lease`] is
//!   held while the request queues and is served, then reported with
//!   [`success`](Lease::success)`(response time)` (queueing + service) or
//!   [`failure`](Lease::failure).
//! - **Determinism**: arrivals and demands come from the simulator's own SplitMix64 streams, and
//!   the randomised policies' thread generator is seeded with [`seed_thread_rng`] at the start of
//!   every run, so a run is a pure function of the scenario, the policy and the seed. Every policy
//!   sees the same arrival times and the same unit demands (common random numbers), so
//!   differences between policies are the policies', not noise.
//! - **No wall clock**: nothing sleeps; a 200,000-request run takes a fraction of a second in a
//!   release build.
//!
//! # Output
//! A [`Report`] per run: p50/p99/p99.9 of successful response times, throughput, errors, each
//! backend's share, offered utilisation and p99, and an `unstable` flag: some backend was offered
//! more work than it can do in the second half of the run (utilisation above 1), or the number of
//! requests in the system was still growing at the end. Once the last request has arrived the
//! simulation runs on until every queued request is answered, so the percentiles of an unstable
//! run include its backlog.
//!
//! # Scenarios
//! The standard scenarios ([`equal_pool`], [`mixed_speeds`], [`sick_backend`],
//! [`failing_backend`], [`cold_join`], [`outage_recovery`]) are shared by the `lb_sim` example and the tests;
//! [`Scenario::compare`] runs the standard set of policies on one of them.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::fmt::{self, Write as _};
use std::time::Duration;

use crate::{
    Backend, BackendId, Balancer, Context, Error, Lease, LeastConnections, LeastLatency, MockClock,
    OutlierDetection, Policy, PowerOfTwoChoices, Random, Result, RoundRobin, SlowStart,
    WeightedRoundRobin, seed_thread_rng,
};

/// Requests per scenario and policy in the standard scenarios.
pub const DEFAULT_REQUESTS: u64 = 200_000;

/// How a server's service demand is distributed.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum ServiceTime {
    /// Exponentially distributed with this mean (each server is an M/M/c queue).
    Exponential(Duration),
    /// Exactly this long, every time.
    Fixed(Duration),
}

impl ServiceTime {
    /// The mean service time.
    #[must_use]
    pub fn mean(&self) -> Duration {
        match *self {
            Self::Exponential(d) | Self::Fixed(d) => d,
        }
    }
}

/// A cold start: the mean starts `factor` times higher and warms linearly over `window`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Cold {
    factor: f64,
    window: Duration,
}

/// One simulated backend: its service time, workers, and optional misbehaviour.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use tierkit_lb::sim::Server;
///
/// let s = Server::exponential(Duration::from_millis(10)).workers(4).name("big");
/// assert_eq!(s.capacity(), 400.0); // requests per second when warm
/// ```
#[derive(Debug, Clone, PartialEq)]
#[must_use]
pub struct Server {
    name: String,
    service: ServiceTime,
    workers: u32,
    cold: Option<Cold>,
    fail_after: Option<Duration>,
    outage: Option<(Duration, Duration)>,
    joins_at: Duration,
    leaves_at: Option<Duration>,
}

impl Server {
    /// A one-worker server with exponential service times of mean `mean`.
    pub fn exponential(mean: Duration) -> Self {
        Self::with_service(ServiceTime::Exponential(mean))
    }

    /// A one-worker server that takes exactly `service` per request.
    pub fn fixed(service: Duration) -> Self {
        Self::with_service(ServiceTime::Fixed(service))
    }

    /// A one-worker server with the given service-time distribution.
    pub fn with_service(service: ServiceTime) -> Self {
        Self {
            name: String::new(),
            service,
            workers: 1,
            cold: None,
            fail_after: None,
            outage: None,
            joins_at: Duration::ZERO,
            leaves_at: None,
        }
    }

    /// Its name in reports (default `s<index>`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Requests served concurrently (default 1; 0 is treated as 1).
    pub fn workers(mut self, workers: u32) -> Self {
        self.workers = workers.max(1);
        self
    }

    /// Starts cold: its mean service time begins `factor` times higher (a cold cache, a JIT
    /// warming up) and falls linearly to the nominal mean over `window` after it joins.
    pub fn cold(mut self, factor: f64, window: Duration) -> Self {
        self.cold = Some(Cold {
            factor: if factor.is_finite() {
                factor.max(1.0)
            } else {
                1.0
            },
            window,
        });
        self
    }

    /// Fails fast: answers every request with an error after `after` (a worker is busy for that
    /// long). Its nominal service time still counts toward the pool's capacity, as a balancer
    /// configured for a healthy pool would assume.
    pub fn fails_fast(mut self, after: Duration) -> Self {
        self.fail_after = Some(after);
        self
    }

    /// Fails fast during an outage: a request whose service starts in `from..to` is answered
    /// with an error after 1 ms (or the [`fails_fast`](Self::fails_fast) time); before and after,
    /// the server is healthy. For ejection and recovery.
    pub fn fails_during(mut self, from: Duration, to: Duration) -> Self {
        self.outage = Some((from, to));
        self
    }

    /// Joins the pool at virtual time `at` (default: present from the start). A server that
    /// joins later does not count toward the capacity the arrival rate is derived from.
    pub fn joins_at(mut self, at: Duration) -> Self {
        self.joins_at = at;
        self
    }

    /// Leaves the pool at virtual time `at` (requests it holds are still answered).
    pub fn leaves_at(mut self, at: Duration) -> Self {
        self.leaves_at = Some(at);
        self
    }

    /// Requests per second it serves when warm: `workers / mean service time`.
    #[must_use]
    pub fn capacity(&self) -> f64 {
        let mean = self.service.mean().as_secs_f64();
        if mean > 0.0 {
            f64::from(self.workers) / mean
        } else {
            f64::INFINITY
        }
    }

    /// Whether a request whose service starts at `now` fails.
    fn fails_at(&self, now: u64) -> bool {
        self.fail_after.is_some()
            || self
                .outage
                .is_some_and(|(a, b)| (to_nanos(a)..to_nanos(b)).contains(&now))
    }

    /// The service time, in nanoseconds, of a request whose service starts at `now`,
    /// `since_join` nanoseconds after the server joined, given a unit-mean exponential draw
    /// `unit`.
    fn demand(&self, now: u64, since_join: u64, unit: f64) -> u64 {
        if self.fails_at(now) {
            return to_nanos(self.fail_after.unwrap_or(Duration::from_millis(1))).max(1);
        }
        let base = match self.service {
            ServiceTime::Exponential(m) => m.as_secs_f64() * unit,
            ServiceTime::Fixed(d) => d.as_secs_f64(),
        };
        let factor = self.cold.map_or(1.0, |c| {
            let window = c.window.as_secs_f64();
            let elapsed = nanos_to_secs(since_join);
            if elapsed >= window {
                1.0
            } else {
                1.0 + (c.factor - 1.0) * (1.0 - elapsed / window)
            }
        });
        secs_to_nanos(base * factor).max(1)
    }
}

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
    name: String,
    description: String,
    servers: Vec<Server>,
    load: f64,
    requests: u64,
    seed: u64,
    slow_start: Option<SlowStart>,
    outlier: Option<OutlierDetection>,
    notable: Option<usize>,
    window: Option<(Duration, Duration)>,
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
        let bad = |name, reason| Err(Error::InvalidConfig { name, reason });
        if !self.servers.iter().any(|s| s.joins_at.is_zero()) {
            return bad(
                "servers",
                "at least one server must be present at the start",
            );
        }
        if self.servers.iter().any(|s| s.service.mean().is_zero()) {
            return bad("servers", "service times must be > 0");
        }
        let rate = self.arrival_rate();
        if !(self.load > 0.0 && rate.is_finite() && rate > 0.0) {
            return bad("load", "must be > 0 (and the arrival rate finite)");
        }
        if self.requests == 0 {
            return bad("requests", "must be > 0");
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

/// One backend's part of a [`Report`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct BackendReport {
    /// Its name.
    pub name: String,
    /// Its id in the balancer (its index in the scenario).
    pub id: BackendId,
    /// Requests the balancer sent to it.
    pub picks: u64,
    /// Its share of all requests picked.
    pub share: f64,
    /// Requests it answered successfully.
    pub successes: u64,
    /// Requests it answered with an error.
    pub failures: u64,
    /// Work offered to it in the second half of the run (demand of the requests sent to it
    /// divided by its workers and the time it was a member): above 1 means its queue grows.
    pub utilisation: f64,
    /// The 99th percentile of its successful response times, if it answered any.
    pub p99: Option<Duration>,
    /// Its longest queue (requests waiting for a worker).
    pub max_queue: usize,
    /// Times outlier detection ejected it.
    pub ejections: u32,
    /// Its share of the requests that arrived in the scenario's [window](Scenario::window).
    pub window_share: Option<f64>,
}

/// The outcome of one policy on one scenario.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Report {
    /// The scenario's name.
    pub scenario: String,
    /// The policy's name ([`Policy::name`]).
    pub policy: String,
    /// The weights the balancer had.
    pub weighting: Weighting,
    /// Requests that arrived.
    pub requests: u64,
    /// Requests answered successfully.
    pub successes: u64,
    /// Requests answered with an error, plus picks that found no backend.
    pub errors: u64,
    /// Picks that found no backend (included in `errors`).
    pub rejected: u64,
    /// Median response time of successful requests (queueing + service).
    pub p50: Duration,
    /// 99th percentile response time of successful requests.
    pub p99: Duration,
    /// 99.9th percentile response time of successful requests.
    pub p999: Duration,
    /// The longest successful response time.
    pub max: Duration,
    /// Arrivals per virtual second.
    pub offered: f64,
    /// Successful responses per virtual second while requests were arriving.
    pub throughput: f64,
    /// Virtual time from the start to the last response.
    pub duration: Duration,
    /// Whether the pool could not keep up: a backend's utilisation above 1, or the number of
    /// requests in the system still growing at the end.
    pub unstable: bool,
    /// Whether the number of requests in the system grew from the third quarter of the
    /// arrivals to the last (part of `unstable`).
    pub backlog_growing: bool,
    /// Per backend, in id order (including backends that joined or left).
    pub backends: Vec<BackendReport>,
    /// The index of the scenario's notable backend, if any.
    pub notable: Option<usize>,
    /// The scenario's [window](Scenario::window), if any.
    pub window: Option<(Duration, Duration)>,
    /// The 99th percentile response time of the successful requests that arrived in the
    /// window.
    pub window_p99: Option<Duration>,
}

impl Report {
    /// The scenario's notable backend.
    #[must_use]
    pub fn notable_backend(&self) -> Option<&BackendReport> {
        self.notable.and_then(|i| self.backends.get(i))
    }

    /// The backend with this name.
    #[must_use]
    pub fn backend(&self, name: &str) -> Option<&BackendReport> {
        self.backends.iter().find(|b| b.name == name)
    }

    /// The largest share any backend got.
    #[must_use]
    pub fn max_share(&self) -> f64 {
        self.backends.iter().map(|b| b.share).fold(0.0, f64::max)
    }

    /// The largest utilisation any backend was offered.
    #[must_use]
    pub fn max_utilisation(&self) -> f64 {
        self.backends
            .iter()
            .map(|b| b.utilisation)
            .fold(0.0, f64::max)
    }
}

/// Formats reports of one scenario as a text table: policy, p50, p99, p99.9, throughput,
/// errors, unstable, the notable backend's share and p99 (or the largest share and utilisation
/// when the scenario has no notable backend), and the p99 of the scenario's window if it has one.
#[must_use]
pub fn table(reports: &[Report]) -> String {
    let mut out = String::new();
    let notable = reports
        .first()
        .and_then(Report::notable_backend)
        .map(|b| b.name.clone());
    let share_head = notable
        .as_ref()
        .map_or_else(|| "max share".to_owned(), |n| format!("{n} share"));
    let p99_head = notable
        .as_ref()
        .map_or_else(|| "max util".to_owned(), |n| format!("{n} p99"));
    let window_head = reports
        .first()
        .and_then(|r| r.window)
        .map(|(a, b)| format!("{}-{}s", a.as_secs(), b.as_secs()));
    let _ = write!(
        out,
        "{:<22} {:>10} {:>10} {:>10} {:>9} {:>7} {:>8} {:>12} {:>12}",
        "policy", "p50", "p99", "p99.9", "thr/s", "errors", "unstable", share_head, p99_head
    );
    if let Some(h) = &window_head {
        let _ = write!(out, " {:>12}", format!("p99 {h}"));
        if let Some(n) = &notable {
            let _ = write!(out, " {:>14}", format!("{n} share {h}"));
        }
    }
    out.push('\n');
    for r in reports {
        let (share, last) = match r.notable_backend() {
            Some(b) => (b.share, b.p99.map_or_else(|| "-".to_owned(), fmt_ms)),
            None => (r.max_share(), format!("{:.2}", r.max_utilisation())),
        };
        let label = if r.weighting == Weighting::Capacity && !r.policy.starts_with("weighted") {
            format!("{} (cap. w.)", r.policy)
        } else {
            r.policy.clone()
        };
        let _ = write!(
            out,
            "{:<22} {:>10} {:>10} {:>10} {:>9.0} {:>7} {:>8} {:>11.2}% {:>12}",
            label,
            fmt_ms(r.p50),
            fmt_ms(r.p99),
            fmt_ms(r.p999),
            r.throughput,
            r.errors,
            if r.unstable { "YES" } else { "no" },
            share * 100.0,
            last
        );
        if window_head.is_some() {
            let w = r.window_p99.map_or_else(|| "-".to_owned(), fmt_ms);
            let _ = write!(out, " {w:>12}");
            if let Some(share) = r.notable_backend().and_then(|b| b.window_share) {
                let _ = write!(out, " {:>13.2}%", share * 100.0);
            }
        }
        out.push('\n');
    }
    out
}

/// A duration in milliseconds, with precision to match its size.
fn fmt_ms(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1e3;
    if ms >= 10_000.0 {
        format!("{:.0}s", ms / 1e3)
    } else if ms >= 100.0 {
        format!("{ms:.0}ms")
    } else {
        format!("{ms:.1}ms")
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} / {}: p50 {} p99 {} p99.9 {} thr {:.0}/s errors {}{}",
            self.scenario,
            self.policy,
            fmt_ms(self.p50),
            fmt_ms(self.p99),
            fmt_ms(self.p999),
            self.throughput,
            self.errors,
            if self.unstable { " UNSTABLE" } else { "" }
        )
    }
}

// ---------------------------------------------------------------------------------------------
// The standard scenarios.

const fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A: 10 equal backends (exponential, 10 ms) at 70% load. Every sensible policy is stable here;
/// the load-aware ones cut the tail by avoiding momentarily long queues.
pub fn equal_pool() -> Scenario {
    Scenario::new("A: equal pool")
        .describe("10 equal backends (exp. 10 ms) at 70% load")
        .servers((0..10).map(|_| Server::exponential(ms(10))))
}

/// B: 8 backends of 10 ms and 2 of 20 ms at 70% of the total capacity (900 req/s offered
/// 630). Blind even splits overload the slow pair (1.4x their capacity).
pub fn mixed_speeds() -> Scenario {
    Scenario::new("B: mixed speeds")
        .describe("8 x 10 ms + 2 x 20 ms at 70% of total capacity")
        .servers((0..8).map(|_| Server::exponential(ms(10))))
        .servers((0..2).map(|i| Server::exponential(ms(20)).name(format!("slow{i}"))))
        .notable(8)
}

/// C: 9 backends of 10 ms and one sick one of 100 ms, at 70% of capacity. The sick backend can
/// take 10 req/s; an even split offers it 63.
pub fn sick_backend() -> Scenario {
    Scenario::new("C: one sick backend")
        .describe("9 x 10 ms + 1 x 100 ms at 70% of capacity")
        .servers((0..9).map(|_| Server::exponential(ms(10))))
        .server(Server::exponential(ms(100)).name("sick"))
        .notable(9)
}

/// D: 10 backends of 10 ms, one of which fails fast (an error after 1 ms), at 70% of the
/// nominal capacity, without outlier detection (the policy alone): an idle-looking backend is
/// a black hole for load-only policies.
pub fn failing_backend() -> Scenario {
    Scenario::new("D: failing backend")
        .describe("10 x 10 ms, one fails fast (error after 1 ms), no outlier detection")
        .servers((0..9).map(|_| Server::exponential(ms(10))))
        .server(
            Server::exponential(ms(10))
                .fails_fast(ms(1))
                .name("failing"),
        )
        .notable(9)
}

/// E: 9 backends of 10 ms at 700 req/s (78% of their capacity); at 10 s a tenth joins cold (10x
/// slower, warming linearly over 10 s). With `slow_start`, the balancer ramps the newcomer's
/// weight over 10 s (from 10%), which weighted and load-aware policies (WRR, P2C, least latency)
/// honour; unweighted ones (round robin, random, least connections) ignore it. The window
/// 10-30 s (the join, the warm-up and its aftermath) is reported separately.
pub fn cold_join(slow_start: bool) -> Scenario {
    let s = Scenario::new(if slow_start {
        "E: cold join, slow start on"
    } else {
        "E: cold join, slow start off"
    })
    .describe("9 x 10 ms at 700 req/s; at 10 s a cold backend joins (10x slower, warms over 10 s)")
    .servers((0..9).map(|_| Server::exponential(ms(10))))
    .server(
        Server::exponential(ms(10))
            .cold(10.0, Duration::from_secs(10))
            .joins_at(Duration::from_secs(10))
            .name("new"),
    )
    // 700 req/s: 70% of the capacity of the full pool of 10.
    .load(0.7 * 10.0 / 9.0)
    .notable(9)
    .window(Duration::from_secs(10), Duration::from_secs(30));
    if slow_start {
        s.slow_start(SlowStart::new(Duration::from_secs(10)))
    } else {
        s
    }
}

/// E with a shaped ramp: [`cold_join`] with slow start on, its weight following
/// `(elapsed / window)^(1 / aggression)` ([`SlowStart::aggression`]) instead of a straight line.
/// An aggression below 1 holds the newcomer back while it is slowest: with 0.25 (quartic) its
/// offered share stays under its warming capacity all the way (a linear ramp overtakes it by
/// the middle of the window).
pub fn cold_join_shaped(aggression: f64) -> Scenario {
    let mut s =
        cold_join(true).slow_start(SlowStart::new(Duration::from_secs(10)).aggression(aggression));
    s.name = format!("E: cold join, slow start aggression {aggression}");
    s
}

/// F: 10 backends of 10 ms at 70% load; one fails fast from 5 s to 10 s, with outlier
/// detection (5 consecutive failures eject for 2 s, then 4 s, ...). The window 15-25 s shows
/// whether the recovered backend gets its share back.
pub fn outage_recovery() -> Scenario {
    Scenario::new("F: outage and recovery")
        .describe(
            "10 x 10 ms; one fails fast from 5 s to 10 s; outlier detection (5 failures, 2 s)",
        )
        .servers((0..9).map(|_| Server::exponential(ms(10))))
        .server(
            Server::exponential(ms(10))
                .fails_during(Duration::from_secs(5), Duration::from_secs(10))
                .name("flaky"),
        )
        .outlier_detection(
            OutlierDetection::new()
                .consecutive_failures(5)
                .base_ejection(Duration::from_secs(2)),
        )
        .notable(9)
        .window(Duration::from_secs(15), Duration::from_secs(25))
}

/// Every standard scenario, in order: A, B, C, D, E without and with slow start (linear, then
/// quartic: aggression 0.25), F.
pub fn standard() -> Vec<Scenario> {
    vec![
        equal_pool(),
        mixed_speeds(),
        sick_backend(),
        failing_backend(),
        cold_join(false),
        cold_join(true),
        cold_join_shaped(0.25),
        outage_recovery(),
    ]
}

// ---------------------------------------------------------------------------------------------
// The engine.

/// SplitMix64 (Steele, Lea and Flood, 2014): the simulator's own generator.
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    #[allow(clippy::cast_precision_loss)]
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Exponential with mean 1.
    fn exp1(&mut self) -> f64 {
        -(1.0 - self.unit()).ln()
    }
}

fn to_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_precision_loss
)]
fn secs_to_nanos(s: f64) -> u64 {
    // Saturating float-to-int conversion is the intent.
    (s * 1e9).round() as u64
}

#[allow(clippy::cast_precision_loss)]
fn nanos_to_secs(n: u64) -> f64 {
    n as f64 / 1e9
}

/// A request in the system.
struct Job {
    arrival: u64,
    /// The unit-mean exponential draw that sizes it (scaled by the server when it starts).
    unit: f64,
    /// Whether it fails (decided when its service starts).
    fails: bool,
    server: usize,
    lease: Lease<usize>,
}

/// A server's live state.
#[derive(Default)]
struct State {
    queue: VecDeque<usize>,
    busy: u32,
    joined: u64,
    left: Option<u64>,
    picks: u64,
    successes: u64,
    failures: u64,
    late_demand: u64,
    window_picks: u64,
    max_queue: usize,
    times: Vec<u64>,
}

/// Event kinds, in the order they are handled at equal times.
const MEMBERSHIP: u8 = 0;
const COMPLETION: u8 = 1;

struct Sim<'a, P: Policy<usize>> {
    scenario: &'a Scenario,
    weighting: Weighting,
    lb: Balancer<usize, P>,
    clock: MockClock,
    weights: Vec<u32>,
    states: Vec<State>,
    jobs: Vec<Option<Job>>,
    free: Vec<usize>,
    in_system: usize,
    /// (time, kind, payload, sequence): payload is a job slot or a membership change index.
    events: BinaryHeap<Reverse<(u64, u8, u64, u64)>>,
    changes: Vec<(usize, bool)>,
    seq: u64,
    /// The window in nanoseconds (empty if none) and the response times of its requests.
    window: (u64, u64),
    window_times: Vec<u64>,
}

impl<'a, P: Policy<usize>> Sim<'a, P> {
    fn new(scenario: &'a Scenario, policy: P, weighting: Weighting) -> Result<Self> {
        let max_cap = scenario
            .servers
            .iter()
            .map(Server::capacity)
            .fold(0.0, f64::max);
        let weights: Vec<u32> = scenario
            .servers
            .iter()
            .map(|s| match weighting {
                Weighting::Equal => 1,
                Weighting::Capacity => {
                    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                    let w = (100.0 * s.capacity() / max_cap).round() as u32;
                    w.max(1)
                }
            })
            .collect();
        let clock = MockClock::new();
        let mut builder = Balancer::builder(policy).clock(clock.clone()).backends(
            scenario
                .servers
                .iter()
                .enumerate()
                .filter(|(_, s)| s.joins_at.is_zero())
                .map(|(i, _)| Backend::new(i as u64, i).weight(weights[i])),
        );
        if let Some(ss) = scenario.slow_start {
            builder = builder.slow_start(ss);
        }
        if let Some(od) = scenario.outlier {
            builder = builder.outlier_detection(od);
        }
        let lb = builder.build()?;
        let mut sim = Self {
            scenario,
            weighting,
            lb,
            clock,
            weights,
            states: scenario.servers.iter().map(|_| State::default()).collect(),
            jobs: Vec::new(),
            free: Vec::new(),
            in_system: 0,
            events: BinaryHeap::new(),
            changes: Vec::new(),
            seq: 0,
            window: scenario
                .window
                .map_or((0, 0), |(a, b)| (to_nanos(a), to_nanos(b))),
            window_times: Vec::new(),
        };
        for (i, s) in scenario.servers.iter().enumerate() {
            if !s.joins_at.is_zero() {
                sim.changes.push((i, true));
                sim.push(to_nanos(s.joins_at), MEMBERSHIP, sim.changes.len() - 1);
            }
            if let Some(at) = s.leaves_at {
                sim.changes.push((i, false));
                sim.push(to_nanos(at), MEMBERSHIP, sim.changes.len() - 1);
            }
        }
        Ok(sim)
    }

    fn push(&mut self, at: u64, kind: u8, payload: usize) {
        self.seq += 1;
        self.events
            .push(Reverse((at, kind, payload as u64, self.seq)));
    }

    fn run(mut self) -> Result<Report> {
        let sc = self.scenario;
        seed_thread_rng(sc.seed ^ 0x5deb_ece5_1bad_5eed);
        let mut arrivals_rng = SplitMix64(sc.seed ^ 0xa11c_e5ee_d000_0001);
        let mut demand_rng = SplitMix64(sc.seed ^ 0xde3a_4d5e_ed00_0002);
        let mean_gap = 1.0 / sc.arrival_rate();
        let n = sc.requests;
        let (half, three_q) = (n / 2, n - n / 4);
        let mut next_arrival = secs_to_nanos(mean_gap * arrivals_rng.exp1());
        let mut arrived = 0u64;
        let (mut mid_time, mut last_arrival) = (0u64, 0u64);
        let (mut q3_sum, mut q4_sum) = (0u128, 0u128);
        let mut rejected = 0u64;
        let mut done_while_arriving = 0u64;
        let mut last_event = 0u64;
        let mut all_times: Vec<u64> = Vec::with_capacity(usize::try_from(n).unwrap_or(0));
        let ctx = Context::new();

        loop {
            let heap_first = self.events.peek().map(|Reverse((t, ..))| *t);
            let from_heap = match heap_first {
                Some(t) => arrived >= n || t <= next_arrival,
                None => false,
            };
            if from_heap {
                let Some(Reverse((now, kind, payload, _))) = self.events.pop() else {
                    break;
                };
                self.clock.set_nanos(now);
                last_event = now;
                #[allow(clippy::cast_possible_truncation)]
                let payload = payload as usize;
                if kind == MEMBERSHIP {
                    self.change(payload, now)?;
                } else if self.complete(payload, now, &mut all_times) && arrived < n {
                    done_while_arriving += 1;
                }
                continue;
            }
            if arrived >= n {
                break;
            }
            // An arrival.
            let now = next_arrival;
            self.clock.set_nanos(now);
            last_event = now;
            if arrived == half {
                mid_time = now;
            }
            if arrived >= three_q {
                q4_sum += self.in_system as u128;
            } else if arrived >= half {
                q3_sum += self.in_system as u128;
            }
            // Drawn whether or not the pick succeeds: every policy sees the same sequence.
            let unit = demand_rng.exp1();
            match self.lb.pick(&ctx) {
                Ok(lease) => self.admit(lease, now, unit, arrived >= half),
                Err(_) => rejected += 1,
            }
            arrived += 1;
            last_arrival = now;
            next_arrival = now + secs_to_nanos(mean_gap * arrivals_rng.exp1()).max(1);
        }

        // Statistics.
        let total_workers: u64 = sc.servers.iter().map(|s| u64::from(s.workers)).sum();
        let q3_n = u128::from((three_q - half).max(1));
        let q4_n = u128::from((n - three_q).max(1));
        #[allow(clippy::cast_precision_loss)]
        let (q3, q4) = (q3_sum as f64 / q3_n as f64, q4_sum as f64 / q4_n as f64);
        #[allow(clippy::cast_precision_loss)]
        let backlog_growing = q4 > 1.25 * q3 + total_workers as f64;
        let stats = self.lb.stats();
        let picks_total: u64 = self.states.iter().map(|s| s.picks).sum();
        let window_total: u64 = self.states.iter().map(|s| s.window_picks).sum();
        let mut backends = Vec::with_capacity(self.states.len());
        for (i, (spec, st)) in sc.servers.iter().zip(&mut self.states).enumerate() {
            let from = mid_time.max(st.joined);
            let to = st.left.unwrap_or(last_arrival).min(last_arrival);
            let span = to.saturating_sub(from);
            #[allow(clippy::cast_precision_loss)]
            let utilisation = if span == 0 {
                0.0
            } else {
                st.late_demand as f64 / (f64::from(spec.workers) * span as f64)
            };
            st.times.sort_unstable();
            #[allow(clippy::cast_precision_loss)]
            let share = if picks_total == 0 {
                0.0
            } else {
                st.picks as f64 / picks_total as f64
            };
            let id = BackendId(i as u64);
            backends.push(BackendReport {
                name: if spec.name.is_empty() {
                    format!("s{i}")
                } else {
                    spec.name.clone()
                },
                id,
                picks: st.picks,
                share,
                successes: st.successes,
                failures: st.failures,
                utilisation,
                p99: (!st.times.is_empty())
                    .then(|| Duration::from_nanos(quantile(&st.times, 0.99))),
                max_queue: st.max_queue,
                ejections: stats
                    .backends
                    .iter()
                    .find(|b| b.id == id)
                    .map_or(0, |b| b.ejections),
                #[allow(clippy::cast_precision_loss)]
                window_share: (window_total > 0)
                    .then(|| st.window_picks as f64 / window_total as f64),
            });
        }
        all_times.sort_unstable();
        let q = |p| Duration::from_nanos(quantile(&all_times, p));
        let successes: u64 = self.states.iter().map(|s| s.successes).sum();
        let failures: u64 = self.states.iter().map(|s| s.failures).sum();
        let max_util = backends.iter().map(|b| b.utilisation).fold(0.0, f64::max);
        let arriving_secs = nanos_to_secs(last_arrival);
        #[allow(clippy::cast_precision_loss)]
        let (offered, throughput) = if arriving_secs > 0.0 {
            (
                n as f64 / arriving_secs,
                done_while_arriving as f64 / arriving_secs,
            )
        } else {
            (0.0, 0.0)
        };
        Ok(Report {
            scenario: sc.name.clone(),
            policy: self.lb.policy().name().to_owned(),
            weighting: self.weighting,
            requests: n,
            successes,
            errors: failures + rejected,
            rejected,
            p50: q(0.5),
            p99: q(0.99),
            p999: q(0.999),
            max: all_times
                .last()
                .map_or(Duration::ZERO, |&t| Duration::from_nanos(t)),
            offered,
            throughput,
            duration: Duration::from_nanos(last_event),
            unstable: max_util > 1.0 || backlog_growing,
            backlog_growing,
            backends,
            notable: sc.notable,
            window: sc.window,
            window_p99: (!self.window_times.is_empty()).then(|| {
                self.window_times.sort_unstable();
                Duration::from_nanos(quantile(&self.window_times, 0.99))
            }),
        })
    }

    /// A picked request enters its server: straight to a free worker, else the queue.
    fn admit(&mut self, lease: Lease<usize>, now: u64, unit: f64, late: bool) {
        let server = *lease;
        let spec = &self.scenario.servers[server];
        let st = &mut self.states[server];
        st.picks += 1;
        if late {
            // Offered work as the server would take it now (a cold server's demand is set when
            // service starts; late in the run every server is warm).
            st.late_demand += spec.demand(now, now.saturating_sub(st.joined), unit);
        }
        if (self.window.0..self.window.1).contains(&now) {
            st.window_picks += 1;
        }
        let job = Job {
            arrival: now,
            unit,
            fails: spec.fails_at(now),
            server,
            lease,
        };
        let slot = match self.free.pop() {
            Some(slot) => {
                self.jobs[slot] = Some(job);
                slot
            }
            None => {
                self.jobs.push(Some(job));
                self.jobs.len() - 1
            }
        };
        self.in_system += 1;
        let st = &mut self.states[server];
        if st.busy < spec.workers {
            st.busy += 1;
            let demand = spec.demand(now, now.saturating_sub(st.joined), unit);
            self.push(now + demand, COMPLETION, slot);
        } else {
            st.queue.push_back(slot);
            st.max_queue = st.max_queue.max(st.queue.len());
        }
    }

    /// A request finishes: report it on its lease and start the next queued one. Returns whether
    /// it succeeded.
    fn complete(&mut self, slot: usize, now: u64, all_times: &mut Vec<u64>) -> bool {
        let Some(job) = self.jobs[slot].take() else {
            return false;
        };
        self.free.push(slot);
        self.in_system -= 1;
        let spec = &self.scenario.servers[job.server];
        let st = &mut self.states[job.server];
        let response = now - job.arrival;
        let ok = !job.fails;
        if ok {
            job.lease.success(Duration::from_nanos(response));
            st.successes += 1;
            st.times.push(response);
            all_times.push(response);
            if (self.window.0..self.window.1).contains(&job.arrival) {
                self.window_times.push(response);
            }
        } else {
            job.lease.failure();
            st.failures += 1;
        }
        match st.queue.pop_front() {
            Some(next) => {
                let mut unit = 0.0;
                if let Some(j) = self.jobs[next].as_mut() {
                    j.fails = spec.fails_at(now);
                    unit = j.unit;
                }
                let demand = spec.demand(now, now.saturating_sub(st.joined), unit);
                self.push(now + demand, COMPLETION, next);
            }
            None => st.busy -= 1,
        }
        ok
    }

    fn change(&mut self, index: usize, now: u64) -> Result<()> {
        let (server, join) = self.changes[index];
        let id = BackendId(server as u64);
        if join {
            self.states[server].joined = now;
            self.lb
                .add(Backend::new(id, server).weight(self.weights[server]))
        } else {
            self.states[server].left = Some(now);
            self.lb.remove(id)
        }
    }
}

/// The `p` quantile (nearest rank) of sorted `v`; 0 for an empty slice.
fn quantile(v: &[u64], p: f64) -> u64 {
    if v.is_empty() {
        return 0;
    }
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let rank = (p * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cold_server_warms_linearly() {
        let s = Server::fixed(ms(10)).cold(5.0, Duration::from_secs(10));
        assert_eq!(s.demand(0, 0, 1.0), 50_000_000);
        assert_eq!(s.demand(0, 5_000_000_000, 1.0), 30_000_000);
        assert_eq!(s.demand(0, 10_000_000_000, 1.0), 10_000_000);
    }

    #[test]
    fn outage_fails_fast_inside_its_window_only() {
        let s = Server::fixed(ms(10)).fails_during(Duration::from_secs(1), Duration::from_secs(2));
        assert!(!s.fails_at(999_999_999));
        assert!(s.fails_at(1_000_000_000));
        assert_eq!(s.demand(1_500_000_000, 0, 1.0), 1_000_000);
        assert!(!s.fails_at(2_000_000_000));
        assert_eq!(s.demand(2_000_000_000, 0, 1.0), 10_000_000);
    }

    #[test]
    fn quantile_is_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(quantile(&v, 0.5), 50);
        assert_eq!(quantile(&v, 0.99), 99);
        assert_eq!(quantile(&v, 1.0), 100);
        assert_eq!(quantile(&[], 0.5), 0);
    }
}
