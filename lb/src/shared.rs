//! The crate's `unsafe` for one backend's state: one allocation per backend ([`Shared`]) and the
//! two kinds of reference to it, handles ([`Member`]) and leases ([`LeaseRef`]), counted by hand
//! by [`RefCounts`] (`refcount.rs`, which documents the protocol and holds its loom models).

#![allow(unsafe_code)]

use std::marker::PhantomData;
use std::ptr::NonNull;

use crate::backend::Shared;
#[cfg(doc)]
use crate::refcount::RefCounts;
use crate::refcount::{Refused, Released};

/// A backend as the balancer holds it: the user's value and the backend's live state
/// (identity, in-flight count, latency estimate, health).
///
/// A handle: clones are cheap (one atomic increment) and share the same state, like an `Arc`.
/// Snapshots, [`Balancer::members`](crate::Balancer::members) and [`Drain`](crate::Drain) hold
/// handles; the state survives every rebuild and lives until the last handle and the last
/// [`Lease`](crate::Lease) of it are dropped.
pub struct Member<B> {
    ptr: NonNull<Shared<B>>,
    _owns: PhantomData<Shared<B>>,
}

// SAFETY: a `Member` is a shared reference to a `Shared<B>` that any thread may drop last (which
// drops the `B`): `B: Send + Sync` is exactly what `Arc<Shared<B>>` would require. Everything
// else in `Shared` is `Send + Sync`, and its mutable state is atomics.
unsafe impl<B: Send + Sync> Send for Member<B> {}
// SAFETY: as for `Send`; `&Member` only gives `&B` and atomic operations.
unsafe impl<B: Send + Sync> Sync for Member<B> {}

impl<B> Member<B> {
    /// Allocates the backend's state with one handle (this one).
    pub(crate) fn new(shared: Shared<B>) -> Self {
        Self {
            ptr: NonNull::from(Box::leak(Box::new(shared))),
            _owns: PhantomData,
        }
    }

    /// The backend's state.
    #[inline]
    pub(crate) fn shared(&self) -> &Shared<B> {
        // SAFETY: `self` is a counted handle, so `OWNED` is set and the allocation is not freed
        // before `self` is dropped (module docs); the returned borrow cannot outlive `self`.
        unsafe { self.ptr.as_ref() }
    }

    /// Whether two handles refer to the same backend state.
    #[inline]
    pub(crate) fn same(&self, other: &Self) -> bool {
        self.ptr == other.ptr
    }
}

impl<B> Clone for Member<B> {
    #[inline]
    fn clone(&self) -> Self {
        self.shared().counters.refs.clone_handle();
        Self {
            ptr: self.ptr,
            _owns: PhantomData,
        }
    }
}

impl<B> Drop for Member<B> {
    #[inline]
    fn drop(&mut self) {
        if self.shared().counters.refs.release_handle() {
            // SAFETY: the last handle with no lease alive: no other reference exists or can be
            // made (leases come from handles), and the `Acquire` fence in `release_handle`
            // ordered every other holder's accesses before this point. The pointer came from
            // `Box::leak` in `Member::new`.
            drop(unsafe { Box::from_raw(self.ptr.as_ptr()) });
        }
    }
}

/// One lease's reference: one unit of the backend's in-flight count.
pub(crate) struct LeaseRef<B> {
    ptr: NonNull<Shared<B>>,
    _owns: PhantomData<Shared<B>>,
}

// SAFETY: as for `Member`: the last lease may drop the `B` on any thread, and `&LeaseRef` only
// gives `&B` and atomic operations.
unsafe impl<B: Send + Sync> Send for LeaseRef<B> {}
// SAFETY: as above.
unsafe impl<B: Send + Sync> Sync for LeaseRef<B> {}

impl<B> LeaseRef<B> {
    /// Counts a pick of `member` and takes a lease on it, unless refused.
    #[inline]
    pub(crate) fn new(member: &Member<B>) -> Result<Self, Refused> {
        member.shared().counters.refs.acquire_lease()?;
        Ok(Self {
            ptr: member.ptr,
            _owns: PhantomData,
        })
    }

    /// The backend's state.
    #[inline]
    pub(crate) fn shared(&self) -> &Shared<B> {
        // SAFETY: `self` holds one unit of in flight, so the allocation is not freed before
        // `self` is dropped (module docs); the returned borrow cannot outlive `self`.
        unsafe { self.ptr.as_ref() }
    }
}

impl<B> Drop for LeaseRef<B> {
    #[inline]
    fn drop(&mut self) {
        match self.shared().counters.refs.release_lease() {
            Released::Alive => {}
            Released::Drained => crate::drain::signal_drained(),
            Released::Free => {
                // SAFETY: the last lease after the last handle: no other reference exists or
                // can be made, and `release_lease`'s `Acquire` fence ordered every other
                // holder's accesses before this point. The pointer came from `Box::leak`.
                drop(unsafe { Box::from_raw(self.ptr.as_ptr()) });
            }
        }
    }
}

#[cfg(all(test, not(tierkit_loom)))]
mod tests {
    use super::*;
    use crate::refcount::Refused;

    #[test]
    fn handles_and_leases_free_exactly_once_across_threads() {
        use std::sync::Arc as StdArc;
        use std::sync::atomic::AtomicUsize as StdAtomicUsize;

        use crate::Backend;
        use crate::ManualClock;
        use crate::backend::HEALTH_HEALTHY;
        use crate::control::Control;

        struct Tracked(StdArc<StdAtomicUsize>, u64);
        impl Drop for Tracked {
            fn drop(&mut self) {
                self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        }
        let control = StdArc::new(
            Control::new(
                Box::new(ManualClock::new()),
                None,
                None,
                std::time::Duration::from_secs(10),
                std::time::Duration::from_secs(1),
            )
            .unwrap_or_else(|_| unreachable!()),
        );
        let rounds = if cfg!(miri) { 4 } else { 200 };
        for round in 0..rounds {
            let drops = StdArc::new(StdAtomicUsize::new(0));
            let m = Member::new(Shared::new(
                Backend::new(1, Tracked(drops.clone(), 42)),
                control.clone(),
                HEALTH_HEALTHY,
                0,
            ));
            let leases: Vec<_> = (0..3).filter_map(|_| LeaseRef::new(&m).ok()).collect();
            let handles: Vec<_> = (0..2).map(|_| m.clone()).collect();
            if round % 2 == 0 {
                m.shared().counters.refs.set_draining(true);
                assert_eq!(LeaseRef::new(&m).err(), Some(Refused::Draining));
            }
            drop(m);
            std::thread::scope(|s| {
                for l in leases {
                    s.spawn(move || {
                        assert_eq!(l.shared().value.1, 42);
                        drop(l);
                    });
                }
                for h in handles {
                    s.spawn(move || {
                        assert_eq!(h.shared().value.1, 42);
                        drop(h);
                    });
                }
            });
            assert_eq!(drops.load(std::sync::atomic::Ordering::SeqCst), 1);
        }
    }
}
