//! The default-policy table: every candidate policy in the seven situations (a)-(g), with each
//! p99 as a ratio to the full-information policy's.

use std::fmt::Write as _;

use super::{Report, Scenario, Weighting, situations};
use crate::{
    LeastConnections, LeastLatency, PowerOfTwoChoices, Random, Result, RoundRobin,
    WeightedRoundRobin,
};

/// The p99 bound of the recommended policy, as a multiple of the full-information policy's.
pub const P99_BOUND: f64 = 1.2;
/// The error-rate bound with a fast-failing backend (situation (e)), as a fraction.
pub const ERROR_BOUND: f64 = 0.002;

/// Every situation with the reports of every candidate policy, the full-information reference
/// ([`LeastLatency::full_scan`]) second.
#[derive(Debug, Clone)]
pub struct SituationRun {
    /// The situation.
    pub scenario: Scenario,
    /// One report per policy, in the order of [`SITUATION_POLICIES`].
    pub reports: Vec<Report>,
}

/// The labels of the policies [`run_situations`] compares, in order.
pub const SITUATION_POLICIES: [&str; 9] = [
    "least_latency (default)",
    "peak EWMA, full scan (ref.)",
    "least_latency, 2 choices",
    "least_latency, 8 choices",
    "p2c least request",
    "least connections (scan)",
    "round robin",
    "random",
    "smooth WRR (cap. weights)",
];

/// Runs every policy of [`SITUATION_POLICIES`] on every situation of [`situations`], with
/// `requests` requests (ten times as many for the pool of 1,000) and `seed`.
///
/// # Errors
/// As [`Scenario::run`].
pub fn run_situations(requests: u64, seed: u64) -> Result<Vec<SituationRun>> {
    situations()
        .into_iter()
        .map(|sc| {
            // A pool of 1,000 gets ten times the requests, so that each backend sees enough of
            // them for its utilisation to mean something.
            let scale = if sc.server_specs().len() >= 100 {
                10
            } else {
                1
            };
            let sc = sc.requests(requests.saturating_mul(scale)).seed(seed);
            let reports = vec![
                sc.run(LeastLatency::new(), Weighting::Equal)?,
                sc.run(LeastLatency::full_scan(), Weighting::Equal)?,
                sc.run(LeastLatency::with_choices(2)?, Weighting::Equal)?,
                sc.run(LeastLatency::with_choices(8)?, Weighting::Equal)?,
                sc.run(PowerOfTwoChoices::new(), Weighting::Equal)?,
                sc.run(LeastConnections::new(), Weighting::Equal)?,
                sc.run(RoundRobin::new(), Weighting::Equal)?,
                sc.run(Random::new(), Weighting::Equal)?,
                sc.run(WeightedRoundRobin::new(), Weighting::Capacity)?,
            ];
            Ok(SituationRun {
                scenario: sc,
                reports,
            })
        })
        .collect()
}

/// A policy's p99 in a run as a multiple of the reference's; infinite if unstable.
#[must_use]
pub fn p99_ratio(run: &SituationRun, policy: usize) -> f64 {
    let (r, reference) = (&run.reports[policy], &run.reports[1]);
    if r.unstable {
        return f64::INFINITY;
    }
    let base = reference.p99.as_secs_f64();
    if base > 0.0 {
        r.p99.as_secs_f64() / base
    } else {
        f64::INFINITY
    }
}

/// A report's error rate.
#[must_use]
pub fn error_rate(r: &Report) -> f64 {
    #[allow(clippy::cast_precision_loss)]
    let rate = r.errors as f64 / r.requests.max(1) as f64;
    rate
}

/// The summary table: per policy, the p99 ratio to the reference in each situation ("inf" =
/// unstable: a queue grows without bound), the worst ratio, the error rate in (e), and whether
/// the policy meets the bounds everywhere. Then the reference's own p99 per situation.
#[must_use]
pub fn situation_table(runs: &[SituationRun]) -> String {
    let mut out = String::new();
    let _ = write!(out, "| policy |");
    for run in runs {
        let _ = write!(out, " {} |", short(run.scenario.name()));
    }
    let _ = writeln!(out, " worst | errors (e) | meets all |");
    let _ = write!(out, "|---|");
    for _ in runs {
        let _ = write!(out, "---|");
    }
    let _ = writeln!(out, "---|---|---|");
    for (p, label) in SITUATION_POLICIES.iter().enumerate() {
        let _ = write!(out, "| {label} |");
        let mut worst = 0.0f64;
        let mut errors = 0.0;
        for run in runs {
            let ratio = p99_ratio(run, p);
            worst = worst.max(ratio);
            if run.scenario.name().starts_with("(e)") {
                errors = error_rate(&run.reports[p]);
            }
            let _ = write!(out, " {} |", fmt_ratio(ratio));
        }
        let meets = worst <= P99_BOUND && errors <= ERROR_BOUND;
        let _ = writeln!(
            out,
            " {} | {:.3}% | {} |",
            fmt_ratio(worst),
            errors * 100.0,
            if meets { "yes" } else { "no" }
        );
    }
    let _ = write!(out, "| reference p99 |");
    for run in runs {
        let ms = run.reports[1].p99.as_secs_f64() * 1e3;
        let _ = write!(out, " {ms:.1} ms |");
    }
    let _ = writeln!(out, " | | |");
    out
}

fn short(name: &str) -> &str {
    name.split_whitespace().next().unwrap_or(name)
}

fn fmt_ratio(r: f64) -> String {
    if r.is_finite() {
        format!("{r:.2}x")
    } else {
        "inf".to_owned()
    }
}
