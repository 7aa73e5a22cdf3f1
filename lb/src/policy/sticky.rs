//! [`Sticky`]: session affinity that moves a key only when its backend leaves, in a bounded,
//! allocation-free table.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::control::nanos;
use crate::error::{Error, Result};
use crate::{BackendId, Context, Policy, View};

/// Keys per bucket: a key lives in one bucket of this many slots (set-associative).
const WAYS: usize = 8;
/// Key value of an empty slot. Key hashes 0 and `u64::MAX` are stored as 1 and `u64::MAX - 1`.
const EMPTY: u64 = 0;
/// Key value of a slot being written.
const BUSY: u64 = u64::MAX;

/// Session affinity: the first request with a key is placed by the inner policy `P`, and every
/// later request with that key goes to the same backend for as long as it stays in the serving
/// set. When it leaves (removed, drained, ejected, failing checks) the key is re-placed by `P`
/// and stays on its new backend, also after the old one returns: a session moves once, not
/// twice.
///
/// A request that excludes the bound backend (a retry) is placed by `P` for that request only,
/// without rebinding. Requests without a key go straight to `P`.
///
/// **Bounded.** The key table is allocated once, at construction, with room for `capacity` keys
/// (rounded up to a power of two, at least 8) in buckets of 8: no pick ever allocates, whether
/// its key is new or not, and clients choosing keys cannot grow it. A key idle for longer than
/// `idle` (by the balancer's clock, read as the time of its latest reported response) is
/// forgotten; when a new key finds its bucket full of live keys, the least recently used one is
/// evicted (its session is re-placed on its next request). Defaults: 16,384 keys, 1 hour.
/// [`forget`](Sticky::forget) and [`clear`](Sticky::clear) drop bindings by hand. A
/// binding's backend that has left is noticed (and the key re-placed) by the key's next request.
///
/// The table is lock-free: a binding is written by compare-and-swap on its slot; two concurrent
/// first requests of one key may both place it (the later write wins the slot).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use tierkit_lb::{Backend, Balancer, Context, LeastConnections, Sticky};
///
/// let sticky = Sticky::bounded(LeastConnections::new(), 100_000, Duration::from_secs(1800))?;
/// let lb = Balancer::builder(sticky)
///     .backends((0..3).map(|i| Backend::new(i, i)))
///     .build()?;
/// let ctx = Context::new().with_hash(lb.hash_key("session-9f2c"));
/// let first = lb.pick(&ctx)?.id();
/// for _ in 0..10 {
///     assert_eq!(lb.pick(&ctx)?.id(), first);
/// }
/// # Ok::<(), tierkit_lb::Error>(())
/// ```
pub struct Sticky<P> {
    inner: P,
    slots: Box<[Slot]>,
    /// `slots.len() / WAYS - 1`.
    bucket_mask: usize,
    idle_nanos: u64,
}

/// One binding: key hash, backend id and last use (clock nanos).
#[derive(Default)]
struct Slot {
    key: AtomicU64,
    backend: AtomicU64,
    used: AtomicU64,
}

impl<P> Sticky<P> {
    /// Affinity over `inner`, which places new keys: 16,384 keys, forgotten after 1 hour idle.
    #[must_use]
    pub fn new(inner: P) -> Self {
        Self::build(inner, 16_384, Duration::from_secs(3600))
    }

    /// Affinity over `inner` for up to `capacity` keys (rounded up to a power of two), each
    /// forgotten after `idle` without a request (`Duration::MAX`: never).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a zero capacity, a capacity above 2^28 or a zero idle time.
    pub fn bounded(inner: P, capacity: usize, idle: Duration) -> Result<Self> {
        if capacity == 0 || capacity > 1 << 28 {
            return Err(Error::invalid("capacity", capacity, "must be in 1..=2^28"));
        }
        if idle.is_zero() {
            return Err(Error::invalid("idle", "0 s", "must be > 0"));
        }
        Ok(Self::build(inner, capacity, idle))
    }

    fn build(inner: P, capacity: usize, idle: Duration) -> Self {
        let len = capacity.next_power_of_two().max(WAYS);
        Self {
            inner,
            slots: (0..len).map(|_| Slot::default()).collect(),
            bucket_mask: len / WAYS - 1,
            idle_nanos: nanos(idle),
        }
    }

    /// The most keys it holds.
    #[must_use]
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Forgets the binding of `key_hash` (for example at logout).
    pub fn forget(&self, key_hash: u64) {
        let key = stored(key_hash);
        for s in self.bucket(key) {
            if s.key.load(Ordering::Acquire) == key {
                let _ = s
                    .key
                    .compare_exchange(key, EMPTY, Ordering::AcqRel, Ordering::Relaxed);
            }
        }
    }

    /// Forgets every binding.
    pub fn clear(&self) {
        for s in self.slots.iter() {
            let k = s.key.load(Ordering::Acquire);
            if k != EMPTY && k != BUSY {
                let _ = s
                    .key
                    .compare_exchange(k, EMPTY, Ordering::AcqRel, Ordering::Relaxed);
            }
        }
    }

    /// Number of keys bound (idle ones included until their slot is reused). O(capacity).
    #[must_use]
    pub fn bound_keys(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| !matches!(s.key.load(Ordering::Relaxed), EMPTY | BUSY))
            .count()
    }

    /// The backend `key_hash` is bound to, if any (idle or not).
    #[must_use]
    pub fn binding(&self, key_hash: u64) -> Option<BackendId> {
        self.lookup(stored(key_hash))
            .map(|(_, id, _)| BackendId(id))
    }

    /// The inner policy.
    pub fn inner(&self) -> &P {
        &self.inner
    }

    #[inline]
    fn bucket(&self, key: u64) -> &[Slot] {
        // High bits pick the bucket (the key hashes are SipHash outputs: uniform).
        #[allow(clippy::cast_possible_truncation)]
        let b = (key.rotate_left(17) as usize) & self.bucket_mask;
        &self.slots[b * WAYS..(b + 1) * WAYS]
    }

    /// The slot holding `key`: (slot, backend id, last use), read consistently.
    #[inline]
    fn lookup(&self, key: u64) -> Option<(&Slot, u64, u64)> {
        self.bucket(key).iter().find_map(|s| {
            if s.key.load(Ordering::Acquire) != key {
                return None;
            }
            let id = s.backend.load(Ordering::Acquire);
            let used = s.used.load(Ordering::Relaxed);
            // Still the same key after reading its value (a writer sets `BUSY` first).
            (s.key.load(Ordering::Acquire) == key).then_some((s, id, used))
        })
    }

    /// Binds `key` to `id` at `now`: its own slot, else an empty or idle one, else the least
    /// recently used of its bucket. Never allocates.
    fn bind(&self, key: u64, id: BackendId, now: u64) {
        let bucket = self.bucket(key);
        let own = bucket
            .iter()
            .position(|s| s.key.load(Ordering::Acquire) == key);
        let target = own.unwrap_or_else(|| {
            let mut best = 0;
            let mut best_used = u64::MAX;
            for (i, s) in bucket.iter().enumerate() {
                let k = s.key.load(Ordering::Acquire);
                if k == EMPTY {
                    return i;
                }
                let used = s.used.load(Ordering::Relaxed);
                let used = if now.saturating_sub(used) > self.idle_nanos {
                    0
                } else {
                    used
                };
                if k != BUSY && used < best_used {
                    best = i;
                    best_used = used;
                }
            }
            best
        });
        let s = &bucket[target];
        let old = s.key.load(Ordering::Acquire);
        if old == BUSY
            || s.key
                .compare_exchange(old, BUSY, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
        {
            // Another writer has this slot now; this request stays placed, unbound.
            return;
        }
        s.backend.store(id.0, Ordering::Relaxed);
        s.used.store(now, Ordering::Relaxed);
        s.key.store(key, Ordering::Release);
    }
}

/// The key as stored: never `EMPTY` or `BUSY`.
#[inline]
fn stored(key_hash: u64) -> u64 {
    match key_hash {
        EMPTY => 1,
        BUSY => BUSY - 1,
        k => k,
    }
}

impl<P: fmt::Debug> fmt::Debug for Sticky<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sticky")
            .field("inner", &self.inner)
            .field("capacity", &self.slots.len())
            .field("idle_nanos", &self.idle_nanos)
            .finish_non_exhaustive()
    }
}

/// [`Sticky`]'s per-snapshot data: the inner policy's, plus an id -> view index map.
#[derive(Debug)]
pub struct StickyPrepared<T> {
    inner: T,
    index: HashMap<BackendId, usize>,
}

impl<B, P: Policy<B>> Policy<B> for Sticky<P> {
    type Prepared = StickyPrepared<P::Prepared>;

    fn prepare(&self, view: &View<'_, B>) -> Self::Prepared {
        // O(eligible): bindings of backends that left are re-placed by their keys' next
        // requests, not swept here.
        StickyPrepared {
            inner: self.inner.prepare(view),
            index: (0..view.len()).map(|i| (view.id(i), i)).collect(),
        }
    }

    fn pick(&self, p: &Self::Prepared, view: &View<'_, B>, ctx: &Context<'_>) -> Option<usize> {
        let Some(hash) = ctx.key_hash() else {
            return self.inner.pick(&p.inner, view, ctx);
        };
        let key = stored(hash);
        // The time of the latest response (no clock read on a pick).
        let now = view.latest_observation();
        if let Some((slot, id, used)) = self.lookup(key)
            && now.saturating_sub(used) <= self.idle_nanos
            && let Some(&i) = p.index.get(&BackendId(id))
        {
            if ctx.allows(BackendId(id)) {
                // Refresh the last use coarsely (a write per 1/8 of the idle time at most).
                if now.saturating_sub(used) > self.idle_nanos / 8 {
                    slot.used.store(now, Ordering::Relaxed);
                }
                return Some(i);
            }
            // Excluded by this request only (a retry): place it elsewhere once.
            return self.inner.pick(&p.inner, view, ctx);
        }
        // A new key, an idle one, or one whose backend left the serving set: (re)place it.
        let i = self.inner.pick(&p.inner, view, ctx)?;
        self.bind(key, view.id(i), now);
        Some(i)
    }

    fn name(&self) -> &'static str {
        "sticky"
    }
}
