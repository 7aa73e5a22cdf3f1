//! The backing data store behind the read-through, write-through and write-back wrappers:
//! [`Store`], and the in-memory [`MemoryStore`].

use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt;
use std::hash::Hash;
use std::sync::Arc;

use parking_lot::Mutex;

/// A backing data store (the source of truth a cache fronts): a database table, a remote
/// key-value service, a file.
///
/// Used by [`WriteThrough`](crate::WriteThrough) and [`WriteBack`](crate::WriteBack), which
/// call it from many threads at once: implementations are usually `Send + Sync` (those wrappers
/// require it) and do their own synchronisation. The batch methods default to a loop over the
/// single ones; override them where the store has a real batch API (a multi-row `INSERT`, a
/// pipeline).
///
/// # Examples
///
/// ```
/// use std::collections::HashMap;
/// use parking_lot::Mutex;
/// use tierkit_cache::Store;
///
/// /// A toy store over a map, failing on demand.
/// struct Users {
///     rows: Mutex<HashMap<u64, String>>,
/// }
///
/// impl Store<u64, String> for Users {
///     type Error = std::io::Error;
///
///     fn load(&self, key: &u64) -> Result<Option<String>, Self::Error> {
///         Ok(self.rows.lock().get(key).cloned())
///     }
///     fn store(&self, key: &u64, value: &String) -> Result<(), Self::Error> {
///         self.rows.lock().insert(*key, value.clone());
///         Ok(())
///     }
///     fn delete(&self, key: &u64) -> Result<(), Self::Error> {
///         self.rows.lock().remove(key);
///         Ok(())
///     }
/// }
///
/// let users = Users { rows: Mutex::new(HashMap::new()) };
/// users.store_all(&[(1, "ada".to_string()), (2, "grace".to_string())])?;
/// assert_eq!(users.load(&2)?.as_deref(), Some("grace"));
/// # Ok::<(), std::io::Error>(())
/// ```
pub trait Store<K, V> {
    /// Why an operation failed (shared with every caller waiting on the same read-through load).
    type Error;

    /// Reads `key`: `Ok(None)` if the store has no value for it.
    ///
    /// # Errors
    /// The store could not be read.
    fn load(&self, key: &K) -> Result<Option<V>, Self::Error>;

    /// Writes `value` under `key`, replacing any previous value.
    ///
    /// # Errors
    /// The store could not be written; the wrappers then keep or report the write.
    fn store(&self, key: &K, value: &V) -> Result<(), Self::Error>;

    /// Deletes `key` (deleting a missing key succeeds).
    ///
    /// # Errors
    /// The store could not be written.
    fn delete(&self, key: &K) -> Result<(), Self::Error>;

    /// Writes every entry; the default calls [`store`](Self::store) for each in order and stops at
    /// the first error (earlier entries stay written: callers retry the whole batch, so writes
    /// must be idempotent, as plain "set" writes are).
    ///
    /// # Errors
    /// The first error of a single write.
    fn store_all(&self, entries: &[(K, V)]) -> Result<(), Self::Error> {
        entries.iter().try_for_each(|(k, v)| self.store(k, v))
    }

    /// Deletes every key; the default calls [`delete`](Self::delete) for each, stopping at the
    /// first error.
    ///
    /// # Errors
    /// The first error of a single delete.
    fn delete_all(&self, keys: &[K]) -> Result<(), Self::Error> {
        keys.iter().try_for_each(|k| self.delete(k))
    }
}

impl<K, V, T: Store<K, V> + ?Sized> Store<K, V> for Arc<T> {
    type Error = T::Error;

    fn load(&self, key: &K) -> Result<Option<V>, Self::Error> {
        (**self).load(key)
    }

    fn store(&self, key: &K, value: &V) -> Result<(), Self::Error> {
        (**self).store(key, value)
    }

    fn delete(&self, key: &K) -> Result<(), Self::Error> {
        (**self).delete(key)
    }

    fn store_all(&self, entries: &[(K, V)]) -> Result<(), Self::Error> {
        (**self).store_all(entries)
    }

    fn delete_all(&self, keys: &[K]) -> Result<(), Self::Error> {
        (**self).delete_all(keys)
    }
}

/// A [`Store`] kept in a `HashMap` behind a lock: for tests, examples and prototypes.
///
/// # Examples
///
/// ```
/// use tierkit_cache::{MemoryStore, Store};
///
/// let store = MemoryStore::new();
/// store.store(&"k", &1)?;
/// assert_eq!(store.load(&"k")?, Some(1));
/// assert_eq!(store.len(), 1);
/// # Ok::<(), std::convert::Infallible>(())
/// ```
pub struct MemoryStore<K, V> {
    rows: Mutex<HashMap<K, V>>,
}

impl<K, V> MemoryStore<K, V> {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        Self {
            rows: Mutex::new(HashMap::new()),
        }
    }

    /// Rows held.
    pub fn len(&self) -> usize {
        self.rows.lock().len()
    }

    /// Whether the store holds no row.
    pub fn is_empty(&self) -> bool {
        self.rows.lock().is_empty()
    }

    /// A copy of `key`'s row, if any (like [`Store::load`], without the `Result`).
    pub fn get(&self, key: &K) -> Option<V>
    where
        K: Hash + Eq,
        V: Clone,
    {
        self.rows.lock().get(key).cloned()
    }
}

impl<K, V> Default for MemoryStore<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K, V> fmt::Debug for MemoryStore<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

impl<K, V> Store<K, V> for MemoryStore<K, V>
where
    K: Hash + Eq + Clone,
    V: Clone,
{
    type Error = Infallible;

    fn load(&self, key: &K) -> Result<Option<V>, Infallible> {
        Ok(self.rows.lock().get(key).cloned())
    }

    fn store(&self, key: &K, value: &V) -> Result<(), Infallible> {
        self.rows.lock().insert(key.clone(), value.clone());
        Ok(())
    }

    fn delete(&self, key: &K) -> Result<(), Infallible> {
        self.rows.lock().remove(key);
        Ok(())
    }

    fn store_all(&self, entries: &[(K, V)]) -> Result<(), Infallible> {
        let mut rows = self.rows.lock();
        rows.extend(entries.iter().cloned());
        Ok(())
    }
}
