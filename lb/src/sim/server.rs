//! Simulated servers: [`Server`] and its [`ServiceTime`].

use std::time::Duration;

use super::{nanos_to_secs, secs_to_nanos, to_nanos};

/// How a server's service demand is distributed.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum ServiceTime {
    /// Exponentially distributed with this mean (each server is an M/M/c queue).
    Exponential(Duration),
    /// Exactly this long, every time.
    Fixed(Duration),
    /// A heavy-tailed mixture of two exponentials: mean `common` usually, mean `rare` for a
    /// `rare_fraction` of the requests (a cache miss, a large query).
    Mixture {
        /// The usual mean.
        common: Duration,
        /// The mean of the rare, long requests.
        rare: Duration,
        /// Their share, in `0..=1`.
        rare_fraction: f64,
    },
}

impl ServiceTime {
    /// The mean service time.
    #[must_use]
    pub fn mean(&self) -> Duration {
        match *self {
            Self::Exponential(d) | Self::Fixed(d) => d,
            Self::Mixture {
                common,
                rare,
                rare_fraction,
            } => {
                let f = rare_fraction.clamp(0.0, 1.0);
                common.mul_f64(1.0 - f) + rare.mul_f64(f)
            }
        }
    }
}

/// A cold start: the mean starts `factor` times higher and warms linearly over `window`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Cold {
    pub(crate) factor: f64,
    pub(crate) window: Duration,
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
    pub(crate) name: String,
    pub(crate) service: ServiceTime,
    pub(crate) workers: u32,
    pub(crate) cold: Option<Cold>,
    pub(crate) fail_after: Option<Duration>,
    pub(crate) outage: Option<(Duration, Duration)>,
    pub(crate) joins_at: Duration,
    pub(crate) leaves_at: Option<Duration>,
    /// Slow (`.1` times the service time) in every odd period of `.0`.
    pub(crate) flap: Option<(Duration, f64)>,
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
            flap: None,
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

    /// Flaps: during every other `period` (the second, the fourth, ...) its service times are
    /// `factor` times longer. Its nominal capacity is the fast one.
    pub fn flaps(mut self, period: Duration, factor: f64) -> Self {
        if !period.is_zero() && factor.is_finite() && factor > 0.0 {
            self.flap = Some((period, factor));
        }
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
    pub(crate) fn fails_at(&self, now: u64) -> bool {
        self.fail_after.is_some()
            || self
                .outage
                .is_some_and(|(a, b)| (to_nanos(a)..to_nanos(b)).contains(&now))
    }

    /// The service time, in nanoseconds, of a request whose service starts at `now`,
    /// `since_join` nanoseconds after the server joined, given a unit-mean exponential draw
    /// `unit`.
    pub(crate) fn demand(&self, now: u64, since_join: u64, unit: f64) -> u64 {
        if self.fails_at(now) {
            return to_nanos(self.fail_after.unwrap_or(Duration::from_millis(1))).max(1);
        }
        let mut base = match self.service {
            ServiceTime::Exponential(m) => m.as_secs_f64() * unit,
            ServiceTime::Fixed(d) => d.as_secs_f64(),
            ServiceTime::Mixture {
                common,
                rare,
                rare_fraction,
            } => {
                // One exponential draw picks the component and sizes the request: `u` is
                // uniform, and each component's part of it maps back to a unit exponential.
                let f = rare_fraction.clamp(0.0, 1.0);
                let u = 1.0 - (-unit).exp();
                if u < f {
                    rare.as_secs_f64() * -(1.0 - u / f).ln()
                } else {
                    common.as_secs_f64() * -(1.0 - (u - f) / (1.0 - f)).ln()
                }
            }
        };
        if let Some((period, factor)) = self.flap
            && (now / to_nanos(period).max(1)) % 2 == 1
        {
            base *= factor;
        }
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
