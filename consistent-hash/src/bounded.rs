//! [`BoundedLoad`]: consistent hashing with bounded loads.
//!
//! The free functions [`capacity`] and [`first_with_room`] expose the same rule for callers that
//! keep their own load counters (a load balancer's in-flight counts, for example).

use crossbeam_utils::CachePadded;

use crate::sync::{AtomicUsize, Ordering, spin};
use crate::{Error, Key, KeyHasher, Placement, Result};

/// Consistent hashing with bounded loads (Mirrokni, Thorup and Zadimoghaddam, SODA 2018, the
/// scheme behind Google Cloud Pub/Sub's and HAProxy's `hash-balance-factor`): keys follow the
/// inner placement, but no node takes more than `⌈c × m / n⌉` of the `m` active assignments,
/// where `c = 1 + ε` is the balance factor. A key whose node is full goes to the next node of its
/// preference list with room, so hot keys spill over instead of melting one node.
///
/// [`acquire`](BoundedLoad::acquire) counts an assignment and returns a [`LoadGuard`]; dropping
/// the guard releases it. Acquire and release are lock-free (one atomic add for the total, a CAS
/// on the node's counter) and safe from any number of threads; the bound holds at every
/// acquisition: when a guard is granted, its node's load (including it) is at most
/// `⌈c × m / n⌉`, with `m` counting every assignment active or being acquired at that moment.
///
/// Membership changes go through `&mut self` (the [`Placement`] methods), which the borrow
/// checker allows only when no guard is alive; they reset the counters.
///
/// # Examples
///
/// ```
/// use tierkit_consistent_hash::{BoundedLoad, HashRing, Placement};
///
/// # fn main() -> Result<(), tierkit_consistent_hash::Error> {
/// let ring = HashRing::from_nodes(["a", "b", "c", "d"])?;
/// let bounded = BoundedLoad::new(ring, 1.25)?;
///
/// // One very hot key: its assignments spread once its home node is at capacity.
/// let guards: Vec<_> = (0..40).filter_map(|_| bounded.acquire("celebrity")).collect();
/// let cap = tierkit_consistent_hash::bounded::capacity(1.25, 40, 4);
/// for i in 0..4 {
///     assert!(bounded.load(i).unwrap_or(0) <= cap);
/// }
/// drop(guards);
/// assert_eq!(bounded.active(), 0);
/// # Ok(())
/// # }
/// ```
pub struct BoundedLoad<P> {
    inner: P,
    factor: f64,
    /// The balance factor in 1/65536 units, so capacities are computed exactly in integers.
    factor_fixed: u64,
    loads: Box<[CachePadded<AtomicUsize>]>,
    total: CachePadded<AtomicUsize>,
}

/// An active assignment of a key to a node; dropping it releases the node's load.
#[must_use = "the assignment is released as soon as the guard is dropped"]
pub struct LoadGuard<'a, N> {
    node: &'a N,
    index: usize,
    load: &'a AtomicUsize,
    total: &'a AtomicUsize,
}

/// Fixed-point scale of the balance factor.
const FIXED: u64 = 1 << 16;

fn to_fixed(factor: f64) -> Result<u64> {
    if !(1.0..=1e6).contains(&factor) {
        return Err(Error::InvalidBalanceFactor { factor });
    }
    // In range [65536, 6.6e10] after the check above.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let fixed = (factor * FIXED as f64).round() as u64;
    Ok(fixed)
}

fn capacity_fixed(factor_fixed: u64, active: usize, nodes: usize) -> usize {
    if nodes == 0 {
        return 0;
    }
    let num = u128::from(factor_fixed) * active as u128;
    let den = u128::from(FIXED) * nodes as u128;
    usize::try_from(num.div_ceil(den)).unwrap_or(usize::MAX)
}

/// The bound on one node's load: `⌈factor × active / nodes⌉`, computed exactly (the factor is
/// rounded to 1/65536). `active` counts the assignment being made. Zero when `nodes` is zero;
/// an invalid factor (not finite, below 1) is treated as 1.
///
/// # Examples
///
/// ```
/// use tierkit_consistent_hash::bounded::capacity;
///
/// assert_eq!(capacity(1.25, 100, 10), 13);
/// assert_eq!(capacity(1.0, 1, 10), 1);
/// ```
#[must_use]
pub fn capacity(factor: f64, active: usize, nodes: usize) -> usize {
    capacity_fixed(to_fixed(factor).unwrap_or(FIXED), active, nodes)
}

/// The first node in `placement`'s preference order for `hash` whose `load` is below
/// `capacity`, or `None` if every node is full (or there are none). Allocation-free when the
/// first choice has room; otherwise it fills `scratch` with the preference list.
///
/// This is [`BoundedLoad`]'s rule for callers that count load themselves.
pub fn first_with_room<N, P: Placement<N> + ?Sized>(
    placement: &P,
    hash: u64,
    capacity: usize,
    load: impl Fn(usize) -> usize,
    scratch: &mut Vec<usize>,
) -> Option<usize> {
    let first = placement.locate_index(hash)?;
    if load(first) < capacity {
        return Some(first);
    }
    placement.preference_indices(hash, placement.len(), scratch);
    scratch
        .iter()
        .skip(1)
        .copied()
        .find(|&i| load(i) < capacity)
}

fn counters(n: usize) -> Box<[CachePadded<AtomicUsize>]> {
    (0..n)
        .map(|_| CachePadded::new(AtomicUsize::new(0)))
        .collect()
}

impl<P> BoundedLoad<P> {
    /// Wraps `inner` with balance factor `factor` (`1 + ε`; 1.25 is a common choice).
    ///
    /// # Errors
    /// [`Error::InvalidBalanceFactor`] if `factor` is not finite, below 1.0 or above 10^6.
    pub fn new<N>(inner: P, factor: f64) -> Result<Self>
    where
        P: Placement<N>,
    {
        let factor_fixed = to_fixed(factor)?;
        let loads = counters(inner.len());
        Ok(BoundedLoad {
            inner,
            factor,
            factor_fixed,
            loads,
            total: CachePadded::new(AtomicUsize::new(0)),
        })
    }

    /// The balance factor `c`.
    #[must_use]
    pub fn factor(&self) -> f64 {
        self.factor
    }

    /// The wrapped placement.
    #[must_use]
    pub fn inner(&self) -> &P {
        &self.inner
    }

    /// Unwraps the placement.
    #[must_use]
    pub fn into_inner(self) -> P {
        self.inner
    }

    /// Assignments currently active (guards alive or being acquired).
    #[must_use]
    pub fn active(&self) -> usize {
        self.total.load(Ordering::Acquire)
    }

    /// Active assignments on the node at `index`.
    #[must_use]
    pub fn load(&self, index: usize) -> Option<usize> {
        self.loads.get(index).map(|l| l.load(Ordering::Acquire))
    }

    /// The current bound for one more assignment: `⌈c × (active + 1) / n⌉`.
    #[must_use]
    pub fn capacity(&self) -> usize {
        capacity_fixed(self.factor_fixed, self.active() + 1, self.loads.len())
    }

    /// Takes one unit on `index` if its load is below `cap`.
    fn try_take(&self, index: usize, cap: usize) -> bool {
        let Some(load) = self.loads.get(index) else {
            return false;
        };
        let mut current = load.load(Ordering::Acquire);
        while current < cap {
            match load.compare_exchange_weak(
                current,
                current + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return true,
                Err(actual) => current = actual,
            }
        }
        false
    }
}

impl<P> BoundedLoad<P> {
    /// Assigns `key` to the first node of its preference list with room and returns the guard.
    /// `None` only if the placement is empty.
    pub fn acquire<N, K: Key + ?Sized>(&self, key: &K) -> Option<LoadGuard<'_, N>>
    where
        P: Placement<N>,
    {
        self.acquire_hash(self.inner.hasher().hash(key))
    }

    /// [`acquire`](Self::acquire) for a key already hashed with the placement's hasher.
    pub fn acquire_hash<N>(&self, hash: u64) -> Option<LoadGuard<'_, N>>
    where
        P: Placement<N>,
    {
        let n = self.loads.len();
        if n == 0 {
            return None;
        }
        // Reserve first, so that every load counted anywhere is also in the total.
        self.total.fetch_add(1, Ordering::AcqRel);
        let mut scratch = Vec::new();
        loop {
            let cap = capacity_fixed(self.factor_fixed, self.total.load(Ordering::Acquire), n);
            let taken = match self.inner.locate_index(hash) {
                Some(first) if self.try_take(first, cap) => Some(first),
                Some(_) => {
                    if scratch.is_empty() {
                        self.inner.preference_indices(hash, n, &mut scratch);
                    }
                    scratch
                        .iter()
                        .skip(1)
                        .copied()
                        .find(|&i| self.try_take(i, cap))
                }
                None => {
                    self.total.fetch_sub(1, Ordering::AcqRel);
                    return None;
                }
            };
            if let Some(index) = taken {
                let load = &self.loads[index];
                let Some(node) = self.inner.node(index) else {
                    // Unreachable while loads and nodes have the same length; undo, don't leak.
                    load.fetch_sub(1, Ordering::AcqRel);
                    self.total.fetch_sub(1, Ordering::AcqRel);
                    return None;
                };
                return Some(LoadGuard {
                    node,
                    index,
                    load,
                    total: &self.total,
                });
            }
            // Every node looked full: other threads took load since we read the total, and
            // their reservations are in it now. Read it again; some thread made progress.
            spin();
        }
    }
}

impl<N> LoadGuard<'_, N> {
    /// The node the key was assigned to.
    #[must_use]
    pub fn node(&self) -> &N {
        self.node
    }

    /// The node's index in the placement.
    #[must_use]
    pub fn index(&self) -> usize {
        self.index
    }
}

impl<N> Drop for LoadGuard<'_, N> {
    fn drop(&mut self) {
        // Node first, then total: the sum of node loads never exceeds the total.
        self.load.fetch_sub(1, Ordering::AcqRel);
        self.total.fetch_sub(1, Ordering::AcqRel);
    }
}

impl<N, P: Placement<N>> Placement<N> for BoundedLoad<P> {
    fn hasher(&self) -> &KeyHasher {
        self.inner.hasher()
    }

    fn nodes(&self) -> &[N] {
        self.inner.nodes()
    }

    fn weight(&self, index: usize) -> Option<u32> {
        self.inner.weight(index)
    }

    /// Where [`acquire`](BoundedLoad::acquire) would assign the key right now, without counting it.
    fn locate_index(&self, hash: u64) -> Option<usize> {
        let cap = self.capacity();
        let mut scratch = Vec::new();
        first_with_room(
            &self.inner,
            hash,
            cap,
            |i| self.load(i).unwrap_or(0),
            &mut scratch,
        )
    }

    /// The inner preference list with the nodes that have room first (each group in the inner
    /// order), so the first entry equals [`locate_index`](Placement::locate_index).
    fn preference_indices(&self, hash: u64, n: usize, out: &mut Vec<usize>) {
        let cap = self.capacity();
        let mut all = Vec::new();
        self.inner
            .preference_indices(hash, self.inner.len(), &mut all);
        let has_room = |i: &usize| self.load(*i).unwrap_or(0) < cap;
        out.clear();
        out.extend(all.iter().copied().filter(has_room));
        out.extend(all.iter().copied().filter(|i| !has_room(i)));
        out.truncate(n);
    }

    fn add_weighted(&mut self, node: N, weight: u32) -> Result<()> {
        self.inner.add_weighted(node, weight)?;
        self.loads = counters(self.inner.len());
        self.total.store(0, Ordering::Release);
        Ok(())
    }

    fn remove(&mut self, node: &N) -> Option<N> {
        let removed = self.inner.remove(node)?;
        self.loads = counters(self.inner.len());
        self.total.store(0, Ordering::Release);
        Some(removed)
    }
}

impl<P: Clone> Clone for BoundedLoad<P> {
    /// Clones the placement with fresh (zero) load counters: guards belong to the original.
    fn clone(&self) -> Self {
        BoundedLoad {
            inner: self.inner.clone(),
            factor: self.factor,
            factor_fixed: self.factor_fixed,
            loads: counters(self.loads.len()),
            total: CachePadded::new(AtomicUsize::new(0)),
        }
    }
}

impl<P: std::fmt::Debug> std::fmt::Debug for BoundedLoad<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoundedLoad")
            .field("inner", &self.inner)
            .field("factor", &self.factor)
            .field("active", &self.active())
            .finish_non_exhaustive()
    }
}

impl<N> std::fmt::Debug for LoadGuard<'_, N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadGuard")
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacity_is_exact_in_integers() {
        assert_eq!(capacity(1.25, 8, 10), 1);
        assert_eq!(capacity(1.25, 80, 10), 10);
        assert_eq!(capacity(1.25, 81, 10), 11);
        assert_eq!(capacity(1.0, 0, 3), 0);
        assert_eq!(capacity(2.0, 5, 0), 0);
        assert_eq!(capacity(f64::NAN, 10, 10), 1);
    }

    #[test]
    fn rejects_bad_factors() {
        let ring = crate::HashRing::from_nodes([1u8, 2]).expect("valid");
        for f in [0.99, f64::NAN, f64::INFINITY, -1.0] {
            assert!(matches!(
                BoundedLoad::new(ring.clone(), f),
                Err(Error::InvalidBalanceFactor { .. })
            ));
        }
    }
}

/// Model checks with loom: `RUSTFLAGS="--cfg tierkit_loom" cargo test -p tierkit-consistent-hash
/// --lib --release loom`.
#[cfg(all(test, tierkit_loom))]
mod loom_tests {
    use loom::sync::Arc;
    use loom::sync::atomic::{AtomicUsize, Ordering};

    use super::BoundedLoad;
    use crate::{HashRing, Placement};

    const NONE: usize = usize::MAX;

    /// Two threads acquire the same key with factor 1.0 over two nodes: whenever both guards are
    /// alive they must be on different nodes (each node's cap is 1), and every counter returns
    /// to zero.
    #[test]
    fn loom_two_guards_never_share_a_full_node() {
        loom::model(|| {
            let ring = HashRing::from_nodes([0u8, 1]).expect("valid");
            let bounded = Arc::new(BoundedLoad::new(ring, 1.0).expect("valid"));
            let held = Arc::new([AtomicUsize::new(NONE), AtomicUsize::new(NONE)]);
            let threads: Vec<_> = (0..2)
                .map(|me| {
                    let (bounded, held) = (bounded.clone(), held.clone());
                    loom::thread::spawn(move || {
                        let guard = bounded.acquire("hot").expect("not empty");
                        held[me].store(guard.index(), Ordering::SeqCst);
                        let other = held[1 - me].load(Ordering::SeqCst);
                        assert!(other == NONE || other != guard.index(), "both on {other}");
                        held[me].store(NONE, Ordering::SeqCst);
                        drop(guard);
                    })
                })
                .collect();
            for t in threads {
                t.join().expect("no panic");
            }
            assert_eq!(bounded.active(), 0);
            assert_eq!((bounded.load(0), bounded.load(1)), (Some(0), Some(0)));
        });
    }
}
