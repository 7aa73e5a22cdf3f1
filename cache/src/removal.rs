//! Why entries leave, and who hears about it: [`RemovalCause`], [`RemovalListener`], [`Weigher`].

/// Why an entry left the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RemovalCause {
    /// The policy evicted it to make room.
    Evicted,
    /// Its time-to-live ran out.
    Expired,
    /// It was removed explicitly (`remove`, `clear`, invalidation).
    Removed,
    /// A new value was inserted under the same key.
    Replaced,
    /// It was never stored: it alone weighs more than the cache's capacity.
    Rejected,
}

impl RemovalCause {
    /// Whether the cache removed the entry on its own (eviction or expiry), as opposed to a user
    /// action.
    #[must_use]
    pub fn was_evicted(self) -> bool {
        matches!(self, Self::Evicted | Self::Expired)
    }
}

/// Called once for every entry that leaves a cache, before the value is dropped or returned.
///
/// Implemented for every `Fn(&K, &V, RemovalCause) + Send + Sync`. The listener never runs under
/// a lock: a cache finishes its own bookkeeping first (a [`ConcurrentCache`](crate::ConcurrentCache)
/// also releases its shard lock), then reports what left, in order. So a listener may call back
/// into a `ConcurrentCache` (read, insert, remove), and a listener that panics leaves the cache
/// consistent: the panic reaches the caller of the operation whose removals it was hearing, and
/// the removals not yet reported are dropped unreported.
///
/// For a [`Replaced`](RemovalCause::Replaced) value the key passed is the one given to the
/// insert that replaced it (equal to the stored key).
pub trait RemovalListener<K, V>: Send + Sync + 'static {
    /// Reports one removal.
    fn on_removal(&self, key: &K, value: &V, cause: RemovalCause);
}

impl<K, V, F> RemovalListener<K, V> for F
where
    F: Fn(&K, &V, RemovalCause) + Send + Sync + 'static,
{
    fn on_removal(&self, key: &K, value: &V, cause: RemovalCause) {
        self(key, value, cause);
    }
}

/// Measures an entry's weight, for caches bounded by total weight (e.g. bytes) instead of count.
///
/// Implemented for every `Fn(&K, &V) -> u64 + Send + Sync`. The weight is taken once, at insert,
/// before the cache changes anything (and, in a [`ConcurrentCache`](crate::ConcurrentCache),
/// before the shard lock is taken): a weigher that panics leaves the cache as it was.
/// A weight of zero is allowed (the entry never forces an eviction); an entry heavier than the
/// capacity is rejected (see [`Cache`](crate::Cache)).
pub trait Weigher<K, V>: Send + Sync + 'static {
    /// The weight of one entry.
    fn weigh(&self, key: &K, value: &V) -> u64;
}

impl<K, V, F> Weigher<K, V> for F
where
    F: Fn(&K, &V) -> u64 + Send + Sync + 'static,
{
    fn weigh(&self, key: &K, value: &V) -> u64 {
        self(key, value)
    }
}

/// One entry that left a cache, waiting to be reported once the cache's bookkeeping is done
/// (and, in a `ConcurrentCache`, its shard lock released).
pub struct Removal<K, V> {
    pub(crate) key: K,
    pub(crate) value: V,
    pub(crate) cause: RemovalCause,
}

impl<K: 'static, V: 'static> Removal<K, V> {
    pub(crate) fn new(key: K, value: V, cause: RemovalCause) -> Self {
        Self { key, value, cause }
    }

    /// Reports this removal to `listener`, if any.
    #[inline]
    pub(crate) fn report(&self, listener: Option<&dyn RemovalListener<K, V>>) {
        if let Some(listener) = listener {
            listener.on_removal(&self.key, &self.value, self.cause);
        }
    }
}

/// The removals a shard collected during one operation, taken out under its lock and reported
/// (then dropped) after it is released, with the position of the operation's own removal (its
/// replaced or removed value, handed back to the caller) among them. One removal, the common
/// case (an evicting insert), moves out without touching the shard's buffer allocation.
pub enum Drained<K, V> {
    /// Nothing left.
    None,
    /// One removal (the buffer keeps its allocation); `true` if it came before the target.
    One(Removal<K, V>, bool),
    /// Several, with the buffer's allocation, and how many came before the target.
    Many(Vec<Removal<K, V>>, usize),
}

impl<K, V> Drained<K, V> {
    /// Takes every removal out of `buffer`; `before` of them happened before the target.
    #[inline]
    pub(crate) fn take(buffer: &mut Vec<Removal<K, V>>, before: usize) -> Self {
        match buffer.len() {
            0 => Self::None,
            1 => buffer
                .pop()
                .map_or(Self::None, |r| Self::One(r, before > 0)),
            _ => Self::Many(std::mem::take(buffer), before),
        }
    }
}

impl<K: 'static, V: 'static> Drained<K, V> {
    /// Reports every removal in the order they happened, `target` (the operation's own
    /// removal) in its place, then drops them and hands back the target's value. If the
    /// listener panics, the removals not yet reported are dropped during unwinding.
    #[inline]
    pub(crate) fn report(
        self,
        target: Option<Removal<K, V>>,
        listener: Option<&dyn RemovalListener<K, V>>,
    ) -> Option<V> {
        let Some(target) = target else {
            match self {
                Self::None => {}
                Self::One(r, _) => r.report(listener),
                Self::Many(all, _) => all.into_iter().for_each(|r| r.report(listener)),
            }
            return None;
        };
        match self {
            Self::None => target.report(listener),
            Self::One(r, true) => {
                r.report(listener);
                target.report(listener);
            }
            Self::One(r, false) => {
                target.report(listener);
                r.report(listener);
            }
            Self::Many(all, before) => {
                let mut all = all.into_iter();
                all.by_ref().take(before).for_each(|r| r.report(listener));
                target.report(listener);
                all.for_each(|r| r.report(listener));
            }
        }
        Some(target.value)
    }
}

impl<K, V> std::fmt::Debug for Removal<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Removal")
            .field("cause", &self.cause)
            .finish_non_exhaustive()
    }
}

impl<K, V> std::fmt::Debug for Drained<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = match self {
            Self::None => 0,
            Self::One(..) => 1,
            Self::Many(all, _) => all.len(),
        };
        f.debug_struct("Drained").field("removals", &n).finish()
    }
}
