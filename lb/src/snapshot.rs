//! Snapshots and their publisher: the immutable view of the pool that picks read, and the
//! balancer's shared core that rebuilds it on mutating calls and in the background refresher
//! (never on a pick).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use arc_swap::ArcSwap;
use crossbeam_utils::CachePadded;
use parking_lot::Mutex;

use crate::backend::{HEALTH_HEALTHY, HEALTH_UNHEALTHY};
use crate::control::{Control, Republish, nanos};
use crate::eject;
use crate::tagged::Cached;
use crate::{Member, NoBackend, Policy, View};

/// Effective weights are configured weights times this, so slow start can ramp a weight-1
/// backend in 5% steps ([`RAMP_STEPS`](crate::health::RAMP_STEPS)).
pub(crate) const WEIGHT_SCALE: u32 = 100;

/// A member and its configured weight, as the membership list holds them.
pub(crate) struct Entry<B> {
    pub(crate) member: Member<B>,
    pub(crate) weight: u32,
    /// Draining (no new picks). Decides eligibility in `publish`; the member's own flag is set
    /// after the snapshot without it is published (see `drain`).
    pub(crate) draining: bool,
}

/// One immutable view of the pool, published atomically on every change.
pub(crate) struct Snapshot<B, T> {
    pub(crate) all: Vec<Member<B>>,
    pub(crate) weights_all: Vec<u32>,
    pub(crate) eligible: Vec<Member<B>>,
    /// Effective weights (slow start applied), parallel to `eligible`.
    pub(crate) weights: Vec<u32>,
    /// Configured weights (times `WEIGHT_SCALE`), parallel to `eligible`.
    pub(crate) full: Vec<u32>,
    pub(crate) prepared: T,
    pub(crate) empty: NoBackend,
    pub(crate) panic: bool,
    pub(crate) version: u64,
    /// The balancer's published version (`u64::MAX` once the balancer is dropped): a per-thread
    /// cache entry whose version differs is stale and may be released.
    pub(crate) published: Arc<CachePadded<AtomicU64>>,
    /// Where a thread that drops its cached copy asks for the retired list to be reaped.
    pub(crate) control: Arc<Control>,
}

impl<B: Send + Sync + 'static, T: Send + Sync + 'static> Cached for Snapshot<B, T> {
    fn is_current(&self) -> bool {
        self.published.load(Ordering::Acquire) == self.version
    }

    fn release(self: Arc<Self>) {
        // Held by the retired list and this reference only: after this drop, nobody but the
        // list. (The core's own `ArcSwap` holds the current snapshot, which is not retired.)
        let reap = Arc::strong_count(&self) == 2 && !self.is_current();
        let control = Arc::clone(&self.control);
        drop(self);
        if reap {
            control.request_reap();
        }
    }
}

/// Bumped whenever a snapshot may hold backends that left (a removal, a dropped balancer):
/// every thread's next pick, on any balancer, releases its stale cache entries.
pub(crate) static RETIRED: AtomicU64 = AtomicU64::new(0);

/// A shared reference to a balancer's snapshot.
type SnapshotRef<B, P> = Arc<Snapshot<B, <P as Policy<B>>::Prepared>>;

/// The part of a balancer that publishes: shared with the background refresher and the
/// failure path (through `Control::republish`), which hold it weakly.
pub(crate) struct Core<B, P: Policy<B>> {
    pub(crate) snapshot: ArcSwap<Snapshot<B, P::Prepared>>,
    pub(crate) membership: Mutex<Vec<Entry<B>>>,
    pub(crate) policy: P,
    pub(crate) control: Arc<Control>,
    pub(crate) panic_threshold: u8,
    in_panic: AtomicBool,
    /// The version of the snapshot in `snapshot`, stored after it (picks compare it with
    /// their thread's cached copy). Only `publish`, under the membership lock, advances it.
    pub(crate) published: Arc<CachePadded<AtomicU64>>,
    /// Replaced snapshots that threads may still cache (see `reap`).
    pub(crate) retired: Mutex<Vec<SnapshotRef<B, P>>>,
}

impl<B, P: Policy<B>> Core<B, P> {
    /// Frees the replaced snapshots no thread caches any more (outside every lock: dropping
    /// one may drop backends, running the user's `Drop`).
    pub(crate) fn reap(&self) {
        self.control.reap_requested.store(false, Ordering::Release);
        let freed: Vec<_> = {
            let mut retired = self.retired.lock();
            let (free, keep): (Vec<_>, Vec<_>) =
                retired.drain(..).partition(|s| Arc::strong_count(s) == 1);
            *retired = keep;
            free
        };
        drop(freed);
    }

    pub(crate) fn new(
        policy: P,
        control: Arc<Control>,
        panic_threshold: u8,
        entries: Vec<Entry<B>>,
    ) -> Self {
        let published = Arc::new(CachePadded::new(AtomicU64::new(0)));
        let empty = Snapshot {
            all: Vec::new(),
            weights_all: Vec::new(),
            eligible: Vec::new(),
            weights: Vec::new(),
            full: Vec::new(),
            prepared: policy.prepare(&View::new(&[], &[], &[], &[], &control)),
            empty: NoBackend::Empty,
            panic: false,
            version: 0,
            published: Arc::clone(&published),
            control: Arc::clone(&control),
        };
        Self {
            snapshot: ArcSwap::from_pointee(empty),
            membership: Mutex::new(entries),
            policy,
            control,
            panic_threshold,
            in_panic: AtomicBool::new(false),
            published,
            retired: Mutex::new(Vec::new()),
        }
    }

    /// Publishes if the snapshot is stale or a pick asked for it; returns the clock time of the
    /// next time-driven change, if any.
    pub(crate) fn refresh_if_due(&self) -> Option<u64> {
        let c = &self.control;
        if c.refresh_requested.load(Ordering::Acquire) || c.is_stale() {
            self.publish(&self.membership.lock());
        }
        if c.reap_requested.load(Ordering::Acquire) {
            self.reap();
        }
        let at = c.refresh_at.load(Ordering::Acquire);
        (at != u64::MAX).then_some(at)
    }

    /// Marks `member` healthy or unhealthy; returns the slot of an ejection it ended.
    pub(crate) fn apply_health(&self, member: &Member<B>, healthy: bool) {
        let c = member.counters();
        let target = if healthy {
            HEALTH_HEALTHY
        } else {
            HEALTH_UNHEALTHY
        };
        let before = c.health.swap(target, Ordering::AcqRel);
        if before == target {
            return;
        }
        if before == crate::backend::HEALTH_EJECTED {
            eject::release_slot(&self.control.ejected);
        }
        self.on_health_changed(member, healthy);
    }

    fn on_health_changed(&self, member: &Member<B>, healthy: bool) {
        let c = member.counters();
        if healthy {
            c.consecutive_failures.store(0, Ordering::Relaxed);
            // Back in service: forget the latency it had while failing (LeastLatency probes it).
            c.ewma_bits.store(0, Ordering::Relaxed);
            if self.control.slow_start.is_some() {
                c.ramp_from
                    .store(self.control.now().max(1), Ordering::Relaxed);
            }
            tracing::info!(backend = %member.id(), "backend healthy");
        } else {
            tracing::warn!(backend = %member.id(), "backend unhealthy");
        }
    }

    /// Builds and publishes the snapshot for `entries` (callers hold the membership lock).
    pub(crate) fn publish(&self, entries: &[Entry<B>]) {
        let c = &self.control;
        // Cleared first and read with `Acquire`: a health change that marks it stale after this
        // point leaves it at 0 (the `fetch_min` below keeps that), and one before it is seen by
        // the loads below.
        c.refresh_at.swap(u64::MAX, Ordering::AcqRel);
        c.refresh_requested.store(false, Ordering::Release);
        let now = c.now();
        let mut recheck = u64::MAX;
        let (mut eligible, mut weights, mut full_w) = (Vec::new(), Vec::new(), Vec::new());
        let (mut sick, mut sick_weights) = (Vec::new(), Vec::new());
        let mut serving = 0usize;
        for e in entries {
            let k = e.member.counters();
            if e.draining || e.weight == 0 {
                continue;
            }
            serving += 1;
            let full = e.weight.saturating_mul(WEIGHT_SCALE);
            let (mut health, until) = eject::read(&k.health, &k.ejected_until);
            if health == crate::backend::HEALTH_EJECTED {
                if now >= until {
                    if eject::end_ejection(&k.health) {
                        eject::release_slot(&c.ejected);
                        self.on_health_changed(&e.member, true);
                        tracing::info!(backend = %e.member.id(), "ejection ended");
                    }
                    health = k.health.load(Ordering::Acquire);
                } else {
                    recheck = recheck.min(until);
                }
            }
            if health != HEALTH_HEALTHY && health != eject::HEALTH_EJECTING {
                sick.push(e.member.clone());
                sick_weights.push(full);
                continue;
            }
            let mut w = full;
            let ramp_from = k.ramp_from.load(Ordering::Relaxed);
            if let (Some(ss), true) = (c.slow_start, ramp_from != 0) {
                let window = nanos(ss.window);
                let elapsed = now.saturating_sub(ramp_from);
                if elapsed >= window {
                    k.ramp_from.store(0, Ordering::Relaxed);
                } else {
                    let frac = ss.factor(elapsed, window);
                    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                    let ramped = (f64::from(full) * frac) as u32;
                    w = ramped.max(1);
                    let step = window / u64::from(crate::health::RAMP_STEPS);
                    recheck = recheck.min(now.saturating_add(step.max(1)));
                }
            }
            eligible.push(e.member.clone());
            weights.push(w);
            full_w.push(full);
        }
        let healthy = eligible.len();
        let panic = self.panic_threshold > 0
            && serving > 0
            && healthy * 100 < usize::from(self.panic_threshold) * serving;
        if panic {
            full_w.extend_from_slice(&sick_weights);
            eligible.append(&mut sick);
            weights.append(&mut sick_weights);
        }
        if self.in_panic.swap(panic, Ordering::Relaxed) != panic {
            if panic {
                tracing::warn!(
                    healthy,
                    serving,
                    "panic threshold: balancing over all backends"
                );
            } else {
                tracing::info!(healthy, serving, "left panic mode");
            }
        }
        let empty = if entries.is_empty() {
            NoBackend::Empty
        } else if serving == 0 {
            NoBackend::AllDraining
        } else {
            NoBackend::AllUnhealthy
        };
        c.members.store(serving, Ordering::Relaxed);
        let all: Vec<Member<B>> = entries.iter().map(|e| e.member.clone()).collect();
        let weights_all: Vec<u32> = entries.iter().map(|e| e.weight).collect();
        let prepared = self
            .policy
            .prepare(&View::new(&eligible, &weights, &full_w, &all, c));
        let version = self.published.load(Ordering::Relaxed) + 1;
        // The swap and the version bump sit together under the retired list's lock (taken
        // first, so nothing waits between them): `is_eligible` waits for the bump of the
        // snapshot it read, and picks trust their cached snapshot until the bump, so once
        // `is_eligible` says no, no later pick on any thread chooses that backend. The old
        // snapshot joins the retired list before any thread can see it is stale and let go.
        let mut retired = self.retired.lock();
        let old = self.snapshot.swap(Arc::new(Snapshot {
            all,
            weights_all,
            eligible,
            weights,
            full: full_w,
            prepared,
            empty,
            panic,
            version,
            published: Arc::clone(&self.published),
            control: Arc::clone(c),
        }));
        self.published.store(version, Ordering::Release);
        // Kept until no thread's cache holds it, then freed by `reap` (a mutating call, the
        // refresher): never by a pick, which would pay for freeing a Maglev table or a ring.
        retired.push(old);
        drop(retired);
        if recheck != u64::MAX {
            c.refresh_at.fetch_min(recheck, Ordering::AcqRel);
            crate::refresher::wake();
        }
    }
}

impl<B: Send + Sync + 'static, P: Policy<B>> Republish for Core<B, P> {
    fn republish(&self) {
        self.publish(&self.membership.lock());
    }

    fn refresh_if_due(&self) -> Option<u64> {
        Core::refresh_if_due(self)
    }

    fn clock_now(&self) -> u64 {
        self.control.now()
    }
}

impl<B, P: Policy<B>> Drop for Core<B, P> {
    fn drop(&mut self) {
        // Cached snapshots of a dropped balancer are stale everywhere.
        self.published.store(u64::MAX, Ordering::Release);
        RETIRED.fetch_add(1, Ordering::Release);
    }
}

#[cfg(all(test, not(tierkit_loom)))]
mod tests {
    use std::time::{Duration, Instant};

    use crate::{Backend, BackendId, Balancer, Context, RoundRobin};

    /// Once `is_eligible` says a backend is out, no later pick chooses it, even while the
    /// publisher that took it out is held at the retired list's lock (a publish's bookkeeping):
    /// the version bump that invalidates every thread's cached snapshot must come with the
    /// swap. Checked while the lock is held (for 50 ms: a publish that swapped before taking
    /// the lock shows the bug at once) and after the publish completes.
    #[test]
    fn a_backend_is_eligible_rules_out_is_never_picked_afterwards() {
        let lb = Balancer::builder()
            .policy(RoundRobin::new())
            .backends((0..2u64).map(|i| Backend::new(i, i)))
            .build()
            .unwrap_or_else(|_| unreachable!());
        let check = || {
            if lb.is_eligible(BackendId(0)) {
                return false;
            }
            for _ in 0..8 {
                let lease = lb.pick(&Context::new()).unwrap_or_else(|_| unreachable!());
                assert_eq!(
                    lease.id(),
                    BackendId(1),
                    "picked a backend is_eligible ruled out"
                );
            }
            true
        };
        // This thread caches the snapshot in which both backends are eligible.
        for _ in 0..4 {
            drop(lb.pick(&Context::new()));
        }
        std::thread::scope(|s| {
            let held = lb.core.retired.lock();
            let publisher = s.spawn(|| lb.set_healthy(BackendId(0), false));
            let until = Instant::now() + Duration::from_millis(50);
            while Instant::now() < until && !check() {
                std::thread::yield_now();
            }
            drop(held);
            let published = publisher.join().unwrap_or_else(|_| unreachable!());
            assert!(published.is_ok());
        });
        assert!(check(), "the unhealthy backend is still eligible");
    }
}
