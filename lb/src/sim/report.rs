//! [`Report`]s of simulation runs and the text [`table`] of them.

#[cfg(doc)]
use super::Scenario;
#[cfg(doc)]
use crate::Policy;
use std::fmt::{self, Write as _};
use std::time::Duration;

use super::Weighting;
use crate::BackendId;

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
    /// Whether the pool could not keep up: a backend's utilisation above 1 (by more than three
    /// standard deviations of its sampled demand), or the number of requests in the system
    /// still growing at the end.
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
