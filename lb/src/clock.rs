//! The balancer's clocks: [`FastClock`] (the default) and, with feature `tokio`, [`TokioClock`].

use std::sync::OnceLock;

use crate::Clock;

/// The process-wide counter clock and the raw reading that is its origin.
fn counter() -> &'static (quanta::Clock, u64) {
    static COUNTER: OnceLock<(quanta::Clock, u64)> = OnceLock::new();
    COUNTER.get_or_init(|| {
        let clock = quanta::Clock::new();
        let origin = clock.raw();
        (clock, origin)
    })
}

/// The default clock of a [`Balancer`](crate::Balancer): the CPU's timestamp counter, read with
/// one instruction and scaled to nanoseconds, where it is invariant (x86-64 with an invariant
/// TSC, or AArch64's system counter), and the OS monotonic clock elsewhere (through
/// [`quanta`](https://docs.rs/quanta), which also calibrates the counter against the OS clock
/// once per process: a loop of at least 500 rounds of 1 µs until the estimate is within 10 ns,
/// bounded at 200 ms (0.6 ms measured on our 2-core VM), run by [`FastClock::new`], which
/// `Balancer::builder()` calls).
///
/// Why not [`SystemClock`](crate::SystemClock) (`Instant::now`): a balancer reads its clock on
/// every success and failure, and the tower `Balance` (feature `tower`) twice per
/// request to time it; a counter read costs about 12 ns on the 2-core VMs of our benchmarks,
/// `Instant::now` about 33 ns.
///
/// Readings are nanoseconds since the process's first reading of any `FastClock`, so all
/// `FastClock`s compare; they never decrease on one thread. The counter keeps its own rate:
/// over hours it may drift from the OS clock by what NTP slews that clock (up to 0.05%),
/// which is immaterial for ejection lengths, slow start and latencies. It does not follow
/// tokio's paused test clock: tests that time requests in paused time use `TokioClock`
/// (feature `tokio`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FastClock;

impl FastClock {
    /// The clock (calibrating the counter now if no `FastClock` has been read yet, so a
    /// caller can move that one-time cost out of its first request).
    #[must_use]
    pub fn new() -> Self {
        let _ = counter();
        Self
    }
}

impl Clock for FastClock {
    #[inline]
    fn now_nanos(&self) -> u64 {
        let (clock, origin) = counter();
        clock.delta_as_nanos(*origin, clock.raw())
    }
}

/// A clock that reads tokio's clock ([`tokio::time::Instant`]), so a balancer's time (latency
/// measurements of the tower `Balance`, ejection lengths, slow start)
/// follows a paused test runtime (`#[tokio::test(start_paused = true)]`,
/// `tokio::time::advance`) like the rest of the test. Outside a paused runtime it reads the
/// system's monotonic clock, at `Instant::now`'s cost; production balancers keep the default
/// [`FastClock`].
///
/// Readings are nanoseconds since the clock was made (clones share that origin).
///
/// ```
/// use tierkit_lb::{Backend, Balancer, Clock, TokioClock};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), tierkit_lb::Error> {
/// let clock = TokioClock::new();
/// let lb = Balancer::builder().clock(clock).backend(Backend::new(1, ())).build()?;
/// tokio::time::advance(std::time::Duration::from_secs(5)).await;
/// assert!(clock.now_nanos() >= 5_000_000_000);
/// # let _ = lb;
/// # Ok(())
/// # }
/// ```
#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    origin: tokio::time::Instant,
}

#[cfg(feature = "tokio")]
impl TokioClock {
    /// A clock whose origin is tokio's "now" (the paused clock's, inside a paused runtime).
    #[must_use]
    pub fn new() -> Self {
        Self {
            origin: tokio::time::Instant::now(),
        }
    }
}

#[cfg(feature = "tokio")]
impl Default for TokioClock {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(feature = "tokio")]
impl Clock for TokioClock {
    #[inline]
    fn now_nanos(&self) -> u64 {
        let elapsed = tokio::time::Instant::now().saturating_duration_since(self.origin);
        u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    #[test]
    fn fast_clock_follows_the_system_clock() {
        let clock = FastClock::new();
        // Calibrated against the OS clock: within 1% over 20 ms. A preemption between two
        // paired reads skews one attempt by its length, so the best of five is judged.
        let mut ratios = Vec::new();
        for _ in 0..5 {
            let (a, t) = (clock.now_nanos(), Instant::now());
            std::thread::sleep(Duration::from_millis(20));
            let (b, elapsed) = (clock.now_nanos(), t.elapsed());
            assert!(b >= a);
            #[allow(clippy::cast_precision_loss)]
            ratios.push((b - a) as f64 / elapsed.as_nanos() as f64);
            // Other instances share the origin.
            assert!(FastClock.now_nanos() >= b);
        }
        assert!(
            ratios.iter().any(|r| (0.99..=1.01).contains(r)),
            "ratios {ratios:?}"
        );
    }
}
