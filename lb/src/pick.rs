//! The pick path: the per-thread snapshot cache and [`Balancer::pick`]. Nothing here locks,
//! allocates (after a thread's first pick of a balancer) or rebuilds: a stale snapshot is only
//! reported to the background refresher.

use std::cell::{Cell, RefCell};
use std::sync::atomic::Ordering;

use crate::refcount::Refused;
use crate::snapshot::{RETIRED, Snapshot};
use crate::tagged::Tagged;
use crate::{Balancer, Context, Lease, NoBackend, Policy, View};

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
    /// The value of `RETIRED` this thread's cache was last swept at.
    static SWEPT: Cell<u64> = const { Cell::new(0) };
}

/// Releases the calling thread's cached snapshots of every balancer (and with them the
/// backends they hold; see [`Balancer::remove`]). Picks need none of this: a thread's next pick
/// releases its stale entries by itself. For threads that are done picking but live on.
pub fn release_thread_snapshots() {
    let taken = LOCAL.try_with(|cell| {
        cell.try_borrow_mut()
            .map(|mut slots| std::mem::replace(&mut *slots, [const { None }; LOCAL_SLOTS]))
            .ok()
    });
    // Dropped outside the borrow: a snapshot's drop may run user code (the backend's `Drop`).
    drop(taken);
}

/// Drops this thread's cache entries whose balancer moved on (or was dropped). Out of line:
/// runs once per thread after a removal anywhere in the process.
#[cold]
#[inline(never)]
fn sweep(cell: &RefCell<[Option<LocalSnapshot>; LOCAL_SLOTS]>, retired: u64) {
    SWEPT.with(|s| s.set(retired));
    let mut stale: [Option<LocalSnapshot>; LOCAL_SLOTS] = [const { None }; LOCAL_SLOTS];
    if let Ok(mut slots) = cell.try_borrow_mut() {
        for (slot, out) in slots.iter_mut().zip(stale.iter_mut()) {
            if slot.as_ref().is_some_and(|s| !s.snapshot.is_current()) {
                *out = slot.take();
            }
        }
    }
    // Released (`Tagged`'s drop asks each balancer's refresher to free what it held last; a
    // dropped balancer's snapshot is freed right here: its core is gone).
    drop(stale);
}

impl<B, P> Balancer<B, P>
where
    B: Send + Sync + 'static,
    P: Policy<B>,
{
    /// Chooses a backend for one request.
    ///
    /// Lock-free and allocation-free, and it never rebuilds the snapshot: a snapshot made stale
    /// by time (an ejection's end, a slow-start step) is reported to the background refresher
    /// (one flag, one unpark), and the pick goes on with the published one.
    ///
    /// Each thread that picks keeps a reference to the latest snapshot of the last few
    /// balancers it used (4), and its own position in round-robin rotations (see
    /// [`RoundRobin`](crate::RoundRobin)). A cached snapshot that is no longer current (after a
    /// [`remove`](Self::remove), or of a dropped balancer) is let go by the thread's next pick of
    /// any balancer, when it exits, or by [`release_thread_snapshots`](crate::release_thread_snapshots).
    ///
    /// # Errors
    /// [`NoBackend`] with the reason when no backend can take the request.
    #[inline]
    pub fn pick(&self, ctx: &Context<'_>) -> Result<Lease<B>, NoBackend> {
        let control = &self.core.control;
        if control.refresh_at.load(Ordering::Relaxed) != u64::MAX
            && !control.refresh_requested.load(Ordering::Relaxed)
            && control.is_stale()
        {
            // Never rebuilt here: the refresher (or the next `refresh`) publishes.
            control.request_refresh();
        }
        // A pick refused by a backend that began draining meanwhile retries on the snapshot
        // `drain` published (visible by then); a few rounds cover a drain/undrain storm.
        for _ in 0..DRAIN_RETRIES {
            let version = self.core.published.load(Ordering::Acquire);
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
        let retired = RETIRED.load(Ordering::Acquire);
        if retired != SWEPT.with(Cell::get) {
            sweep(cell, retired);
        }
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
            // The old one is released (`Tagged`'s drop): never freed here while the core's
            // retired list holds it; the refresher frees it.
            entry.snapshot = self.tag.wrap(self.core.snapshot.load_full());
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
        self.pick_in(&self.core.snapshot.load(), ctx, None)
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
            snapshot: self.tag.wrap(self.core.snapshot.load_full()),
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
        let mut view = View::new(
            &snap.eligible,
            &snap.weights,
            &snap.full,
            &snap.all,
            &self.core.control,
        );
        if let Some(c) = cursor {
            view = view.with_cursor(c);
        }
        match self
            .core
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
