//! One clock for every crate.

use std::fmt;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A source of time: monotonic nanoseconds for deadlines and intervals, and wall-clock
/// milliseconds for timestamps that leave the process.
///
/// Every tierkit crate takes its time from a `Clock`, so one [`ManualClock`] drives a whole
/// simulated system. Implementations must be cheap: a cache or a load balancer may read the
/// clock on every request.
///
/// # Examples
/// ```
/// use tierkit_core::{Clock, SystemClock};
/// let clock = SystemClock;
/// let a = clock.now_nanos();
/// let b = clock.now_nanos();
/// assert!(b >= a);
/// ```
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// Nanoseconds since the clock's origin. Never decreases.
    fn now_nanos(&self) -> u64;

    /// A reading that is at most what [`now_nanos`](Clock::now_nanos) would return at the same
    /// moment, never decreasing, and ideally cheaper (a coarse clock updated by a ticker). The
    /// default returns `now_nanos()`.
    #[inline]
    fn recent_nanos(&self) -> u64 {
        self.now_nanos()
    }

    /// Milliseconds since the Unix epoch (wall-clock time, which may jump). Used for timestamps
    /// stored on disk or sent to other processes, never for deadlines. The default reads the
    /// system's real-time clock.
    fn unix_millis(&self) -> u64 {
        system_unix_millis()
    }
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    #[inline]
    fn now_nanos(&self) -> u64 {
        (**self).now_nanos()
    }
    #[inline]
    fn recent_nanos(&self) -> u64 {
        (**self).recent_nanos()
    }
    fn unix_millis(&self) -> u64 {
        (**self).unix_millis()
    }
}

impl<C: Clock + ?Sized> Clock for Box<C> {
    #[inline]
    fn now_nanos(&self) -> u64 {
        (**self).now_nanos()
    }
    #[inline]
    fn recent_nanos(&self) -> u64 {
        (**self).recent_nanos()
    }
    fn unix_millis(&self) -> u64 {
        (**self).unix_millis()
    }
}

fn system_unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The process-wide origin of [`SystemClock`]: the first time any `SystemClock` is read.
fn origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

/// The system's monotonic clock ([`Instant`]). All `SystemClock`s in a process share one
/// origin, so their readings compare.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SystemClock;

impl SystemClock {
    /// Converts a reading of this clock back to an [`Instant`] (saturating at the end of
    /// `Instant`'s range).
    #[must_use]
    pub fn instant_at(nanos: u64) -> Instant {
        let base = origin();
        base.checked_add(Duration::from_nanos(nanos))
            .unwrap_or(base)
    }
}

impl Clock for SystemClock {
    #[inline]
    fn now_nanos(&self) -> u64 {
        let elapsed = Instant::now().saturating_duration_since(origin());
        // Saturates after about 584 years of uptime.
        u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX)
    }
}

/// A clock that moves only when told to. Clones share one time, so a test can hold a clone
/// while the structure under test holds another.
///
/// Its wall-clock reading is `start_unix_millis` (0 unless set with
/// [`starting_at_unix_millis`](ManualClock::starting_at_unix_millis)) plus the elapsed
/// milliseconds.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use tierkit_core::{Clock, ManualClock};
/// let clock = ManualClock::starting_at_unix_millis(1_000);
/// let handle = clock.clone();
/// handle.advance(Duration::from_secs(2));
/// assert_eq!(clock.now_nanos(), 2_000_000_000);
/// assert_eq!(clock.unix_millis(), 3_000);
/// ```
#[derive(Clone, Default)]
pub struct ManualClock {
    inner: Arc<ManualInner>,
}

#[derive(Default)]
struct ManualInner {
    nanos: AtomicU64,
    start_unix_millis: u64,
}

impl ManualClock {
    /// A clock at 0 ns (wall clock at the Unix epoch).
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// A clock at 0 ns whose wall-clock reading starts at `unix_millis`.
    #[must_use]
    pub fn starting_at_unix_millis(unix_millis: u64) -> Self {
        Self {
            inner: Arc::new(ManualInner {
                nanos: AtomicU64::new(0),
                start_unix_millis: unix_millis,
            }),
        }
    }

    /// Moves time forward by `by` (saturating at `u64::MAX` nanoseconds).
    pub fn advance(&self, by: Duration) {
        let add = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        // fetch_update never fails with a closure that always returns Some.
        let _ = self
            .inner
            .nanos
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                Some(n.saturating_add(add))
            });
    }

    /// Sets the reading to `nanos` if that is later than the current one (a clock never goes
    /// back); returns the reading after the call.
    pub fn advance_to(&self, nanos: u64) -> u64 {
        self.inner
            .nanos
            .fetch_max(nanos, Ordering::AcqRel)
            .max(nanos)
    }

    /// The current reading as a [`Duration`] since the origin.
    #[must_use]
    pub fn elapsed(&self) -> Duration {
        Duration::from_nanos(self.now_nanos())
    }
}

impl Clock for ManualClock {
    #[inline]
    fn now_nanos(&self) -> u64 {
        self.inner.nanos.load(Ordering::Acquire)
    }

    fn unix_millis(&self) -> u64 {
        self.inner
            .start_unix_millis
            .saturating_add(self.now_nanos() / 1_000_000)
    }
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManualClock")
            .field("nanos", &self.now_nanos())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_saturates_and_never_goes_back() {
        let c = ManualClock::new();
        c.advance(Duration::from_nanos(10));
        assert_eq!(c.advance_to(5), 10);
        assert_eq!(c.now_nanos(), 10);
        c.advance(Duration::MAX);
        assert_eq!(c.now_nanos(), u64::MAX);
        c.advance(Duration::from_secs(1));
        assert_eq!(c.now_nanos(), u64::MAX);
    }

    #[test]
    fn system_clock_is_monotonic_and_shared() {
        let a = SystemClock.now_nanos();
        let b = SystemClock.now_nanos();
        assert!(b >= a);
        assert!(SystemClock::instant_at(b) >= SystemClock::instant_at(a));
        assert!(SystemClock.unix_millis() > 1_600_000_000_000);
    }

    #[test]
    fn arc_dyn_clock_forwards() {
        let m = ManualClock::new();
        let c: Arc<dyn Clock> = Arc::new(m.clone());
        m.advance(Duration::from_millis(3));
        assert_eq!(c.now_nanos(), 3_000_000);
        assert_eq!(c.recent_nanos(), 3_000_000);
    }
}
