//! The discrete-event engine behind [`Scenario::run`](super::Scenario::run).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::time::Duration;

use tierkit_core::SplitMix64;

use super::{BackendReport, Report, Scenario, Server, Weighting};
use super::{nanos_to_secs, secs_to_nanos, to_nanos};
use crate::{
    Backend, BackendId, Balancer, Context, Lease, ManualClock, Policy, Result, seed_thread_rng,
};

/// Exponential with mean 1.
fn exp1(rng: &mut SplitMix64) -> f64 {
    -(1.0 - rng.next_f64()).ln()
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
    /// Requests sent to it in the second half of the run.
    late_picks: u64,
    window_picks: u64,
    max_queue: usize,
    times: Vec<u64>,
}

/// Event kinds, in the order they are handled at equal times.
const MEMBERSHIP: u8 = 0;
const COMPLETION: u8 = 1;

pub(crate) struct Sim<'a, P: Policy<usize>> {
    scenario: &'a Scenario,
    weighting: Weighting,
    lb: Balancer<usize, P>,
    clock: ManualClock,
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
    pub(crate) fn new(scenario: &'a Scenario, policy: P, weighting: Weighting) -> Result<Self> {
        let max_cap = scenario
            .servers
            .iter()
            .map(Server::capacity)
            .fold(0.0f64, f64::max);
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
        let clock = ManualClock::new();
        // Time-driven changes are published by the run loop (`refresh_if_stale` after every clock
        // move), not by the background thread: a run stays a pure function of its inputs.
        let mut builder = Balancer::builder(policy)
            .clock(clock.clone())
            .background_refresh(false)
            .backends(
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

    pub(crate) fn run(mut self) -> Result<Report> {
        let sc = self.scenario;
        seed_thread_rng(sc.seed ^ 0x5deb_ece5_1bad_5eed);
        let mut arrivals_rng = SplitMix64::new(sc.seed ^ 0xa11c_e5ee_d000_0001);
        let mut demand_rng = SplitMix64::new(sc.seed ^ 0xde3a_4d5e_ed00_0002);
        let mean_gap = 1.0 / sc.arrival_rate();
        let n = sc.requests;
        let (half, three_q) = (n / 2, n - n / 4);
        let mut next_arrival = secs_to_nanos(mean_gap * exp1(&mut arrivals_rng));
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
                self.clock.advance_to(now);
                self.lb.refresh_if_stale();
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
            self.clock.advance_to(now);
            self.lb.refresh_if_stale();
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
            let unit = exp1(&mut demand_rng);
            match self.lb.pick(&ctx) {
                Ok(lease) => self.admit(lease, now, unit, arrived >= half),
                Err(_) => rejected += 1,
            }
            arrived += 1;
            last_arrival = now;
            next_arrival = now + secs_to_nanos(mean_gap * exp1(&mut arrivals_rng)).max(1);
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
        // Overloaded: offered more than its capacity by more than sampling noise (three standard
        // deviations of a sum of that many exponential demands), so that a pool of a thousand
        // small backends is not called unstable because one drew a few long requests.
        #[allow(clippy::cast_precision_loss)]
        let overloaded = backends
            .iter()
            .zip(&self.states)
            .any(|(b, st)| b.utilisation > 1.0 + 3.0 / (st.late_picks.max(1) as f64).sqrt());
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
            unstable: overloaded || backlog_growing,
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
            st.late_picks += 1;
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
                .map_err(Into::into)
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

    const fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

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
