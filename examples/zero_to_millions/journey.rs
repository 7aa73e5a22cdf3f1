//! The journey's core, shared by `main.rs` and `tests/zero_to_millions.rs`: [`Options`],
//! [`run`] and the typed [`Report`] with one result per stage.
//!
//! Every module of the example is declared here with a `#[path]` relative to this file, so the
//! integration test can include this one file and get the whole journey.

// Pub items are the journey's interface to main.rs and the test (both private module trees).
#![allow(unreachable_pub)]
// The typed per-stage results are read by the integration test; the example prints the rows.
#![allow(dead_code)]
// Counts and durations become rates and percentages for display; all far below 2^52.
#![allow(
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]

#[path = "db.rs"]
pub mod db;
#[path = "report.rs"]
pub mod report;
#[path = "stage_data.rs"]
pub mod stage_data;
#[path = "stage_queue.rs"]
pub mod stage_queue;
#[path = "stage_shard.rs"]
pub mod stage_shard;
#[path = "stage_web.rs"]
pub mod stage_web;
#[path = "web.rs"]
pub mod web;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use tierkit::core::SplitMix64;
use tierkit_testkit::mix;

/// A boxed error: the journey stops at the first stage that cannot run.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// The journey's result type.
pub type Result<T, E = BoxError> = std::result::Result<T, E>;

/// What to run and how big.
#[derive(Debug, Clone)]
pub struct Options {
    /// Tiny sizes for CI (a debug build on two loaded cores).
    pub quick: bool,
    /// Concurrent simulated users (one tokio task each).
    pub users: usize,
    /// Requests per stage (split over the users).
    pub requests: u64,
    /// User profiles in the database.
    pub profiles: u64,
    /// The longest a stage's load may run; a stage that hits it stops early.
    pub duration: Duration,
    /// Seed of the simulated workload: the same seed gives the same requests.
    pub seed: u64,
    /// Stages to run (empty: all). Stage 9 gathers the others, so it runs them all.
    pub stages: Vec<u8>,
    /// Progress bars on stderr.
    pub progress: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            quick: false,
            users: 64,
            requests: 60_000,
            profiles: 20_000,
            duration: Duration::from_secs(20),
            seed: 42,
            stages: Vec::new(),
            progress: false,
        }
    }
}

impl Options {
    /// The CI-sized journey.
    #[must_use]
    pub fn quick(seed: u64) -> Self {
        Options {
            quick: true,
            users: 16,
            requests: 2_000,
            profiles: 2_000,
            duration: Duration::from_secs(15),
            seed,
            ..Options::default()
        }
    }

    /// Whether stage `n` runs.
    #[must_use]
    pub fn runs(&self, n: u8) -> bool {
        self.stages.is_empty() || self.stages.contains(&n) || self.stages.contains(&9)
    }
}

/// One row of the summary table: what a stage changed and what it measured.
#[derive(Debug, Clone, Default)]
pub struct Row {
    /// Stage number (1..=10).
    pub stage: u8,
    /// Short name.
    pub name: String,
    /// What changed, in one line.
    pub changed: String,
    /// Requests completed.
    pub requests: u64,
    /// Wall time of the load.
    pub elapsed: Duration,
    /// Completed requests per second.
    pub throughput: f64,
    /// Median request latency.
    pub p50: Duration,
    /// 99th percentile request latency.
    pub p99: Duration,
    /// Database queries per second, per node (name, q/s).
    pub db_qps: Vec<(String, f64)>,
    /// Cache hit ratio, where a cache is involved.
    pub hit_ratio: Option<f64>,
    /// Requests that failed as the user saw them.
    pub errors: u64,
    /// What was lost (writes, sessions, jobs, rows; per stage).
    pub lost: u64,
    /// The stage's story in a few measured lines.
    pub notes: Vec<String>,
}

/// Everything a run measured: a typed result per stage that ran.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Options of the run.
    pub seed: u64,
    /// The summary table.
    pub rows: Vec<Row>,
    /// Stage 1.
    pub single: Option<stage_web::Single>,
    /// Stage 2.
    pub balanced: Option<stage_web::Balanced>,
    /// Stage 3.
    pub replication: Option<stage_data::Replication>,
    /// Stage 4.
    pub cache: Option<stage_data::CacheTier>,
    /// Stage 5.
    pub cdn: Option<stage_data::Cdn>,
    /// Stage 6.
    pub sessions: Option<stage_web::Sessions>,
    /// Stage 7.
    pub multi_dc: Option<stage_web::MultiDc>,
    /// Stage 8.
    pub queue: Option<stage_queue::PhotoQueue>,
    /// Stage 9.
    pub dashboard: Option<report::Dashboard>,
    /// Stage 10.
    pub sharding: Option<stage_shard::Sharding>,
    /// Wall time of the whole run.
    pub elapsed: Duration,
}

/// One component's counter, for the stage 9 dashboard.
#[derive(Debug, Clone)]
pub struct Metric {
    /// Stage that owned the component.
    pub stage: u8,
    /// Component (e.g. `lb web`, `replica-set`, `cache lru`).
    pub component: String,
    /// Counters, `name=value`.
    pub values: Vec<(String, String)>,
}

/// Runs the journey.
///
/// # Errors
/// The first error of a stage (a database, queue or routing error the journey cannot absorb).
pub fn run(opts: &Options) -> Result<Report> {
    let started = Instant::now();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let dir = tempfile::Builder::new()
        .prefix("tierkit-zero-to-millions-")
        .tempdir()?;
    let mut report = Report {
        seed: opts.seed,
        ..Report::default()
    };
    let mut metrics: Vec<Metric> = Vec::new();
    if opts.runs(1) {
        let s = rt.block_on(stage_web::single(
            opts,
            &sub(dir.path(), "s1")?,
            &mut metrics,
        ))?;
        report.rows.push(s.row.clone());
        report.single = Some(s);
    }
    if opts.runs(2) {
        let s = rt.block_on(stage_web::balanced(
            opts,
            &sub(dir.path(), "s2")?,
            &mut metrics,
        ))?;
        report.rows.push(s.row.clone());
        report.balanced = Some(s);
    }
    if opts.runs(3) {
        let s = rt.block_on(stage_data::replication(
            opts,
            &sub(dir.path(), "s3")?,
            &mut metrics,
        ))?;
        report.rows.push(s.row.clone());
        report.replication = Some(s);
    }
    if opts.runs(4) {
        let s = rt.block_on(stage_data::cache_tier(
            opts,
            &sub(dir.path(), "s4")?,
            &mut metrics,
        ))?;
        report.rows.push(s.row.clone());
        report.cache = Some(s);
    }
    if opts.runs(5) {
        let s = rt.block_on(stage_data::cdn(opts, &sub(dir.path(), "s5")?, &mut metrics))?;
        report.rows.push(s.row.clone());
        report.cdn = Some(s);
    }
    if opts.runs(6) {
        let s = rt.block_on(stage_web::sessions(opts, &mut metrics))?;
        report.rows.push(s.row.clone());
        report.sessions = Some(s);
    }
    if opts.runs(7) {
        let s = rt.block_on(stage_web::multi_dc(
            opts,
            &sub(dir.path(), "s7")?,
            &mut metrics,
        ))?;
        report.rows.push(s.row.clone());
        report.multi_dc = Some(s);
    }
    if opts.runs(8) {
        let s = rt.block_on(stage_queue::photo_queue(
            opts,
            &sub(dir.path(), "s8")?,
            &mut metrics,
        ))?;
        report.rows.push(s.row.clone());
        report.queue = Some(s);
    }
    let mut dashboard_at = None;
    if opts.runs(9) {
        // Filled in after stage 10 so that it gathers every component.
        dashboard_at = Some(report.rows.len());
    }
    if opts.runs(10) {
        let s = rt.block_on(stage_shard::sharding(
            opts,
            &sub(dir.path(), "s10")?,
            &mut metrics,
        ))?;
        report.rows.push(s.row.clone());
        report.sharding = Some(s);
    }
    if let Some(at) = dashboard_at {
        let d = report::dashboard(metrics);
        report.rows.insert(at, d.row.clone());
        report.dashboard = Some(d);
    }
    rt.shutdown_timeout(Duration::from_secs(2));
    report.elapsed = started.elapsed();
    Ok(report)
}

// ---------------------------------------------------------------------------------------------
// Shared helpers: temp dirs, the deterministic workload, load phases, latency statistics.

/// A fresh subdirectory of the run's temporary directory (one per stage).
fn sub(dir: &Path, name: &str) -> Result<PathBuf> {
    let p = dir.join(name);
    std::fs::create_dir_all(&p)?;
    Ok(p)
}

/// The deterministic source of every simulated decision: tierkit-core's SplitMix64, seeded per
/// stream so that each user of each stage draws its own reproducible sequence.
#[derive(Debug, Clone)]
pub struct Rng(SplitMix64);

impl Rng {
    /// A generator for one stream, e.g. `(seed, stage, user)`.
    #[must_use]
    pub fn new(seed: u64, stream: &[u64]) -> Self {
        let mut s = seed ^ 0x5851_f42d_4c95_7f2d;
        for &x in stream {
            s = mix(s ^ x.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        }
        Rng(SplitMix64::new(s))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Uniform in `[0, 1)`.
    pub fn next_f64(&mut self) -> f64 {
        self.0.next_f64()
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.0.below(n.max(1))
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.next_f64() < p
    }
}

/// Zipf-distributed ids `0..n` (exponent `s`): popular profiles are read far more often than the
/// long tail, as on every social site. Ranks come from testkit's sampler and are scattered over
/// ids by a fixed permutation so that popularity is not `id` order (which would favour one
/// `id % 4` shard).
#[derive(Debug)]
pub struct Zipf {
    ranks: tierkit_testkit::Zipf,
}

impl Zipf {
    /// Ranks `0..n`, exponent `s`.
    #[must_use]
    pub fn new(n: u64, s: f64) -> Self {
        Zipf {
            ranks: tierkit_testkit::Zipf::new(n as usize, s),
        }
    }

    /// An id; the id of rank 0 is the most popular.
    pub fn sample(&self, rng: &mut Rng) -> u64 {
        scatter(self.ranks.sample(&mut rng.0), self.ranks.len() as u64)
    }
}

/// A fixed bijection on `0..n`.
#[must_use]
pub fn scatter(x: u64, n: u64) -> u64 {
    let mut a = 7_919u64;
    while gcd(a, n) != 1 {
        a += 2;
    }
    (x.wrapping_mul(a) + 13) % n
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Shared progress of one stage's load: counts completed requests, fires events at fixed
/// fractions of them ("kill server 2 after 30% of the requests"), and stops at the time cap.
#[derive(Debug)]
pub struct Load {
    total: u64,
    done: AtomicU64,
    started: Instant,
    cap: Duration,
    bar: ProgressBar,
    verbose: bool,
    name: String,
}

impl Load {
    /// A load of `total` requests for stage `stage`.
    #[must_use]
    pub fn new(opts: &Options, stage: u8, name: &str, total: u64) -> Arc<Self> {
        let bar = if opts.progress {
            let bar = ProgressBar::new(total);
            if let Ok(style) = ProgressStyle::with_template(
                "{prefix:>9} {bar:30.cyan/blue} {pos:>6}/{len:6} {elapsed:>4} {msg}",
            ) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_prefix(format!("stage {stage:>2}"));
            bar.set_message(name.to_string());
            bar
        } else {
            ProgressBar::hidden()
        };
        Arc::new(Load {
            total,
            done: AtomicU64::new(0),
            started: Instant::now(),
            cap: opts.duration,
            bar,
            verbose: opts.progress,
            name: name.to_string(),
        })
    }

    /// Requests each of `users` users makes.
    #[must_use]
    pub fn per_user(&self, users: usize) -> u64 {
        self.total.div_ceil(users as u64)
    }

    /// Whether the users should stop early: the time cap is reached. (Otherwise every user
    /// makes exactly its share of requests, so the same seed gives the same requests.)
    #[must_use]
    pub fn over(&self) -> bool {
        self.started.elapsed() >= self.cap
    }

    /// The load's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the time cap is reached.
    #[must_use]
    pub fn timed_out(&self) -> bool {
        self.started.elapsed() >= self.cap
    }

    /// Counts one completed request; returns how many are complete now.
    pub fn finish_one(&self) -> u64 {
        self.bar.inc(1);
        self.done.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// The request count at which an event `fraction` into the load fires.
    #[must_use]
    pub fn at(&self, fraction: f64) -> u64 {
        ((self.total as f64 * fraction) as u64).max(1)
    }

    /// Completed requests.
    #[must_use]
    pub fn done(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }

    /// Time since the load started.
    #[must_use]
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Ends the progress bar with a message.
    pub fn finish(&self, msg: String) {
        self.bar.finish_with_message(msg);
    }

    /// Prints a line above the progress bar (or to stdout when stderr is not a terminal);
    /// silent without progress output.
    pub fn say(&self, line: String) {
        if !self.verbose {
        } else if self.bar.is_hidden() {
            println!("{line}");
        } else {
            self.bar.println(line);
        }
    }
}

/// What users measured: latencies (an HDR histogram, microseconds, 3 significant digits) and
/// failures. Merged over the user tasks.
#[derive(Debug, Clone)]
pub struct Tally {
    /// Request latencies, microseconds.
    pub lat_us: Histogram<u64>,
    /// Requests that failed as the user saw them.
    pub errors: u64,
}

impl Default for Tally {
    fn default() -> Self {
        Tally {
            // Auto-resizing, so no latency is ever out of range.
            lat_us: Histogram::new(3).expect("invariant: 3 significant digits is valid"),
            errors: 0,
        }
    }
}

impl Tally {
    /// Records one request that started at `t0`.
    pub fn record(&mut self, t0: Instant) {
        let us = u64::try_from(t0.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.lat_us.saturating_record(us);
    }

    /// Requests recorded.
    #[must_use]
    pub fn count(&self) -> u64 {
        self.lat_us.len()
    }

    /// Adds another tally.
    pub fn merge(&mut self, other: Tally) {
        // Both histograms auto-resize, so adding cannot go out of range.
        let _ = self.lat_us.add(&other.lat_us);
        self.errors += other.errors;
    }

    /// (p50, p99) of the recorded latencies (zero when nothing was recorded).
    #[must_use]
    pub fn percentiles(&self) -> (Duration, Duration) {
        if self.lat_us.is_empty() {
            return (Duration::ZERO, Duration::ZERO);
        }
        let q = |p: f64| Duration::from_micros(self.lat_us.value_at_quantile(p));
        (q(0.50), q(0.99))
    }

    /// Fills a row's request count, throughput and percentiles from this tally.
    pub fn fill(&self, row: &mut Row, elapsed: Duration) {
        row.requests = self.count();
        row.elapsed = elapsed;
        row.throughput = row.requests as f64 / elapsed.as_secs_f64().max(1e-9);
        (row.p50, row.p99) = self.percentiles();
        row.errors = self.errors;
    }
}

/// Spawns `users` tasks running `user(u)` and merges what they return.
pub async fn run_users<T, F, Fut>(users: usize, user: F) -> Result<Vec<T>>
where
    T: Send + 'static,
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = T> + Send + 'static,
{
    let tasks: Vec<_> = (0..users).map(|u| tokio::spawn(user(u))).collect();
    let mut out = Vec::with_capacity(users);
    for t in tasks {
        out.push(t.await?);
    }
    Ok(out)
}

/// Queries per second of each database node over `elapsed`.
#[must_use]
pub fn db_rates(nodes: &[(String, u64)], elapsed: Duration) -> Vec<(String, f64)> {
    nodes
        .iter()
        .map(|(n, q)| (n.clone(), *q as f64 / elapsed.as_secs_f64().max(1e-9)))
        .collect()
}

/// `part / whole`, 0 when `whole` is 0.
#[must_use]
pub fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// A path's parent exists (for `--report`).
pub fn ensure_parent(path: &Path) -> std::io::Result<()> {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => std::fs::create_dir_all(p),
        _ => Ok(()),
    }
}
