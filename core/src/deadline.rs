//! Deadlines that cannot overflow.

use std::time::{Duration, Instant};

/// `now + timeout`, or `None` when that is past the end of [`Instant`]'s range. `None` means
/// "no deadline": `Duration::MAX` is the documented way to wait forever in every tierkit API.
///
/// # Examples
/// ```
/// use std::time::{Duration, Instant};
/// use tierkit_core::deadline_after;
/// let now = Instant::now();
/// assert!(deadline_after(now, Duration::from_secs(1)).is_some());
/// assert_eq!(deadline_after(now, Duration::MAX), None);
/// ```
#[must_use]
#[inline]
pub fn deadline_after(now: Instant, timeout: Duration) -> Option<Instant> {
    now.checked_add(timeout)
}

/// `now_nanos + timeout` in clock nanoseconds, saturating at `u64::MAX` (which every tierkit
/// crate reads as "never").
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use tierkit_core::nanos_after;
/// assert_eq!(nanos_after(5, Duration::from_nanos(10)), 15);
/// assert_eq!(nanos_after(5, Duration::MAX), u64::MAX);
/// ```
#[must_use]
#[inline]
pub fn nanos_after(now_nanos: u64, timeout: Duration) -> u64 {
    let add = u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX);
    now_nanos.saturating_add(add)
}
