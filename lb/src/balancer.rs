//! [`Balancer`]: membership snapshots, the pick path and membership changes.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use arc_swap::ArcSwap;
use crossbeam_utils::CachePadded;
use parking_lot::Mutex;
use tierkit_consistent_hash::{Key, KeyHasher};

use crate::backend::{HEALTH_EJECTED, HEALTH_HEALTHY, HEALTH_UNHEALTHY, Member};
use crate::builder::BalancerBuilder;
use crate::health::Control;
use crate::{Backend, BackendId, Context, Drain, Error, Lease, NoBackend, Policy, Result, View};

/// Effective weights are configured weights times this, so slow start can ramp a weight-1
/// backend in 1% steps.
pub(crate) const WEIGHT_SCALE: u32 = 100;

/// A member and its configured weight, as the membership list holds them.
pub(crate) struct Entry<B> {
    pub(crate) member: Arc<Member<B>>,
    pub(crate) weight: u32,
}

/// One immutable view of the pool, published atomically on every change.
pub(crate) struct Snapshot<B, T> {
    pub(crate) all: Vec<Arc<Member<B>>>,
    pub(crate) weights_all: Vec<u32>,
    pub(crate) eligible: Vec<Arc<Member<B>>>,
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
    /// Clock nanos at which time-driven state of the published snapshot (ejection end,
    /// slow-start step) changes; `u64::MAX` = never.
    recheck_at: AtomicU64,
    /// Identifies this balancer in the per-thread snapshot caches.
    uid: u64,
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
            if entries.iter().any(|e| e.member.id == spec.id) {
                return Err(Error::DuplicateId(spec.id));
            }
            let health = if start_unhealthy {
                HEALTH_UNHEALTHY
            } else {
                HEALTH_HEALTHY
            };
            let weight = spec.weight;
            let member = Arc::new(Member::new(spec, Arc::clone(&control), health, 0));
            entries.push(Entry { member, weight });
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
            recheck_at: AtomicU64::new(u64::MAX),
            uid: NEXT_UID.fetch_add(1, Ordering::Relaxed),
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
        if entries.iter().any(|e| e.member.id == backend.id) {
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
        let member = Arc::new(Member::new(
            backend,
            Arc::clone(&self.control),
            health,
            ramp,
        ));
        tracing::info!(backend = %member.id, weight, "backend added");
        entries.push(Entry { member, weight });
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
            .position(|e| e.member.id == id)
            .ok_or(Error::UnknownBackend(id))?;
        let entry = entries.remove(pos);
        if entry.member.counters.health.load(Ordering::Acquire) == HEALTH_EJECTED {
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
            .find(|e| e.member.id == id)
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
        let entries = self.membership.lock();
        let entry = entries
            .iter()
            .find(|e| e.member.id == id)
            .ok_or(Error::UnknownBackend(id))?;
        entry.member.counters.draining.store(1, Ordering::Release);
        let member = Arc::clone(&entry.member);
        tracing::info!(backend = %id, in_flight = member.in_flight(), "backend draining");
        self.publish(&entries);
        Ok(Drain::new(member))
    }

    /// Puts a drained backend back into service.
    ///
    /// # Errors
    /// [`Error::UnknownBackend`] if no member has this id.
    pub fn undrain(&self, id: BackendId) -> Result<()> {
        let entries = self.membership.lock();
        let entry = entries
            .iter()
            .find(|e| e.member.id == id)
            .ok_or(Error::UnknownBackend(id))?;
        entry.member.counters.draining.store(0, Ordering::Release);
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
            .find(|e| e.member.id == id)
            .ok_or(Error::UnknownBackend(id))?;
        self.apply_health(&entry.member, healthy);
        self.publish(&entries);
        Ok(())
    }

    pub(crate) fn apply_health(&self, member: &Member<B>, healthy: bool) {
        let c = &member.counters;
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
            tracing::info!(backend = %member.id, "backend healthy");
        } else {
            tracing::warn!(backend = %member.id, "backend unhealthy");
        }
    }

    /// Republishes the snapshot now (time-driven changes are otherwise noticed by the next
    /// pick).
    pub fn refresh(&self) {
        let entries = self.membership.lock();
        self.control.dirty.store(false, Ordering::Release);
        self.publish(&entries);
    }

    #[cold]
    fn try_refresh(&self) {
        if let Some(entries) = self.membership.try_lock() {
            self.control.dirty.store(false, Ordering::Release);
            self.publish(&entries);
        }
    }

    /// The policy.
    pub fn policy(&self) -> &P {
        &self.policy
    }

    /// The members (eligible or not), in the order they were added.
    pub fn members(&self) -> Vec<Arc<Member<B>>> {
        self.snapshot.load().all.clone()
    }

    /// Whether picks can choose backend `id` now: it is in the published snapshot's eligible
    /// set (healthy, serving; or any serving backend in panic mode). O(members), no allocation.
    /// A health change made on the pick path (an ejection) shows here once the snapshot is
    /// republished, which the next pick does.
    pub fn is_eligible(&self, id: BackendId) -> bool {
        self.snapshot.load().eligible.iter().any(|m| m.id == id)
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
        let now = c.now();
        let mut recheck = u64::MAX;
        let (mut eligible, mut weights) = (Vec::new(), Vec::new());
        let (mut sick, mut sick_weights) = (Vec::new(), Vec::new());
        let mut serving = 0usize;
        for e in entries {
            let k = &e.member.counters;
            if k.draining.load(Ordering::Acquire) != 0 || e.weight == 0 {
                continue;
            }
            serving += 1;
            let full = e.weight.saturating_mul(WEIGHT_SCALE);
            let mut health = k.health.load(Ordering::Acquire);
            if health == HEALTH_EJECTED {
                let until = k.ejected_until.load(Ordering::Acquire);
                if now >= until {
                    self.apply_health(&e.member, true);
                    tracing::info!(backend = %e.member.id, "ejection ended");
                    health = HEALTH_HEALTHY;
                } else {
                    recheck = recheck.min(until);
                }
            }
            if health != HEALTH_HEALTHY {
                sick.push(Arc::clone(&e.member));
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
                    #[allow(clippy::cast_precision_loss)]
                    let frac =
                        (elapsed as f64 / window as f64).max(f64::from(ss.min_percent) / 100.0);
                    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                    let ramped = (f64::from(full) * frac) as u32;
                    w = ramped.max(1);
                    recheck = recheck.min(now.saturating_add((window / 20).max(1)));
                }
            }
            eligible.push(Arc::clone(&e.member));
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
        let all: Vec<Arc<Member<B>>> = entries.iter().map(|e| Arc::clone(&e.member)).collect();
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
        self.recheck_at.store(recheck, Ordering::Relaxed);
        self.published.store(version, Ordering::Release);
    }
}

/// A per-thread cache of the latest snapshot of a few balancers: a pick that finds its
/// balancer's current version here reads the snapshot with no atomic read-modify-write at all
/// (an `arc-swap` load costs a few of them).
struct LocalSnapshot {
    uid: u64,
    version: u64,
    snapshot: Arc<dyn Any + Send + Sync>,
}

const LOCAL_SLOTS: usize = 4;

thread_local! {
    static LOCAL: RefCell<[Option<LocalSnapshot>; LOCAL_SLOTS]> =
        const { RefCell::new([const { None }; LOCAL_SLOTS]) };
    static LOCAL_VICTIM: Cell<usize> = const { Cell::new(0) };
}

static NEXT_UID: AtomicU64 = AtomicU64::new(1);

impl<B, P> Balancer<B, P>
where
    B: Send + Sync + 'static,
    P: Policy<B>,
{
    /// Chooses a backend for one request.
    ///
    /// Each thread that picks keeps a reference to the latest snapshot of the last few
    /// balancers it used (4), released when the thread exits or moves on to other balancers.
    ///
    /// # Errors
    /// [`NoBackend`] with the reason when no backend can take the request.
    #[inline]
    pub fn pick(&self, ctx: &Context<'_>) -> Result<Lease<B>, NoBackend> {
        let recheck = self.recheck_at.load(Ordering::Relaxed);
        if self.control.dirty.load(Ordering::Relaxed)
            || (recheck != u64::MAX && self.control.now() >= recheck)
        {
            self.try_refresh();
        }
        let version = self.published.load(Ordering::Acquire);
        LOCAL.with(|cell| match cell.try_borrow_mut() {
            Ok(mut slots) => {
                let slot = match slots
                    .iter()
                    .position(|s| s.as_ref().is_some_and(|s| s.uid == self.uid))
                {
                    Some(i) => i,
                    None => {
                        let i = LOCAL_VICTIM.with(|v| {
                            let i = v.get();
                            v.set((i + 1) % LOCAL_SLOTS);
                            i
                        });
                        slots[i] = None;
                        i
                    }
                };
                let entry = slots[slot].get_or_insert_with(|| LocalSnapshot {
                    uid: self.uid,
                    version,
                    snapshot: self.snapshot.load_full(),
                });
                if entry.version != version {
                    entry.snapshot = self.snapshot.load_full();
                    entry.version = version;
                }
                match entry.snapshot.downcast_ref::<Snapshot<B, P::Prepared>>() {
                    Some(snap) => self.pick_in(snap, ctx),
                    None => self.pick_in(&self.snapshot.load(), ctx),
                }
            }
            // Re-entered from a `Context::only` filter: take the shared path.
            Err(_) => self.pick_in(&self.snapshot.load(), ctx),
        })
    }

    #[inline]
    fn pick_in(
        &self,
        snap: &Snapshot<B, P::Prepared>,
        ctx: &Context<'_>,
    ) -> Result<Lease<B>, NoBackend> {
        if snap.eligible.is_empty() {
            return Err(snap.empty);
        }
        let view = View::new(&snap.eligible, &snap.weights, &snap.all, &self.control);
        match self
            .policy
            .pick(&snap.prepared, &view, ctx)
            .and_then(|i| snap.eligible.get(i))
        {
            Some(member) => Ok(Lease::new(Arc::clone(member))),
            None if ctx.is_unrestricted() => Err(NoBackend::NoneMatched),
            None => Err(NoBackend::AllExcluded),
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
