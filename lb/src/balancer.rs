//! [`Balancer`]: the public handle, membership changes and state queries. The snapshot and its
//! publisher are in `snapshot.rs`, the pick path in `pick.rs`.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tierkit_consistent_hash::{Key, KeyHasher};

use crate::backend::{HEALTH_EJECTED, HEALTH_HEALTHY, HEALTH_UNHEALTHY};
use crate::builder::BalancerBuilder;
use crate::control::{Control, Republish};
use crate::snapshot::{Core, Entry, RETIRED, Snapshot};
use crate::tagged::TypeTag;
use crate::{
    Backend, BackendId, Drain, Error, LeastLatency, Member, Policy, Rejected, Result, eject,
};

/// A pool of backends and a [`Policy`]: asks for one backend per request.
///
/// `pick` is `&self`, lock-free and allocation-free, and never rebuilds anything: it reads the
/// current snapshot (membership, weights and health view, published together), lets the policy
/// choose, and returns a [`Lease`](crate::Lease). Membership changes (`add`, `remove`, `set_weight`, `drain`)
/// and health changes (`set_healthy`, health checks, an ejection in [`Lease::failure`](crate::Lease::failure)) publish a
/// new snapshot on the calling thread; time-driven changes (an ejection's end, slow-start steps)
/// are published by a background refresher thread (see
/// [`BalancerBuilder::background_refresh`](crate::BalancerBuilder::background_refresh)) or by
/// [`refresh`](Self::refresh). Per-backend counters live with the backend and survive every
/// rebuild.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use tierkit_lb::{Backend, Balancer, Context, NoBackend, OutlierDetection, PowerOfTwoChoices};
///
/// let lb = Balancer::builder().policy(PowerOfTwoChoices::new())
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
    pub(crate) core: Arc<Core<B, P>>,
    hasher: KeyHasher,
    start_unhealthy: bool,
    /// Identifies this balancer (and its snapshot type) in the per-thread snapshot caches.
    pub(crate) tag: TypeTag<Snapshot<B, P::Prepared>>,
    /// Where the next thread's rotation starts (its first pick takes the next position).
    pub(crate) starts: AtomicUsize,
}

impl<B> Balancer<B, LeastLatency> {
    /// Starts configuring a balancer with the recommended default policy,
    /// [`LeastLatency::new`] (peak EWMA x load over all backends up to 16 backends, power of
    /// two choices above; see the crate README's situation table). [`BalancerBuilder::policy`] picks another.
    ///
    /// ```
    /// use tierkit_lb::{Backend, Balancer, LeastLatency};
    ///
    /// let lb = Balancer::builder().backends((0..4).map(|i| Backend::new(i, i))).build()?;
    /// let _: &LeastLatency = lb.policy();
    /// # Ok::<(), tierkit_lb::Error>(())
    /// ```
    pub fn builder() -> BalancerBuilder<B, LeastLatency> {
        BalancerBuilder::with_policy(LeastLatency::new())
    }
}

impl<B, P: Policy<B>> Balancer<B, P> {
    /// Hashes a request key with the balancer's keyed SipHash, for
    /// [`Context::with_hash`](crate::Context::with_hash).
    #[inline]
    pub fn hash_key<K: Key + ?Sized>(&self, key: &K) -> u64 {
        self.hasher.hash(key)
    }

    /// The policy.
    pub fn policy(&self) -> &P {
        &self.core.policy
    }

    /// The members (eligible or not), in the order they were added.
    pub fn members(&self) -> Vec<Member<B>> {
        self.core.snapshot.load().all.clone()
    }

    /// Whether picks can choose backend `id` now: it is in the published snapshot's eligible
    /// set (healthy, serving; or any serving backend in panic mode). O(members), no allocation.
    ///
    /// Consistent with picks: once this returns `false`, no pick that starts afterwards, on any
    /// thread, chooses `id` (until a later change makes it eligible again). A call that lands
    /// while a change is being published waits for the publisher's next store.
    pub fn is_eligible(&self, id: BackendId) -> bool {
        let snapshot = self.core.snapshot.load();
        // Picks use their thread's cached snapshot until the version bump that follows the
        // swap (the two stores are adjacent, under a lock nothing else holds long).
        while self.core.published.load(Ordering::Acquire) < snapshot.version {
            std::thread::yield_now();
        }
        snapshot.eligible.iter().any(|m| m.id() == id)
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.core.snapshot.load().all.len()
    }

    /// Whether the pool has no members.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn snapshot(&self) -> arc_swap::Guard<Arc<Snapshot<B, P::Prepared>>> {
        self.core.snapshot.load()
    }

    /// Republishes the snapshot now, on this thread (time-driven changes are otherwise published
    /// by the background refresher).
    pub fn refresh(&self) {
        self.core.publish(&self.core.membership.lock());
        self.core.reap();
    }

    /// Republishes the snapshot if a time-driven change (an ejection's end, a slow-start step)
    /// is due by the balancer's clock, or a pick asked for it; cheap otherwise (one or two
    /// atomic loads and at most one clock read). For balancers built with
    /// `background_refresh(false)` (simulations, deterministic tests), call it whenever time
    /// moves.
    pub fn refresh_if_stale(&self) {
        let _ = self.core.refresh_if_due();
    }

    #[cfg(feature = "tokio")]
    pub(crate) fn apply_health(&self, member: &Member<B>, healthy: bool) {
        self.core.apply_health(member, healthy);
    }
}

impl<B, P> Balancer<B, P>
where
    B: Send + Sync + 'static,
    P: Policy<B>,
{
    pub(crate) fn from_parts(
        policy: P,
        control: Control,
        hasher: KeyHasher,
        panic_threshold: u8,
        start_unhealthy: bool,
        background_refresh: bool,
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
        let core = Arc::new(Core::new(
            policy,
            Arc::clone(&control),
            panic_threshold,
            entries,
        ));
        let dyn_core: Arc<dyn Republish> = core.clone();
        let weak = Arc::downgrade(&dyn_core);
        drop(dyn_core);
        let _ = control.republish.set(weak.clone());
        if background_refresh {
            crate::refresher::register(weak);
        }
        let lb = Self {
            core,
            hasher,
            start_unhealthy,
            tag: TypeTag::new(),
            starts: AtomicUsize::new(0),
        };
        lb.refresh();
        Ok(lb)
    }
}

impl<B, P: Policy<B>> Balancer<B, P> {
    /// Adds a backend and publishes the new snapshot. Backends added after the build slow-start
    /// if configured, and start unhealthy (until their first passing check) with
    /// `start_unhealthy`.
    ///
    /// # Errors
    /// [`Error::DuplicateId`] if a member already has this id; nothing changes and the backend
    /// comes back in the [`Rejected`].
    pub fn add(&self, backend: Backend<B>) -> Result<(), Rejected<Backend<B>>> {
        let mut entries = self.core.membership.lock();
        if entries.iter().any(|e| e.member.id() == backend.id) {
            return Err(Rejected::new(Error::DuplicateId(backend.id), backend));
        }
        let health = if self.start_unhealthy {
            HEALTH_UNHEALTHY
        } else {
            HEALTH_HEALTHY
        };
        let control = &self.core.control;
        let ramp = if control.slow_start.is_some() {
            control.now().max(1)
        } else {
            0
        };
        let weight = backend.weight;
        let member = Member::from_spec(backend, Arc::clone(control), health, ramp);
        tracing::info!(backend = %member.id(), weight, "backend added");
        entries.push(Entry {
            member,
            weight,
            draining: false,
        });
        self.core.publish(&entries);
        drop(entries);
        self.core.reap();
        Ok(())
    }

    /// Removes a backend: no pick that starts after this returns can choose it. Leases already
    /// handed out stay valid and keep the backend's value alive until dropped.
    ///
    /// The balancer lets go of the backend at once. Threads that picked from this balancer
    /// cache its last snapshot (which holds the backend) and release it on their next pick from
    /// any balancer; a thread that will not pick again can release its cache with
    /// [`release_thread_snapshots`](crate::release_thread_snapshots), and a thread's cache is
    /// freed when it exits. So the backend's value (`B`, for example a connection pool) is
    /// dropped after the last lease, the last [`Member`] handle the application holds, and one
    /// pick on every thread that cached it.
    ///
    /// # Errors
    /// [`Error::UnknownBackend`] if no member has this id.
    pub fn remove(&self, id: BackendId) -> Result<()> {
        let mut entries = self.core.membership.lock();
        let pos = entries
            .iter()
            .position(|e| e.member.id() == id)
            .ok_or(Error::UnknownBackend(id))?;
        let entry = entries.remove(pos);
        if entry
            .member
            .counters()
            .health
            .swap(HEALTH_UNHEALTHY, Ordering::AcqRel)
            == HEALTH_EJECTED
        {
            eject::release_slot(&self.core.control.ejected);
        }
        tracing::info!(backend = %id, "backend removed");
        self.core.publish(&entries);
        drop(entries);
        drop(entry);
        self.core.reap();
        RETIRED.fetch_add(1, Ordering::Release);
        Ok(())
    }

    /// Changes a backend's weight. Zero drains it (no new picks) without removing it.
    ///
    /// # Errors
    /// [`Error::UnknownBackend`] if no member has this id.
    pub fn set_weight(&self, id: BackendId, weight: u32) -> Result<()> {
        let mut entries = self.core.membership.lock();
        let entry = entries
            .iter_mut()
            .find(|e| e.member.id() == id)
            .ok_or(Error::UnknownBackend(id))?;
        entry.weight = weight;
        tracing::info!(backend = %id, weight, "backend weight changed");
        self.core.publish(&entries);
        drop(entries);
        self.core.reap();
        Ok(())
    }

    /// Stops new picks of a backend and returns a handle that completes when its last lease
    /// drops. The backend stays a member (and in stats) until [`remove`](Self::remove)d.
    ///
    /// # Errors
    /// [`Error::UnknownBackend`] if no member has this id.
    pub fn drain(&self, id: BackendId) -> Result<Drain<B>> {
        let mut entries = self.core.membership.lock();
        let pos = entries
            .iter()
            .position(|e| e.member.id() == id)
            .ok_or(Error::UnknownBackend(id))?;
        entries[pos].draining = true;
        // Publish the snapshot without it first, then flag the member: a pick still working on
        // an older snapshot that reaches it afterwards is refused and retries on the new one, so
        // once the in-flight count reads zero no lease can appear again.
        self.core.publish(&entries);
        let member = entries[pos].member.clone();
        let in_flight = member.counters().refs.set_draining(true);
        tracing::info!(backend = %id, in_flight, "backend draining");
        drop(entries);
        self.core.reap();
        Ok(Drain::new(member))
    }

    /// Puts a drained backend back into service.
    ///
    /// # Errors
    /// [`Error::UnknownBackend`] if no member has this id.
    pub fn undrain(&self, id: BackendId) -> Result<()> {
        let mut entries = self.core.membership.lock();
        let entry = entries
            .iter_mut()
            .find(|e| e.member.id() == id)
            .ok_or(Error::UnknownBackend(id))?;
        entry.draining = false;
        entry.member.counters().refs.set_draining(false);
        self.core.publish(&entries);
        drop(entries);
        self.core.reap();
        Ok(())
    }

    /// Marks a backend healthy or unhealthy by hand (active health checks call this for you).
    /// Marking an ejected backend healthy ends its ejection early.
    ///
    /// # Errors
    /// [`Error::UnknownBackend`] if no member has this id.
    pub fn set_healthy(&self, id: BackendId, healthy: bool) -> Result<()> {
        let entries = self.core.membership.lock();
        let entry = entries
            .iter()
            .find(|e| e.member.id() == id)
            .ok_or(Error::UnknownBackend(id))?;
        self.core.apply_health(&entry.member, healthy);
        self.core.publish(&entries);
        drop(entries);
        self.core.reap();
        Ok(())
    }
}

impl<B, P: Policy<B> + fmt::Debug> fmt::Debug for Balancer<B, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let snap = self.core.snapshot.load();
        f.debug_struct("Balancer")
            .field("policy", &self.core.policy)
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

    /// The whole pick path with leases outliving removal, draining and the balancer itself.
    #[test]
    fn leases_outlive_removal_drain_and_the_balancer() {
        let lb = Balancer::builder()
            .policy(RoundRobin::new())
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
        let lb = Balancer::builder()
            .policy(PowerOfTwoChoices::new())
            .backends((0..2u64).map(|i| Backend::new(i, i)))
            .build()
            .unwrap_or_else(|_| unreachable!());
        let l = lb.pick(&Context::new()).unwrap_or_else(|_| unreachable!());
        assert!(*l < 2);
    }
}
