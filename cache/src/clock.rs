//! Injectable time: the cache reads "now" through [`Clock`] so tests advance time without sleeping.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// A source of monotonic time, in nanoseconds since an origin the clock chooses (a fixed instant
/// in the past: the process's first reading for [`SystemClock`], creation for [`MockClock`]).
///
/// A cache reads one thing from its clock: [`recent_nanos`](Clock::recent_nanos), the cache's
/// time. An insert with a time-to-live sets its deadline from it, lookups of entries that have a
/// deadline (`get`, `peek`, `contains`, `iter`) and writes that drop expired entries compare
/// against it. The default is [`now_nanos`](Clock::now_nanos) itself, so expiry is exact;
/// [`CoarseClock`](crate::CoarseClock) makes it one atomic load that lags by about a
/// millisecond, and since deadlines and checks read the same lagging time line, a time-to-live
/// then holds to within about one tick, early or late (memcached's clock works the same way, at
/// a one-second grain).
///
/// Lookups of entries without a deadline, and writes while no entry has one, read no clock.
///
/// # Examples
///
/// A clock is any `Send + Sync + 'static` type with a monotonic reading:
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use tierkit_cache::{Cache, CacheBuilder, Clock, LruCache};
///
/// /// Time driven by a game loop: one tick every 16 ms.
/// #[derive(Clone, Default)]
/// struct Frames(Arc<AtomicU64>);
///
/// impl Clock for Frames {
///     fn now_nanos(&self) -> u64 {
///         self.0.load(Ordering::Relaxed) * 16_000_000
///     }
/// }
///
/// let frames = Frames::default();
/// let mut cache: LruCache<u32, &str> = CacheBuilder::new(100).clock(frames.clone()).build()?;
/// cache.insert_with_ttl(1, "sprite", std::time::Duration::from_millis(40));
/// frames.0.store(3, Ordering::Relaxed); // 48 ms later
/// assert_eq!(cache.get(&1), None);
/// # Ok::<(), tierkit_cache::CacheError>(())
/// ```
pub trait Clock: Send + Sync + 'static {
    /// Nanoseconds since the clock's origin, exact. Must never decrease.
    fn now_nanos(&self) -> u64;

    /// The reading a cache uses for every deadline and expiry check: at most what
    /// [`now_nanos`](Clock::now_nanos) would return at the same moment, never decreasing, and
    /// ideally cheaper. The default returns `now_nanos()`.
    #[inline]
    fn recent_nanos(&self) -> u64 {
        self.now_nanos()
    }
}

/// The process-wide origin of [`SystemClock`] and [`CoarseClock`](crate::CoarseClock) readings:
/// the first time either is read.
fn origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

/// Nanoseconds since [`origin`] by [`Instant::now`], saturating after about 584 years.
#[inline]
pub(crate) fn system_nanos() -> u64 {
    let elapsed = Instant::now().saturating_duration_since(origin());
    u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX)
}

/// The real monotonic clock, [`Instant::now`], for every reading (exact expiry).
///
/// One reading costs what the operating system's monotonic clock costs: 27 to 31 ns on the
/// virtual machines our benchmarks run on (`cargo bench -p tierkit-benches --bench cache -- clock`), paid by every lookup of an entry that has a deadline
/// and every write while deadlines are in play. [`CoarseClock`](crate::CoarseClock) makes those
/// readings nearly free in exchange for about a millisecond of imprecision.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[inline]
    fn now_nanos(&self) -> u64 {
        system_nanos()
    }
}

/// A manually advanced clock for tests and simulations. Clones share the same time; both
/// readings ([`now_nanos`](Clock::now_nanos) and [`recent_nanos`](Clock::recent_nanos)) are the
/// time advanced so far.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use tierkit_cache::{Clock, MockClock};
///
/// let clock = MockClock::new();
/// let t0 = clock.now_nanos();
/// clock.advance(Duration::from_secs(5));
/// assert_eq!(clock.now_nanos() - t0, 5_000_000_000);
/// assert_eq!(clock.elapsed(), Duration::from_secs(5));
/// ```
#[derive(Clone, Default)]
pub struct MockClock {
    offset_nanos: Arc<AtomicU64>,
}

impl MockClock {
    /// A clock standing at its origin (reading 0).
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves time forward by `by` (saturating at about 584 years of offset).
    pub fn advance(&self, by: Duration) {
        let nanos = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        let _ = self
            .offset_nanos
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |cur| {
                Some(cur.saturating_add(nanos))
            });
    }

    /// How far this clock has been advanced since it was created.
    #[must_use]
    pub fn elapsed(&self) -> Duration {
        Duration::from_nanos(self.offset_nanos.load(Ordering::Acquire))
    }
}

impl fmt::Debug for MockClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MockClock")
            .field("elapsed", &self.elapsed())
            .finish()
    }
}

impl Clock for MockClock {
    #[inline]
    fn now_nanos(&self) -> u64 {
        self.offset_nanos.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_clock_is_monotonic() {
        let a = SystemClock.now_nanos();
        let b = SystemClock.recent_nanos();
        assert!(b >= a);
    }

    #[test]
    fn mock_clock_saturates() {
        let clock = MockClock::new();
        clock.advance(Duration::MAX);
        clock.advance(Duration::from_secs(1));
        assert_eq!(clock.now_nanos(), u64::MAX);
        assert_eq!(clock.recent_nanos(), u64::MAX);
    }
}
