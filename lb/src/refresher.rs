//! The background refresher: one process-wide thread that republishes snapshots when time makes
//! them stale (an ejection's end, a slow-start step), so that no pick ever rebuilds one.
//!
//! Balancers with outlier detection or slow start register a weak reference to their core at
//! build time (unless built with `background_refresh(false)`). The thread sleeps until the
//! earliest pending change of any registered balancer (read from the balancer's own clock; a
//! [`ManualClock`](crate::ManualClock) does not move by itself, so such a balancer is refreshed
//! when a pick finds it stale and wakes the thread, or by [`Balancer::refresh`]), or until woken
//! by [`wake`] (a pick that found a snapshot stale, a publish with a new pending time).
//! `Thread::unpark` never loses a wake-up and takes no lock, so a pick can call it.
//!
//! [`Balancer::refresh`]: crate::Balancer::refresh

use std::sync::{OnceLock, Weak};
use std::thread::Thread;
use std::time::Duration;

use parking_lot::Mutex;

use crate::control::Republish;

static REGISTRY: Mutex<Vec<Weak<dyn Republish>>> = Mutex::new(Vec::new());
static THREAD: OnceLock<Option<Thread>> = OnceLock::new();

/// The longest sleep between scans when some balancer has a pending change (clocks other than
/// the system's may not map to wall time).
const MAX_SLEEP: Duration = Duration::from_secs(1);
/// The shortest: a manual clock that does not move must not make this thread spin.
const MIN_SLEEP: Duration = Duration::from_millis(1);

/// Registers a balancer's core with the refresher, starting the thread on first use. Returns
/// false if the thread could not be started (the balancer then refreshes on mutating calls and
/// [`Balancer::refresh`](crate::Balancer::refresh) only).
pub(crate) fn register(core: Weak<dyn Republish>) -> bool {
    REGISTRY.lock().push(core);
    let started = THREAD.get_or_init(|| {
        std::thread::Builder::new()
            .name("tierkit-lb-refresh".to_owned())
            .spawn(run)
            .map(|h| h.thread().clone())
            .map_err(|e| tracing::error!(error = %e, "lb refresher thread not started"))
            .ok()
    });
    wake();
    started.is_some()
}

/// Wakes the refresher (if running): one atomic swap, plus a futex wake when it sleeps.
#[inline]
pub(crate) fn wake() {
    if let Some(Some(t)) = THREAD.get() {
        t.unpark();
    }
}

fn run() {
    loop {
        let cores: Vec<_> = {
            let mut reg = REGISTRY.lock();
            reg.retain(|w| w.strong_count() > 0);
            reg.iter().filter_map(Weak::upgrade).collect()
        };
        let mut sleep: Option<Duration> = None;
        for core in &cores {
            if let Some(at) = core.refresh_if_due() {
                let wait = Duration::from_nanos(at.saturating_sub(core.clock_now()))
                    .clamp(MIN_SLEEP, MAX_SLEEP);
                sleep = Some(sleep.map_or(wait, |s| s.min(wait)));
            }
        }
        // Cores dropped here, outside the registry lock (the last owner may be this thread).
        drop(cores);
        match sleep {
            Some(d) => std::thread::park_timeout(d),
            None => std::thread::park(),
        }
    }
}
