//! What [`ConcurrentCache`](crate::ConcurrentCache) needs of a policy ([`Hashed`],
//! [`SharedGet`]), and `cache_type!`, which turns an `Engine` wrapper into a public cache type.

use std::borrow::Borrow;
use std::hash::Hash;

use crate::removal::{Drained, Removal};
use crate::rules::Prepared;

/// The outcome of [`Hashed::get_shared`], a lookup under a shared lock.
#[derive(Debug)]
pub enum SharedGet<T> {
    /// A live entry; the hit was recorded by the policy (not counted in the stats: the caller
    /// counts it).
    Hit(T),
    /// No entry for the key (not counted).
    Miss,
    /// The lookup needs exclusive access: the entry expired (it must be dropped), has an idle
    /// period to restart, or the policy cannot record the hit under a shared lock. Nothing was
    /// recorded.
    Exclusive,
}

/// The operations [`ConcurrentCache`](crate::ConcurrentCache) needs beyond [`Cache`](crate::Cache):
/// keyed operations on a hash it computed once (for the shard and the table), and a lookup under a
/// shared lock. A supertrait of [`CachePolicy`](crate::CachePolicy) that no other crate can name,
/// so `CachePolicy` is sealed: a wrong hash would corrupt the index, so these must stay internal.
pub trait Hashed<K, V> {
    /// `get_mut` of `key`, whose hash is `hash`.
    fn get_hashed<Q>(&mut self, hash: u64, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized;
    /// `get` under a shared lock.
    fn get_shared<Q>(&self, hash: u64, key: &Q) -> SharedGet<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized;
    /// `peek` of `key`, whose hash is `hash`.
    fn peek_hashed<Q>(&self, hash: u64, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized;
    /// `insert` of `key`, whose hash is `hash`, as `prepared` (weight and lifetimes decided
    /// before the lock): the replaced value, to report and hand back after the lock.
    fn insert_hashed(
        &mut self,
        hash: u64,
        key: K,
        value: V,
        prepared: Prepared,
    ) -> Option<Removal<K, V>>;
    /// `remove` of `key`, whose hash is `hash`: the removed entry, to report after the lock.
    fn remove_hashed<Q>(&mut self, hash: u64, key: &Q) -> Option<Removal<K, V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized;
    /// Takes out the removals buffered by the operations since the last call, to report and
    /// drop after the lock.
    fn take_removed(&mut self) -> Drained<K, V>;
    /// Counts an insert refused before the lock (heavier than the shard's capacity).
    fn count_rejection(&mut self);
}

/// Implements [`Cache`](crate::Cache), [`CachePolicy`](crate::CachePolicy), [`Hashed`], `Debug`
/// and the `new`/`builder` constructors of a public cache type wrapping `Engine` in a field
/// `inner`.
macro_rules! cache_type {
    ($ty:ident, $name:literal) => {
        impl<K, V> $ty<K, V, $crate::SipHashBuilder> {
            #[doc = concat!("An empty ", $name, " holding at most `capacity` entries.")]
            ///
            /// # Errors
            /// [`Error::ZeroCapacity`](crate::Error::ZeroCapacity) for zero and
            /// [`Error::CapacityTooLarge`](crate::Error::CapacityTooLarge) above
            /// `u32::MAX` entries.
            pub fn new(capacity: u64) -> $crate::Result<Self>
            where
                K: ::std::hash::Hash + Eq + 'static,
                V: 'static,
            {
                $crate::CacheBuilder::new(capacity).build()
            }

            /// A [`CacheBuilder`](crate::CacheBuilder) for this cache type, to set a
            /// time-to-live, a weigher, a removal listener, a clock or a hasher.
            pub fn builder(capacity: u64) -> $crate::CacheBuilder<K, V> {
                $crate::CacheBuilder::new(capacity)
            }
        }

        impl<K, V, S> $crate::CachePolicy<K, V, S> for $ty<K, V, S>
        where
            K: ::std::hash::Hash + Eq + 'static,
            V: 'static,
            S: ::std::hash::BuildHasher + Clone,
        {
            fn from_builder(builder: &$crate::CacheBuilder<K, V, S>) -> $crate::Result<Self> {
                Ok(Self {
                    inner: $crate::engine::Engine::from_builder(builder)?,
                })
            }
        }

        impl<K, V, S> $crate::Cache<K, V> for $ty<K, V, S>
        where
            K: ::std::hash::Hash + Eq + 'static,
            V: 'static,
            S: ::std::hash::BuildHasher,
        {
            type Iter<'a>
                = $crate::Iter<'a, K, V>
            where
                Self: 'a,
                K: 'a,
                V: 'a;

            #[inline]
            fn get<Q>(&mut self, key: &Q) -> Option<&V>
            where
                K: ::std::borrow::Borrow<Q>,
                Q: ::std::hash::Hash + Eq + ?Sized,
            {
                self.inner.lookup(key).map(|node| &node.value)
            }

            #[inline]
            fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
            where
                K: ::std::borrow::Borrow<Q>,
                Q: ::std::hash::Hash + Eq + ?Sized,
            {
                self.inner.lookup(key).map(|node| &mut node.value)
            }

            #[inline]
            fn peek<Q>(&self, key: &Q) -> Option<&V>
            where
                K: ::std::borrow::Borrow<Q>,
                Q: ::std::hash::Hash + Eq + ?Sized,
            {
                self.inner.peek(key).map(|node| &node.value)
            }

            fn insert(&mut self, key: K, value: V) -> Option<V> {
                self.inner.insert(key, value, $crate::rules::Ttl::Default)
            }

            fn try_insert(
                &mut self,
                key: K,
                value: V,
            ) -> ::std::result::Result<Option<V>, $crate::Rejected<K, V>> {
                let prepared = self
                    .inner
                    .rules
                    .prepare(&key, &value, $crate::rules::Ttl::Default);
                if prepared.weight > self.inner.capacity() {
                    self.inner.count_rejection();
                    return Err($crate::Rejected::new(
                        key,
                        value,
                        prepared.weight,
                        self.inner.capacity(),
                    ));
                }
                let hash = self.inner.hash(&key);
                let (target, _) = self.inner.insert_at(hash, key, value, prepared);
                Ok(self.inner.finish(target))
            }

            fn get_or_insert_with<F>(&mut self, key: K, make: F) -> Option<&V>
            where
                F: FnOnce() -> V,
            {
                self.inner
                    .get_or_insert_with(key, make)
                    .map(|node| &node.value)
            }

            fn insert_with_ttl(
                &mut self,
                key: K,
                value: V,
                ttl: ::std::time::Duration,
            ) -> Option<V> {
                self.inner.insert(key, value, $crate::rules::Ttl::For(ttl))
            }

            fn remove<Q>(&mut self, key: &Q) -> Option<V>
            where
                K: ::std::borrow::Borrow<Q>,
                Q: ::std::hash::Hash + Eq + ?Sized,
            {
                let target = self.inner.remove_hashed(self.inner.hash(key), key);
                self.inner.finish(target)
            }

            fn len(&self) -> usize {
                self.inner.len()
            }

            fn weight(&self) -> u64 {
                self.inner.weight()
            }

            fn capacity(&self) -> u64 {
                self.inner.capacity()
            }

            fn clear(&mut self) {
                self.inner.clear();
                self.inner.flush();
            }

            fn purge_expired(&mut self) -> usize {
                let purged = self.inner.purge_expired();
                self.inner.flush();
                purged
            }

            fn iter(&self) -> Self::Iter<'_> {
                self.inner.iter()
            }

            fn stats(&self) -> $crate::CacheStats {
                self.inner.stats()
            }
        }

        impl<K, V, S> $crate::engine::Hashed<K, V> for $ty<K, V, S>
        where
            K: ::std::hash::Hash + Eq + 'static,
            V: 'static,
            S: ::std::hash::BuildHasher,
        {
            #[inline]
            fn get_hashed<Q>(&mut self, hash: u64, key: &Q) -> Option<&mut V>
            where
                K: ::std::borrow::Borrow<Q>,
                Q: ::std::hash::Hash + Eq + ?Sized,
            {
                self.inner
                    .lookup_hashed(hash, key)
                    .map(|node| &mut node.value)
            }

            #[inline]
            fn get_shared<Q>(&self, hash: u64, key: &Q) -> $crate::engine::SharedGet<&V>
            where
                K: ::std::borrow::Borrow<Q>,
                Q: ::std::hash::Hash + Eq + ?Sized,
            {
                self.inner.get_shared(hash, key)
            }

            #[inline]
            fn peek_hashed<Q>(&self, hash: u64, key: &Q) -> Option<&V>
            where
                K: ::std::borrow::Borrow<Q>,
                Q: ::std::hash::Hash + Eq + ?Sized,
            {
                self.inner.peek_hashed(hash, key).map(|node| &node.value)
            }

            fn insert_hashed(
                &mut self,
                hash: u64,
                key: K,
                value: V,
                prepared: $crate::rules::Prepared,
            ) -> Option<$crate::removal::Removal<K, V>> {
                self.inner.insert_at(hash, key, value, prepared).0
            }

            fn remove_hashed<Q>(
                &mut self,
                hash: u64,
                key: &Q,
            ) -> Option<$crate::removal::Removal<K, V>>
            where
                K: ::std::borrow::Borrow<Q>,
                Q: ::std::hash::Hash + Eq + ?Sized,
            {
                self.inner.remove_hashed(hash, key)
            }

            #[inline]
            fn take_removed(&mut self) -> $crate::removal::Drained<K, V> {
                self.inner.take_removed()
            }

            fn count_rejection(&mut self) {
                self.inner.count_rejection();
            }
        }

        impl<K, V, S> ::std::fmt::Debug for $ty<K, V, S> {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.debug_struct(stringify!($ty))
                    .field("len", &self.inner.len())
                    .field("weight", &self.inner.weight())
                    .field("capacity", &self.inner.capacity())
                    .finish_non_exhaustive()
            }
        }
    };
}

pub(crate) use cache_type;
