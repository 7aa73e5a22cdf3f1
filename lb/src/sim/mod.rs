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
//! - **Balancer**: a real [`Balancer`] over the servers, reading a [`ManualClock`] that is set to
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

#[cfg(doc)]
use crate::{Balancer, Lease, ManualClock, seed_thread_rng};

mod engine;
mod report;
mod scenario;
mod scenarios;
mod server;
mod situations;

pub use report::{BackendReport, Report, table};
pub use scenario::{DEFAULT_REQUESTS, Scenario, Weighting};
pub use scenarios::*;
pub use server::{Server, ServiceTime};
pub use situations::{
    ERROR_BOUND, P99_BOUND, SITUATION_POLICIES, SituationRun, error_rate, p99_ratio,
    run_situations, situation_table,
};

use std::time::Duration;

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
