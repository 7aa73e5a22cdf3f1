//! [`ConcurrentCache::builder`]: the moka-style way to configure a [`ConcurrentCache`], the
//! policy markers of [`policy`](crate::policy), and the type aliases of the common cases.

use std::fmt;
use std::hash::{BuildHasher, Hash};

use std::marker::PhantomData;
use std::time::Duration;

use crate::SipHashBuilder;
use crate::{
    CacheBuilder, CachePolicy, Clock, ConcurrentCache, Expiry, FifoCache, LfuCache, LruCache,
    RemovalListener, Result, S3FifoCache, TinyLfuCache, Weigher,
};

/// The policy of a [`ConcurrentCache`] whose type does not name one, and of
/// [`ConcurrentCache::builder`] unless [`policy`](ConcurrentCacheBuilder::policy) picks another.
/// Its marker for `policy(..)` is [`policy::Default`](crate::policy::Default).
/// It is [`TinyLfuCache`] (W-TinyLFU with an adaptive window): see the crate README's hit-ratio
/// table for why, and where it falls short.
pub type DefaultPolicy<K, V, S = SipHashBuilder> = TinyLfuCache<K, V, S>;

/// A [`ConcurrentCache`] of [`LruCache`] shards.
pub type ConcurrentLru<K, V, S = SipHashBuilder> = ConcurrentCache<K, V, LruCache<K, V, S>, S>;
/// A [`ConcurrentCache`] of [`LfuCache`] shards.
pub type ConcurrentLfu<K, V, S = SipHashBuilder> = ConcurrentCache<K, V, LfuCache<K, V, S>, S>;
/// A [`ConcurrentCache`] of [`FifoCache`] shards.
pub type ConcurrentFifo<K, V, S = SipHashBuilder> = ConcurrentCache<K, V, FifoCache<K, V, S>, S>;
/// A [`ConcurrentCache`] of [`TinyLfuCache`] shards (what `ConcurrentCache<K, V>` is).
pub type ConcurrentTinyLfu<K, V, S = SipHashBuilder> =
    ConcurrentCache<K, V, TinyLfuCache<K, V, S>, S>;
/// A [`ConcurrentCache`] of [`S3FifoCache`] shards.
pub type ConcurrentS3Fifo<K, V, S = SipHashBuilder> =
    ConcurrentCache<K, V, S3FifoCache<K, V, S>, S>;

/// The cache [`ConcurrentCacheBuilder::build`] returns for policy marker `Kind`.
pub type Built<K, V, Kind, S> = ConcurrentCache<K, V, <Kind as PolicyKind>::Cache<K, V, S>, S>;

/// Names a policy for [`ConcurrentCacheBuilder::policy`]: a marker type whose `Cache` is the
/// single-owner [`CachePolicy`] the shards are made of.
///
/// The markers of this crate's policies are in [`policy`](crate::policy). A marker is how a
/// new policy joins the builder: one `impl` naming its cache type.
pub trait PolicyKind {
    /// The single-owner cache type of this policy, for keys `K`, values `V` and hasher `S`.
    type Cache<K, V, S>: CachePolicy<K, V, S>
    where
        K: Hash + Eq + 'static,
        V: 'static,
        S: BuildHasher + Clone;
}

/// Markers for [`ConcurrentCacheBuilder::policy`], one per policy.
pub mod policy {
    use std::hash::{BuildHasher, Hash};

    use super::PolicyKind;
    use crate::{FifoCache, LfuCache, LruCache, S3FifoCache, TinyLfuCache};

    macro_rules! kind {
        ($(#[$doc:meta])* $marker:ident => $cache:ident) => {
            $(#[$doc])*
            #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
            pub struct $marker;

            impl PolicyKind for $marker {
                type Cache<K, V, S>
                    = $cache<K, V, S>
                where
                    K: Hash + Eq + 'static,
                    V: 'static,
                    S: BuildHasher + Clone;
            }
        };
    }

    kind!(
        /// [`DefaultPolicy`](crate::DefaultPolicy): what `ConcurrentCache<K, V>` uses.
        Default => TinyLfuCache
    );
    kind!(
        /// [`TinyLfuCache`] shards: W-TinyLFU with an adaptive window (the default).
        TinyLfu => TinyLfuCache
    );
    kind!(
        /// [`LruCache`] shards: least recently used (CLOCK-approximated under shared locks).
        Lru => LruCache
    );
    kind!(
        /// [`LfuCache`] shards: least frequently used, with aging.
        Lfu => LfuCache
    );
    kind!(
        /// [`FifoCache`] shards: first in, first out.
        Fifo => FifoCache
    );
    kind!(
        /// [`S3FifoCache`] shards: S3-FIFO.
        S3Fifo => S3FifoCache
    );
}

/// Configures and builds a [`ConcurrentCache`]: `ConcurrentCache::builder()...build()?`.
///
/// Every setting of [`CacheBuilder`] under moka's names, plus the policy (a marker from
/// [`policy`](crate::policy), [`DefaultPolicy`] unless set). `build` validates and returns the
/// cache.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use tierkit_cache::{policy, ConcurrentCache, ConcurrentS3Fifo};
///
/// let sessions: ConcurrentCache<u64, String> = ConcurrentCache::builder()
///     .max_capacity(10_000)
///     .time_to_live(Duration::from_secs(3_600))
///     .time_to_idle(Duration::from_secs(600))
///     .build()?;
/// sessions.insert(1, "alice".to_string());
///
/// let pages: ConcurrentS3Fifo<String, Vec<u8>> = ConcurrentCache::builder()
///     .max_capacity(64 << 20)
///     .weigher(|_: &String, body: &Vec<u8>| body.len() as u64)
///     .policy(policy::S3Fifo)
///     .build()?;
/// # let _ = pages;
/// # Ok::<(), tierkit_cache::Error>(())
/// ```
///
/// A capacity is required: without [`max_capacity`](Self::max_capacity), `build` returns
/// [`Error::ZeroCapacity`](crate::Error::ZeroCapacity).
#[must_use]
pub struct ConcurrentCacheBuilder<K, V, Kind = policy::Default, S = SipHashBuilder> {
    inner: CacheBuilder<K, V, S>,
    _kind: PhantomData<fn() -> Kind>,
}

impl<K, V> ConcurrentCache<K, V, DefaultPolicy<K, V>, SipHashBuilder> {
    /// A builder for a concurrent cache: set [`max_capacity`](ConcurrentCacheBuilder::max_capacity),
    /// and whatever else you need, then [`build`](ConcurrentCacheBuilder::build).
    pub fn builder() -> ConcurrentCacheBuilder<K, V> {
        ConcurrentCacheBuilder::default()
    }
}

impl<K, V> Default for ConcurrentCacheBuilder<K, V> {
    fn default() -> Self {
        Self {
            inner: CacheBuilder::new(0),
            _kind: PhantomData,
        }
    }
}

impl<K, V, Kind, S> ConcurrentCacheBuilder<K, V, Kind, S> {
    fn map(self, f: impl FnOnce(CacheBuilder<K, V, S>) -> CacheBuilder<K, V, S>) -> Self {
        Self {
            inner: f(self.inner),
            _kind: PhantomData,
        }
    }

    /// At most this many entries, or this much total weight with a [`weigher`](Self::weigher).
    pub fn max_capacity(self, capacity: u64) -> Self {
        self.map(|b| b.max_capacity(capacity))
    }

    /// See [`CacheBuilder::time_to_live`].
    pub fn time_to_live(self, ttl: Duration) -> Self {
        self.map(|b| b.time_to_live(ttl))
    }

    /// See [`CacheBuilder::time_to_idle`].
    pub fn time_to_idle(self, tti: Duration) -> Self {
        self.map(|b| b.time_to_idle(tti))
    }

    /// See [`CacheBuilder::expire_after`] and [`Expiry`].
    pub fn expire_after(self, expiry: impl Expiry<K, V>) -> Self {
        self.map(|b| b.expire_after(expiry))
    }

    /// See [`CacheBuilder::weigher`].
    pub fn weigher(self, weigher: impl Weigher<K, V>) -> Self {
        self.map(|b| b.weigher(weigher))
    }

    /// See [`CacheBuilder::removal_listener`]. The listener runs after the shard lock is
    /// released, so it may call back into the cache.
    pub fn removal_listener(self, listener: impl RemovalListener<K, V>) -> Self {
        self.map(|b| b.removal_listener(listener))
    }

    /// moka's name for [`removal_listener`](Self::removal_listener).
    pub fn eviction_listener(self, listener: impl RemovalListener<K, V>) -> Self {
        self.removal_listener(listener)
    }

    /// See [`CacheBuilder::clock`].
    pub fn clock(self, clock: impl Clock) -> Self {
        self.map(|b| b.clock(clock))
    }

    /// See [`CacheBuilder::shards`].
    pub fn shards(self, shards: usize) -> Self {
        self.map(|b| b.shards(shards))
    }

    /// See [`CacheBuilder::count_lookups`].
    pub fn count_lookups(self, count: bool) -> Self {
        self.map(|b| b.count_lookups(count))
    }

    /// See [`CacheBuilder::hasher`].
    pub fn hasher<S2>(self, hasher: S2) -> ConcurrentCacheBuilder<K, V, Kind, S2> {
        ConcurrentCacheBuilder {
            inner: self.inner.hasher(hasher),
            _kind: PhantomData,
        }
    }

    /// The eviction policy of the shards: a marker from [`policy`](crate::policy) (or any
    /// [`PolicyKind`]).
    pub fn policy<Kind2: PolicyKind>(self, kind: Kind2) -> ConcurrentCacheBuilder<K, V, Kind2, S> {
        let _ = kind;
        ConcurrentCacheBuilder {
            inner: self.inner,
            _kind: PhantomData,
        }
    }

    /// The settings as a [`CacheBuilder`] (for [`ConcurrentCache::with_builder`] or a
    /// single-owner cache).
    pub fn into_cache_builder(self) -> CacheBuilder<K, V, S> {
        self.inner
    }
}

impl<K, V, Kind, S> ConcurrentCacheBuilder<K, V, Kind, S>
where
    K: Hash + Eq + 'static,
    V: 'static,
    S: BuildHasher + Clone,
    Kind: PolicyKind,
{
    /// Validates the settings and builds the cache.
    ///
    /// # Errors
    /// Every error of [`CacheBuilder::validate`] (a missing or zero capacity is
    /// [`Error::ZeroCapacity`](crate::Error::ZeroCapacity)), and the policy's own.
    pub fn build(self) -> Result<Built<K, V, Kind, S>> {
        ConcurrentCache::with_builder(&self.inner)
    }
}

impl<K, V, Kind, S> fmt::Debug for ConcurrentCacheBuilder<K, V, Kind, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConcurrentCacheBuilder")
            .field("settings", &self.inner)
            .field("policy", &std::any::type_name::<Kind>())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `DefaultPolicy` and the `policy::Default` marker name the same policy.
    #[test]
    fn default_marker_matches_default_policy() {
        fn same(
            c: ConcurrentCache<u64, u64>,
        ) -> ConcurrentCache<
            u64,
            u64,
            <policy::Default as PolicyKind>::Cache<u64, u64, SipHashBuilder>,
        > {
            c
        }
        let built = ConcurrentCache::builder().max_capacity(10).build();
        assert!(same(built.expect("valid")).is_empty());
    }
}
