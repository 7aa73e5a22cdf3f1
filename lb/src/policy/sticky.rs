//! [`Sticky`]: session affinity that moves a key only when its backend leaves.

use std::collections::HashMap;
use std::fmt;

use dashmap::DashMap;

use crate::{BackendId, Context, Member, Policy, View};

/// Session affinity: the first request with a key is placed by the inner policy `P`, and every
/// later request with that key goes to the same backend for as long as it stays in the serving
/// set. When it leaves (removed, drained, ejected, failing checks) the key is re-placed by `P`
/// and stays on its new backend, also after the old one returns: a session moves once, not
/// twice.
///
/// A request that excludes the bound backend (a retry) is placed by `P` for that request only,
/// without rebinding. Requests without a key go straight to `P`.
///
/// The key table (a `DashMap` from key hash to backend id) grows with the number of distinct
/// keys; entries of removed backends are dropped on every membership change, and
/// [`forget`](Sticky::forget) / [`clear`](Sticky::clear) drop others. Binding a new key may
/// allocate (table growth); repeat picks do not.
///
/// # Examples
///
/// ```
/// use tierkit_lb::{Backend, Balancer, Context, LeastConnections, Sticky};
///
/// let lb = Balancer::builder(Sticky::new(LeastConnections::new()))
///     .backends((0..3).map(|i| Backend::new(i, i)))
///     .build()?;
/// let ctx = Context::new().hash(lb.hash_key("session-9f2c"));
/// let first = lb.pick(&ctx)?.id();
/// for _ in 0..10 {
///     assert_eq!(lb.pick(&ctx)?.id(), first);
/// }
/// # Ok::<(), tierkit_lb::Error>(())
/// ```
pub struct Sticky<P> {
    inner: P,
    table: DashMap<u64, BackendId>,
}

impl<P> Sticky<P> {
    /// Affinity over `inner`, which places new keys.
    #[must_use]
    pub fn new(inner: P) -> Self {
        Self {
            inner,
            table: DashMap::new(),
        }
    }

    /// Forgets the binding of `key_hash` (for example at logout).
    pub fn forget(&self, key_hash: u64) {
        self.table.remove(&key_hash);
    }

    /// Forgets every binding.
    pub fn clear(&self) {
        self.table.clear();
    }

    /// Number of keys bound.
    #[must_use]
    pub fn bound_keys(&self) -> usize {
        self.table.len()
    }

    /// The backend `key_hash` is bound to, if any.
    #[must_use]
    pub fn binding(&self, key_hash: u64) -> Option<BackendId> {
        self.table.get(&key_hash).map(|r| *r)
    }

    /// The inner policy.
    pub fn inner(&self) -> &P {
        &self.inner
    }
}

impl<P: fmt::Debug> fmt::Debug for Sticky<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sticky")
            .field("inner", &self.inner)
            .field("bound_keys", &self.table.len())
            .finish()
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
        let members: std::collections::HashSet<BackendId> =
            view.all_members().iter().map(Member::id).collect();
        self.table.retain(|_, id| members.contains(id));
        StickyPrepared {
            inner: self.inner.prepare(view),
            index: (0..view.len()).map(|i| (view.id(i), i)).collect(),
        }
    }

    fn pick(&self, p: &Self::Prepared, view: &View<'_, B>, ctx: &Context<'_>) -> Option<usize> {
        let Some(hash) = ctx.key_hash() else {
            return self.inner.pick(&p.inner, view, ctx);
        };
        let bound = self.table.get(&hash).map(|r| *r);
        if let Some(id) = bound
            && let Some(&i) = p.index.get(&id)
        {
            if ctx.allows(id) {
                return Some(i);
            }
            // Excluded by this request only (a retry): place it elsewhere once.
            return self.inner.pick(&p.inner, view, ctx);
        }
        let i = self.inner.pick(&p.inner, view, ctx)?;
        if bound.is_some() {
            // Its backend left the serving set: re-place the key.
            self.table.insert(hash, view.id(i));
            return Some(i);
        }
        // First request with this key; if a concurrent pick bound it first, follow that one.
        let winner = *self.table.entry(hash).or_insert(view.id(i));
        Some(p.index.get(&winner).copied().unwrap_or(i))
    }

    fn name(&self) -> &'static str {
        "sticky"
    }
}
