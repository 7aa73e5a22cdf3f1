//! [`Balancer`]: membership snapshots, the pick path and membership changes.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use arc_swap::ArcSwap;
use crossbeam_utils::CachePadded;
use parking_lot::Mutex;
use tierkit_consistent_hash::{Key, KeyHasher};

use crate::backend::{HEALTH_EJECTED, HEALTH_HEALTHY, HEALTH_UNHEALTHY};
use crate::builder::BalancerBuilder;
use crate::health::Control;
use crate::shared::{Refused, Tagged, TypeTag};
use crate::{
    Backend, BackendId, Context, Drain, Error, Lease, Member, NoBackend, Policy, Result, View,
};

/// Effective weights are configured weights times this, so slow start can ramp a weight-1
/// backend in 1% steps.
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
    pub(crate) weights: Vec<u32>,
    pub(crate) prepared: T,
    pub(crate) empty: NoBackend,
    pub(crate) panic: bool,
    pub(crate) version: u64,
}

/// A pool of backends and a [`Policy`]: asks for one backend per request.
///
/// `pick` is `&self`, lock-free and allocation-free: it loads the current snapshot (membership,
/// weights and health view, published together), lets the policy choose, and returns a
/// [`Lease`]. Membership changes (`add`, `remove`, `set_weight`, `drain`) and health changes
/// publish a new snapshot; per-backend counters live with the backend and survive them.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use tierkit_lb::{Backend, Balancer, Context, NoBackend, OutlierDetection, PowerOfTwoChoices};
///
/// let lb = Balancer::builder(PowerOfTwoChoices::new())
///     .backends((1..=3).map(|i| Backend::new(i, format!("10.0.0.{i}:8080"))))
///     .outlier_detection(OutlierDetection::new().consecutive_failures(3))
///     .build()?;
///
/// let lease = lb.pick(&Context::new())?;
/// let addr: &str = &lease;           // the backend's value
/// assert!(addr.starts_with("10.0.0."));
/// lease.success(Duration::from_millis(3));
///
/// lb.remove(1.into())?;
/// lb.remove(2.into())?;
/// lb.remove(3.into())?;
/// assert_eq!(lb.pick(&Context::new()).unwrap_err(), NoBackend::Empty);
/// # Ok::<(), tierkit_lb::Error>(())
/// ```
pub struct Balancer<B, P: Policy<B>> {
    snapshot: ArcSwap<Snapshot<B, P::Prepared>>,
    membership: Mutex<Vec<Entry<B>>>,
    policy: P,
    control: Arc<Control>,
    hasher: KeyHasher,
    panic_threshold: u8,
    start_unhealthy: bool,
    in_panic: AtomicBool,
    /// The version of the snapshot in `snapshot`, stored after it (picks compare it with
    /// their thread's cached copy). Only `publish`, under the membership lock, advances it.
    published: CachePadded<AtomicU64>,
    /// Identifies this balancer (and its snapshot type) in the per-thread snapshot caches.
    tag: TypeTag<Snapshot<B, P::Prepared>>,
    /// Where the next thread's rotation starts (its first pick takes the next position).
    starts: AtomicUsize,
}

impl<B, P: Policy<B>> Balancer<B, P> {
    /// Starts configuring a balancer with `policy`.
    pub fn builder(policy: P) -> BalancerBuilder<B, P> {
        BalancerBuilder::new(policy)
    }

    pub(crate) fn from_parts(
        policy: P,
        control: Control,
        hasher: KeyHasher,
        panic_threshold: u8,
        start_unhealthy: bool,
        backends: Vec<Backend<B>>,
    ) -> Result<Self> {
        let control = Arc::new(control);
        let mut entries: Vec<Entry<B>> = Vec::with_capacity(backends.len());
        for spec in backends {
            if entries.iter().any(|e| e.member.id() == spec.id) {
                return Err(Error::DuplicateId(spec.id));
            }
            let health = if start_unhealthy {
                HEALTH_UNHEALTHY
            } else {
                HEALTH_HEALTHY
            };
            let weight = spec.weight;
            let member = Member::from_spec(spec, Arc::clone(&control), health, 0);
            entries.push(Entry {
                member,
                weight,
                draining: false,
            });
        }
        let empty = Snapshot {
            all: Vec::new(),
            weights_all: Vec::new(),
            eligible: Vec::new(),
            weights: Vec::new(),
            prepared: policy.prepare(&View::new(&[], &[], &[], &control)),
            empty: NoBackend::Empty,
            panic: false,
            version: 0,
        };
        let lb = Self {
            snapshot: ArcSwap::from_pointee(empty),
            membership: Mutex::new(entries),
            policy,
            control,
            hasher,
            panic_threshold,
            start_unhealthy,
            in_panic: AtomicBool::new(false),
            published: CachePadded::new(AtomicU64::new(0)),
            tag: TypeTag::new(),
            starts: AtomicUsize::new(0),
        };
        lb.publish(&lb.membership.lock());
        Ok(lb)
    }

    /// Hashes a request key with the balancer's keyed SipHash, for [`Context::hash`].
    #[inline]
    pub fn hash_key<K: Key + ?Sized>(&self, key: &K) -> u64 {
        self.hasher.hash(key)
    }

    /// Adds a backend. Backends added after the build slow-start if configured, and start
    /// unhealthy (until their first passing check) with `start_unhealthy`.
    ///
    /// # Errors
    /// [`Error::DuplicateId`] if a member already has this id; nothing changes.
    pub fn add(&self, backend: Backend<B>) -> Result<()> {
        let mut entries = self.membership.lock();
        if entries.iter().any(|e| e.member.id() == backend.id) {
            return Err(Error::DuplicateId(backend.id));
        }
        let health = if self.start_unhealthy {
            HEALTH_UNHEALTHY
        } else {
            HEALTH_HEALTHY
        };
        let ramp = if self.control.slow_start.is_some() {
            self.control.now().max(1)
        } else {
            0
        };
        let weight = backend.weight;
        let member = Member::from_spec(backend, Arc::clone(&self.control), health, ramp);
        tracing::info!(backend = %member.id(), weight, "backend added");
        entries.push(Entry {
            member,
            weight,
            draining: false,
        });
        self.publish(&entries);
        Ok(())
    }

    /// Removes a backend: no pick that starts after this returns can choose it. Leases already
    /// handed out stay valid.
    ///
    /// # Errors
    /// [`Error::UnknownBackend`] if no member has this id.
    pub fn remove(&self, id: BackendId) -> Result<()> {
        let mut entries = self.membership.lock();
        let pos = entries
            .iter()
            .position(|e| e.member.id() == id)
            .ok_or(Error::UnknownBackend(id))?;
        let entry = entries.remove(pos);
        if entry.member.counters().health.load(Ordering::Acquire) == HEALTH_EJECTED {
            self.control.ejected.fetch_sub(1, Ordering::Relaxed);
        }
        tracing::info!(backend = %id, "backend removed");
        self.publish(&entries);
        Ok(())
    }

    /// Changes a backend's weight. Zero drains it (no new picks) without removing it.
    ///
    /// # Errors
    /// [`Error::UnknownBackend`] if no member has this id.
    pub fn set_weight(&self, id: BackendId, weight: u32) -> Result<()> {
        let mut entries = self.membership.lock();
        let entry = entries
            .iter_mut()
            .find(|e| e.member.id() == id)
            .ok_or(Error::UnknownBackend(id))?;
        entry.weight = weight;
        tracing::info!(backend = %id, weight, "backend weight changed");
        self.publish(&entries);
        Ok(())
    }

    /// Stops new picks of a backend and returns a handle that completes when its last lease
    /// drops. The backend stays a member (and in stats) until [`remove`](Self::remove)d.
    ///
    /// # Errors
    /// [`Error::UnknownBackend`] if no member has this id.
    pub fn drain(&self, id: BackendId) -> Result<Drain<B>> {
        let mut entries = self.membership.lock();
        let pos = entries
            .iter()
            .position(|e| e.member.id() == id)
            .ok_or(Error::UnknownBackend(id))?;
        entries[pos].draining = true;
        // Publish the snapshot without it first, then flag the member: a pick still working on
        // an older snapshot that reaches it afterwards is refused and retries on the new one, so
        // once the in-flight count reads zero no lease can appear again.
        self.publish(&entries);
        let member = entries[pos].member.clone();
        let in_flight = member.counters().refs.set_draining(true);
        tracing::info!(backend = %id, in_flight, "backend draining");
        Ok(Drain::new(member))
    }

    /// Puts a drained backend back into service.
    ///
    /// # Errors
    /// [`Error::UnknownBackend`] if no member has this id.
    pub fn undrain(&self, id: BackendId) -> Result<()> {
        let mut entries = self.membership.lock();
        let entry = entries
            .iter_mut()
            .find(|e| e.member.id() == id)
            .ok_or(Error::UnknownBackend(id))?;
        entry.draining = false;
        entry.member.counters().refs.set_draining(false);
        self.publish(&entries);
        Ok(())
    }

    /// Marks a backend healthy or unhealthy by hand (active health checks call this for you).
    /// Marking an ejected backend healthy ends its ejection early.
    ///
    /// # Errors
    /// [`Error::UnknownBackend`] if no member has this id.
    pub fn set_healthy(&self, id: BackendId, healthy: bool) -> Result<()> {
        let entries = self.membership.lock();
        let entry = entries
            .iter()
            .find(|e| e.member.id() == id)
            .ok_or(Error::UnknownBackend(id))?;
        self.apply_health(&entry.member, healthy);
        self.publish(&entries);
        Ok(())
    }

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
        if before == HEALTH_EJECTED {
            self.control.ejected.fetch_sub(1, Ordering::Relaxed);
        }
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

    /// Republishes the snapshot now (time-driven changes are otherwise noticed by the next
    /// pick).
    pub fn refresh(&self) {
        let entries = self.membership.lock();
        self.publish(&entries);
    }

    #[cold]
    fn try_refresh(&self) {
        if let Some(entries) = self.membership.try_lock() {
            self.publish(&entries);
        }
    }

    /// The policy.
    pub fn policy(&self) -> &P {
        &self.policy
    }

    /// The members (eligible or not), in the order they were added.
    pub fn members(&self) -> Vec<Member<B>> {
        self.snapshot.load().all.clone()
    }

    /// Whether picks can choose backend `id` now: it is in the published snapshot's eligible
    /// set (healthy, serving; or any serving backend in panic mode). O(members), no allocation.
    /// A health change made on the pick path (an ejection) shows here once the snapshot is
    /// republished, which the next pick does.
    pub fn is_eligible(&self, id: BackendId) -> bool {
        self.snapshot.load().eligible.iter().any(|m| m.id() == id)
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.snapshot.load().all.len()
    }

    /// Whether the pool has no members.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn snapshot(&self) -> arc_swap::Guard<Arc<Snapshot<B, P::Prepared>>> {
        self.snapshot.load()
    }

    /// Builds and publishes the snapshot for `entries` (callers hold the membership lock).
    fn publish(&self, entries: &[Entry<B>]) {
        let c = &self.control;
        // Cleared first and read with `Acquire`: a health change that marks it stale after this
        // point leaves it at 0 (the `fetch_min` below keeps that), and one before it is seen by
        // the loads below.
        c.refresh_at.swap(u64::MAX, Ordering::AcqRel);
        let now = c.now();
        let mut recheck = u64::MAX;
        let (mut eligible, mut weights) = (Vec::new(), Vec::new());
        let (mut sick, mut sick_weights) = (Vec::new(), Vec::new());
        let mut serving = 0usize;
        for e in entries {
            let k = e.member.counters();
            if e.draining || e.weight == 0 {
                continue;
            }
            serving += 1;
            let full = e.weight.saturating_mul(WEIGHT_SCALE);
            let mut health = k.health.load(Ordering::Acquire);
            if health == HEALTH_EJECTED {
                let until = k.ejected_until.load(Ordering::Acquire);
                if now >= until {
                    self.apply_health(&e.member, true);
                    tracing::info!(backend = %e.member.id(), "ejection ended");
                    health = HEALTH_HEALTHY;
                } else {
                    recheck = recheck.min(until);
                }
            }
            if health != HEALTH_HEALTHY {
                sick.push(e.member.clone());
                sick_weights.push(full);
                continue;
            }
            let mut w = full;
            let ramp_from = k.ramp_from.load(Ordering::Relaxed);
            if let (Some(ss), true) = (c.slow_start, ramp_from != 0) {
                let window = crate::clock::nanos(ss.window);
                let elapsed = now.saturating_sub(ramp_from);
                if elapsed >= window {
                    k.ramp_from.store(0, Ordering::Relaxed);
                } else {
                    let frac = ss.factor(elapsed, window);
                    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                    let ramped = (f64::from(full) * frac) as u32;
                    w = ramped.max(1);
                    recheck = recheck.min(now.saturating_add((window / 20).max(1)));
                }
            }
            eligible.push(e.member.clone());
            weights.push(w);
        }
        let healthy = eligible.len();
        let panic = self.panic_threshold > 0
            && serving > 0
            && healthy * 100 < usize::from(self.panic_threshold) * serving;
        if panic {
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
            .prepare(&View::new(&eligible, &weights, &all, c));
        let version = self.published.load(Ordering::Relaxed) + 1;
        self.snapshot.store(Arc::new(Snapshot {
            all,
            weights_all,
            eligible,
            weights,
            prepared,
            empty,
            panic,
            version,
        }));
        if recheck != u64::MAX {
            c.refresh_at.fetch_min(recheck, Ordering::AcqRel);
        }
        self.published.store(version, Ordering::Release);
    }
}

/// A per-thread cache of the latest snapshot of a few balancers: a pick that finds its
/// balancer's current version here reads the snapshot with no atomic read-modify-write at all
/// (an `arc-swap` load costs a few of them). It also holds the thread's rotation cursor for that
/// balancer (round robin, weighted round robin), which survives snapshot changes.
struct LocalSnapshot {
    version: u64,
    /// The snapshot, tagged with its balancer's `TypeTag`.
    snapshot: Tagged,
    cursor: Cell<usize>,
}

const LOCAL_SLOTS: usize = 4;

/// Attempts per pick when the chosen backends keep beginning to drain.
const DRAIN_RETRIES: usize = 4;

/// One pick attempt: a lease, or why there is none, or neither (refused by a backend that began
/// draining: pick again). A pair of a pointer and a byte, so it comes back in two registers
/// (`Option<Result<..>>` went through memory, with a store-forwarding stall on every pick).
type Attempt<B> = (Option<Lease<B>>, Option<NoBackend>);

thread_local! {
    static LOCAL: RefCell<[Option<LocalSnapshot>; LOCAL_SLOTS]> =
        const { RefCell::new([const { None }; LOCAL_SLOTS]) };
}

impl<B, P> Balancer<B, P>
where
    B: Send + Sync + 'static,
    P: Policy<B>,
{
    /// Chooses a backend for one request.
    ///
    /// Each thread that picks keeps a reference to the latest snapshot of the last few
    /// balancers it used (4), released when the thread exits or moves on to other balancers,
    /// and its own position in round-robin rotations (see [`RoundRobin`](crate::RoundRobin)).
    ///
    /// # Errors
    /// [`NoBackend`] with the reason when no backend can take the request.
    #[inline]
    pub fn pick(&self, ctx: &Context<'_>) -> Result<Lease<B>, NoBackend> {
        let refresh_at = self.control.refresh_at.load(Ordering::Relaxed);
        if refresh_at != u64::MAX && (refresh_at == 0 || self.control.now() >= refresh_at) {
            self.try_refresh();
        }
        // A pick refused by a backend that began draining meanwhile retries on the snapshot
        // `drain` published (visible by then); a few rounds cover a drain/undrain storm.
        for _ in 0..DRAIN_RETRIES {
            let version = self.published.load(Ordering::Acquire);
            match LOCAL.with(|cell| self.pick_local(cell, version, ctx)) {
                (Some(lease), _) => return Ok(lease),
                (None, Some(no)) => return Err(no),
                (None, None) => {}
            }
        }
        Err(NoBackend::AllDraining)
    }

    /// The pick through this thread's snapshot cache: an `Attempt`. Not inlined into
    /// `LOCAL.with`, so that one inlines into `pick` and the thread-local access is direct.
    #[inline(never)]
    fn pick_local(
        &self,
        cell: &RefCell<[Option<LocalSnapshot>; LOCAL_SLOTS]>,
        version: u64,
        ctx: &Context<'_>,
    ) -> Attempt<B> {
        let Ok(mut slots) = cell.try_borrow_mut() else {
            // Re-entered from a `Context::only` filter.
            return self.pick_shared(ctx);
        };
        // The balancer picked from last sits in slot 0.
        if slots[0]
            .as_ref()
            .is_none_or(|s| s.snapshot.tag() != self.tag.id())
        {
            self.local_slot(&mut slots);
        }
        let entry = slots[0].get_or_insert_with(|| self.local_entry(version));
        if entry.version != version {
            entry.snapshot = self.tag.wrap(self.snapshot.load_full());
            entry.version = version;
        }
        match self.tag.get(&entry.snapshot) {
            Some(snap) => self.pick_in(snap, ctx, Some(&entry.cursor)),
            None => self.pick_shared(ctx),
        }
    }

    /// The pick without this thread's cache (re-entrant picks).
    #[cold]
    #[inline(never)]
    fn pick_shared(&self, ctx: &Context<'_>) -> Attempt<B> {
        self.pick_in(&self.snapshot.load(), ctx, None)
    }

    /// Brings this balancer's entry to slot 0 of this thread's cache, evicting the least
    /// recently moved one if it has none (a thread's first pick here).
    #[cold]
    fn local_slot(&self, slots: &mut [Option<LocalSnapshot>; LOCAL_SLOTS]) {
        match slots.iter().position(|s| {
            s.as_ref()
                .is_some_and(|s| s.snapshot.tag() == self.tag.id())
        }) {
            Some(i) => slots.swap(0, i),
            None => {
                // Shift the others down; the last falls out.
                slots.rotate_right(1);
                slots[0] = None;
            }
        }
    }

    #[cold]
    fn local_entry(&self, version: u64) -> LocalSnapshot {
        LocalSnapshot {
            version,
            snapshot: self.tag.wrap(self.snapshot.load_full()),
            cursor: Cell::new(self.starts.fetch_add(1, Ordering::Relaxed)),
        }
    }

    #[inline(always)]
    fn pick_in(
        &self,
        snap: &Snapshot<B, P::Prepared>,
        ctx: &Context<'_>,
        cursor: Option<&Cell<usize>>,
    ) -> Attempt<B> {
        if snap.eligible.is_empty() {
            return (None, Some(snap.empty));
        }
        let mut view = View::new(&snap.eligible, &snap.weights, &snap.all, &self.control);
        if let Some(c) = cursor {
            view = view.with_cursor(c);
        }
        match self
            .policy
            .pick(&snap.prepared, &view, ctx)
            .and_then(|i| snap.eligible.get(i))
        {
            Some(member) => match Lease::new(member) {
                Ok(lease) => (Some(lease), None),
                Err(Refused::Saturated) => (None, Some(NoBackend::Saturated)),
                Err(Refused::Draining) => (None, None),
            },
            None if ctx.is_unrestricted() => (None, Some(NoBackend::NoneMatched)),
            None => (None, Some(NoBackend::AllExcluded)),
        }
    }
}

impl<B, P: Policy<B> + fmt::Debug> fmt::Debug for Balancer<B, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let snap = self.snapshot.load();
        f.debug_struct("Balancer")
            .field("policy", &self.policy)
            .field("members", &snap.all.len())
            .field("eligible", &snap.eligible.len())
            .field("panic", &snap.panic)
            .field("version", &snap.version)
            .finish_non_exhaustive()
    }
}

#[cfg(all(test, not(tierkit_loom)))]
mod tests {
    use std::time::Duration;

    use crate::{Backend, BackendId, Balancer, Context, PowerOfTwoChoices, RoundRobin};

    /// The whole pick path with leases outliving removal, draining and the balancer itself (run
    /// under Miri too: `cargo +nightly miri test -p tierkit-lb --lib`).
    #[test]
    fn leases_outlive_removal_drain_and_the_balancer() {
        let lb = Balancer::builder(RoundRobin::new())
            .backends((0..3u64).map(|i| Backend::new(i, format!("backend-{i}"))))
            .build()
            .unwrap_or_else(|_| unreachable!());
        let leases: Vec<_> = (0..6)
            .filter_map(|_| lb.pick(&Context::new()).ok())
            .collect();
        assert_eq!(leases.len(), 6);
        let drain = lb.drain(BackendId(1)).unwrap_or_else(|_| unreachable!());
        assert_eq!(drain.in_flight(), 2);
        lb.remove(BackendId(0)).unwrap_or_else(|_| unreachable!());
        lb.remove(BackendId(1)).unwrap_or_else(|_| unreachable!());
        let more = lb.pick(&Context::new()).unwrap_or_else(|_| unreachable!());
        assert_eq!(*more, "backend-2");
        let members = lb.members();
        drop(lb);
        let t = std::thread::spawn(move || {
            for (i, l) in leases.into_iter().enumerate() {
                assert!(l.starts_with("backend-"));
                if i % 2 == 0 {
                    l.success(Duration::from_millis(1));
                } else {
                    drop(l);
                }
            }
        });
        assert!(drain.wait_timeout(Duration::from_secs(10)));
        t.join().unwrap_or_else(|_| unreachable!());
        assert_eq!(members.len(), 1);
        drop(members);
        assert_eq!(*more, "backend-2");
        drop(more);
        // A fresh balancer on this thread after the old one's cache entry went stale.
        let lb = Balancer::builder(PowerOfTwoChoices::new())
            .backends((0..2u64).map(|i| Backend::new(i, i)))
            .build()
            .unwrap_or_else(|_| unreachable!());
        let l = lb.pick(&Context::new()).unwrap_or_else(|_| unreachable!());
        assert!(*l < 2);
    }
}
