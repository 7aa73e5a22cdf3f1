//! [`WriteThrough`]: a [`ConcurrentCache`] in front of a [`Store`]; writes go to the store first.

use std::fmt;
use std::hash::{BuildHasher, Hash};

use crossbeam_utils::CachePadded;
use parking_lot::Mutex;

use crate::concurrent::shard_index;
use crate::{CachePolicy, ConcurrentCache, LoadError, SipHashBuilder, Store};

/// Write locks per cache shard (see [`WriteMode::Update`]).
const STRIPES_PER_SHARD: usize = 4;

/// What [`WriteThrough`] does to the cache after the store accepted a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum WriteMode {
    /// Put the written value in the cache (the next read is a hit). Writes to keys that share one
    /// of a fixed set of lock stripes are serialised around the store write, so the cache and the
    /// store agree on the last value even when two writers race on one key.
    #[default]
    Update,
    /// Drop the key from the cache (the next read loads it from the store). Needs no write lock:
    /// the safest choice when other processes also write the store.
    Invalidate,
}

/// A read-through, write-through cache: reads load misses from the [`Store`] with stampede
/// protection; writes go to the store first and reach the cache only once the store accepted
/// them.
///
/// - [`get`](Self::get) returns the cached value, or loads it with
///   [`ConcurrentCache::get_or_load_opt`] semantics: one load per key at a time, its error shared
///   by every waiter, a missing row cached as nothing.
/// - [`put`](Self::put) writes the store, then updates or invalidates the cache
///   ([`WriteMode`]). A store error is returned and **leaves the cache unchanged**.
/// - A write that lands while a read-through load of the same key is in flight wins: the load
///   (which may have read the old row) does not cache its result.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use tierkit_cache::{ConcurrentCache, LruCache, MemoryStore, WriteThrough};
///
/// let db = Arc::new(MemoryStore::new());
/// let cache: ConcurrentCache<u64, String, LruCache<u64, String>> = ConcurrentCache::new(1000)?;
/// let users = WriteThrough::new(cache, Arc::clone(&db));
///
/// users.put(1, "ada".to_string()).expect("in-memory store never fails");
/// assert_eq!(db.get(&1).as_deref(), Some("ada")); // the store has it
/// assert_eq!(users.cache().peek(&1).as_deref(), Some("ada")); // and so does the cache
/// assert_eq!(users.get(&2).expect("no error"), None); // a miss goes to the store
/// # Ok::<(), tierkit_cache::Error>(())
/// ```
pub struct WriteThrough<K, V, P, St, S = SipHashBuilder> {
    cache: ConcurrentCache<K, V, P, S>,
    store: St,
    mode: WriteMode,
    stripes: Box<[CachePadded<Mutex<()>>]>,
}

impl<K, V, P, St, S> WriteThrough<K, V, P, St, S>
where
    K: Hash + Eq + Clone + 'static,
    V: Clone + Send + Sync + 'static,
    S: BuildHasher + Clone,
    P: CachePolicy<K, V, S>,
    St: Store<K, V>,
    St::Error: Send + Sync + 'static,
{
    /// Fronts `store` with `cache`, in [`WriteMode::Update`].
    pub fn new(cache: ConcurrentCache<K, V, P, S>, store: St) -> Self {
        let stripes = cache.shard_count().saturating_mul(STRIPES_PER_SHARD);
        let stripes = (0..stripes)
            .map(|_| CachePadded::new(Mutex::new(())))
            .collect();
        Self {
            cache,
            store,
            mode: WriteMode::Update,
            stripes,
        }
    }

    /// Sets what a write does to the cache.
    #[must_use]
    pub fn with_mode(mut self, mode: WriteMode) -> Self {
        self.mode = mode;
        self
    }

    /// The value for `key`: from the cache, or loaded from the store (and cached) on a miss.
    ///
    /// # Errors
    /// [`LoadError::Failed`] with the store's error (shared with concurrent readers of the same
    /// key); nothing is cached.
    ///
    /// # Panics
    /// A panic of the store's `load` propagates to the reader that ran it (other readers retry).
    pub fn get(&self, key: &K) -> Result<Option<V>, LoadError<St::Error>> {
        if let Some(v) = self.cache.get(key) {
            return Ok(Some(v));
        }
        self.cache
            .load(key.clone(), || self.store.load(key))
            .map(|(v, _)| v)
    }

    /// Writes `value` to the store, then updates or invalidates the cache.
    ///
    /// # Errors
    /// The store's error; the cache is left unchanged. (If the store applied the write before
    /// failing, the cache may now be older than the store: use [`WriteMode::Invalidate`], or
    /// call [`ConcurrentCache::invalidate`] on failure, when that matters.)
    pub fn put(&self, key: K, value: V) -> Result<(), St::Error> {
        match self.mode {
            WriteMode::Update => {
                let _stripe = self.stripe(&key);
                self.store.store(&key, &value)?;
                self.cache.insert(key, value);
            }
            WriteMode::Invalidate => {
                self.store.store(&key, &value)?;
                self.cache.invalidate(&key);
            }
        }
        Ok(())
    }

    /// Deletes `key` from the store, then from the cache.
    ///
    /// # Errors
    /// The store's error; the cache is left unchanged.
    pub fn delete(&self, key: &K) -> Result<(), St::Error> {
        let _stripe = (self.mode == WriteMode::Update).then(|| self.stripe(key));
        self.store.delete(key)?;
        self.cache.invalidate(key);
        Ok(())
    }

    fn stripe(&self, key: &K) -> parking_lot::MutexGuard<'_, ()> {
        let index = shard_index(
            self.cache.hasher.hash_one(key).rotate_left(16),
            self.stripes.len(),
        );
        self.stripes[index].lock()
    }
}

impl<K, V, P, St, S> WriteThrough<K, V, P, St, S> {
    /// The cache (for stats, direct invalidation, or reads that must not touch the store).
    pub fn cache(&self) -> &ConcurrentCache<K, V, P, S> {
        &self.cache
    }

    /// The store.
    pub fn store(&self) -> &St {
        &self.store
    }

    /// The write mode.
    pub fn mode(&self) -> WriteMode {
        self.mode
    }

    /// The cache and the store.
    pub fn into_parts(self) -> (ConcurrentCache<K, V, P, S>, St) {
        (self.cache, self.store)
    }
}

impl<K, V, P, St, S> fmt::Debug for WriteThrough<K, V, P, St, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteThrough")
            .field("cache", &self.cache)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}
