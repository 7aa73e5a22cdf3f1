//! [`CoarseClock`]: lookups read a process-wide timestamp that a background thread refreshes
//! every millisecond (memcached's `current_time`, quanta's `Clock::recent`).

use std::any::Any;
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::{Clock, SystemClock};

/// The exact time on [`SystemClock`]'s time line (the same process-wide origin).
#[inline]
fn system_nanos() -> u64 {
    SystemClock.now_nanos()
}

/// How often the ticker refreshes the shared timestamp.
const TICK: Duration = Duration::from_millis(1);

/// The shared timestamp: [`system_nanos`] as last read by the ticker.
static RECENT: AtomicU64 = AtomicU64::new(0);
/// Live [`CoarseClock`]s that rely on the ticker (read without the lock by the ticker's loop).
static USERS: AtomicUsize = AtomicUsize::new(0);
/// Whether a ticker thread is running; starting and stopping it is decided under this lock.
static RUNNING: Mutex<bool> = Mutex::new(false);

fn running() -> MutexGuard<'static, bool> {
    // The guarded bool is valid whatever a panicking holder did.
    RUNNING.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A [`Clock`] for fast expiry checks: [`recent_nanos`](Clock::recent_nanos) is one relaxed
/// atomic load of a process-wide timestamp that a background thread refreshes every
/// millisecond; [`now_nanos`](Clock::now_nanos) is exact ([`Instant::now`](std::time::Instant::now),
/// on the same time line as [`SystemClock`](crate::SystemClock)).
///
/// # Semantics
///
/// A cache reads only `recent_nanos`, for deadlines and for the checks against them alike, so
/// with this clock:
///
/// - a time-to-live runs on the ticker's time: the reading lags real time by up to one tick
///   (1 ms) plus however long the operating system delays the ticker thread (normally
///   microseconds; longer on an overloaded machine);
/// - so an entry's real lifetime is its time-to-live give or take that lag: it may be dropped up
///   to about a tick early (inserted just before a tick, checked just after the deadline's tick)
///   or served up to about a tick late;
/// - writes drop the entries whose deadline passed on the same time line.
///
/// Use it when a millisecond does not matter (time-to-live of seconds or more, which is the
/// usual case) and the cache is hot: on our benchmark machine (`cargo bench -p tierkit-benches --bench cache --
/// lru/`) it takes an `LruCache` hit with a time-to-live from 53 ns to 17 ns (from 42 ns to 8 ns
/// with [`FastHashBuilder`](crate::FastHashBuilder)), and an insert that evicts from 63 ns to
/// 38 ns (with `FastHashBuilder`). The default, [`SystemClock`](crate::SystemClock), stays
/// exact.
///
/// # The ticker thread
///
/// The first `CoarseClock` starts one thread per process, named `tierkit-coarse-clock`, that
/// wakes every millisecond to store the time; it exits within a tick after the last
/// `CoarseClock` (and every cache built with one) is dropped, and a later `CoarseClock` starts a
/// new one. If the thread cannot be spawned, that clock reads the exact time for lookups too
/// (see [`is_coarse`](Self::is_coarse)).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use tierkit_cache::{Cache, CacheBuilder, Clock, CoarseClock, LruCache};
///
/// let clock = CoarseClock::new();
/// assert!(clock.recent_nanos() <= clock.now_nanos());
/// let mut sessions: LruCache<u64, String> = CacheBuilder::new(10_000)
///     .default_ttl(Duration::from_secs(60))
///     .clock(clock)
///     .build()?;
/// sessions.insert(7, "alice".to_string());
/// assert_eq!(sessions.get(&7).map(String::as_str), Some("alice"));
/// # Ok::<(), tierkit_cache::Error>(())
/// ```
pub struct CoarseClock {
    /// Whether this clock registered with a running ticker (else it reads the exact time).
    coarse: bool,
}

impl CoarseClock {
    /// The refresh period of the shared reading: one millisecond.
    pub const TICK: Duration = TICK;

    /// A coarse clock, starting the ticker thread if none runs.
    #[must_use]
    pub fn new() -> Self {
        Self { coarse: register() }
    }

    /// Whether lookups read the ticker's timestamp (`false` only if the ticker thread could not
    /// be started, in which case every reading is exact).
    #[must_use]
    pub fn is_coarse(&self) -> bool {
        self.coarse
    }
}

impl Default for CoarseClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clone for CoarseClock {
    fn clone(&self) -> Self {
        Self::new()
    }
}

impl Drop for CoarseClock {
    fn drop(&mut self) {
        if self.coarse {
            // The ticker notices within a tick and exits if this was the last user.
            USERS.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl fmt::Debug for CoarseClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CoarseClock")
            .field("coarse", &self.coarse)
            .field("tick", &TICK)
            .finish()
    }
}

impl Clock for CoarseClock {
    #[inline]
    fn now_nanos(&self) -> u64 {
        system_nanos()
    }

    #[inline]
    fn recent_nanos(&self) -> u64 {
        if self.coarse {
            RECENT.load(Ordering::Relaxed)
        } else {
            system_nanos()
        }
    }
}

/// The shared reading behind `clock`'s lookups, if `clock` is a ticking [`CoarseClock`]: caches
/// load it directly instead of calling through `dyn Clock` (the same load, minus an indirect
/// call on every lookup of an entry with a deadline).
pub(crate) fn shared_reading(clock: &dyn Any) -> Option<&'static AtomicU64> {
    clock
        .downcast_ref::<CoarseClock>()
        .filter(|c| c.coarse)
        .map(|_| &RECENT)
}

/// Counts one more user and makes sure a ticker runs; `false` if none could be started.
fn register() -> bool {
    let mut running = running();
    if *running {
        USERS.fetch_add(1, Ordering::AcqRel);
        return true;
    }
    // A fresh reading before the first lookup: the old one may be from a stopped ticker.
    RECENT.fetch_max(system_nanos(), Ordering::Relaxed);
    let spawned = std::thread::Builder::new()
        .name("tierkit-coarse-clock".to_string())
        .spawn(tick_loop);
    if spawned.is_err() {
        return false;
    }
    USERS.fetch_add(1, Ordering::AcqRel);
    *running = true;
    true
}

/// The ticker: refresh the reading every [`TICK`] until no clock uses it.
fn tick_loop() {
    loop {
        std::thread::sleep(TICK);
        if USERS.load(Ordering::Acquire) == 0 {
            // Decide under the lock, so a clock registering right now either sees the ticker
            // running (and it keeps running) or starts a new one.
            let mut running = running();
            if USERS.load(Ordering::Acquire) == 0 {
                *running = false;
                return;
            }
        }
        // `fetch_max`: readings never go backwards, whatever the threads' interleaving.
        RECENT.fetch_max(system_nanos(), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_never_passes_now_and_never_goes_back() {
        let clock = CoarseClock::new();
        let mut last = 0;
        for _ in 0..10_000 {
            let recent = clock.recent_nanos();
            assert!(recent <= clock.now_nanos());
            assert!(recent >= last);
            last = recent;
        }
    }

    #[test]
    fn clones_and_drops_keep_the_count() {
        let a = CoarseClock::new();
        let b = a.clone();
        assert!(USERS.load(Ordering::Acquire) >= usize::from(a.coarse) + usize::from(b.coarse));
        drop(a);
        assert!(b.recent_nanos() <= b.now_nanos());
    }

    /// Liveness, not timing: the reading moves on while a clock is alive (the bound is only there
    /// so a broken ticker fails the test instead of hanging it).
    #[test]
    fn the_ticker_advances_the_reading() {
        let clock = CoarseClock::new();
        if !clock.is_coarse() {
            return;
        }
        let start = clock.recent_nanos();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while clock.recent_nanos() == start {
            assert!(
                std::time::Instant::now() < deadline,
                "the ticker never ticked"
            );
            std::thread::yield_now();
        }
    }
}
