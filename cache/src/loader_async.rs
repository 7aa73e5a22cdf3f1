//! Async read-through with stampede protection (feature `tokio`):
//! [`ConcurrentCache::get_or_load_async`].

use std::future::Future;
use std::hash::{BuildHasher, Hash};

use crate::flight::{Join, Lead, Output, Required, Settled};
use crate::loader::{LoadError, LoadOutcome};
use crate::{CachePolicy, ConcurrentCache};

/// The spawned-task loaders. For loaders that borrow (futures that are not `'static`), use
/// [`get_with`](ConcurrentCache::get_with) and its siblings, which need no feature.
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
impl<K, V, P, S> ConcurrentCache<K, V, P, S>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    S: BuildHasher + Clone + Send + Sync + 'static,
    P: CachePolicy<K, V, S> + Send + Sync + 'static,
{
    /// The async form of [`get_or_load`](Self::get_or_load): returns the cached value for `key`,
    /// or awaits `loader`, caches its value and returns it.
    ///
    /// Concurrent misses on the same key (from tasks or from sync callers) run one loader; every
    /// other caller awaits its outcome without blocking a thread. A loader error reaches every
    /// caller of that load as the same [`LoadError::Failed`] and nothing is cached.
    ///
    /// # Cancellation
    /// Unlike [`get_with`](Self::get_with) (whose loader runs in the caller's task and may
    /// borrow), dropping any caller's future, *including the one whose loader runs*, never cancels the
    /// load for the others: inside a tokio runtime the loader runs on a spawned task
    /// (hence `loader: Send + 'static`), which caches the value and wakes every waiter even if
    /// all of them are gone. Outside a tokio runtime (another executor), the loader runs inside
    /// the first caller's future instead; if that future is dropped, a waiting caller takes over
    /// and runs its own loader.
    ///
    /// # Errors
    /// [`LoadError::Failed`] with the loader's error; [`LoadError::Abandoned`] if the loading task
    /// was cancelled before it finished (the runtime shut down).
    ///
    /// # Panics
    /// If `loader` panics, the panic is resumed in the caller whose loader it was (if still
    /// waiting); other waiters run their own loaders.
    ///
    /// # Examples
    ///
    /// ```
    /// use tierkit_cache::{ConcurrentCache, LruCache};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let cache: ConcurrentCache<u32, String, LruCache<u32, String>> = ConcurrentCache::new(100)?;
    /// let v = cache
    ///     .get_or_load_async(7, async { Ok::<_, std::io::Error>("seven".to_string()) })
    ///     .await?;
    /// assert_eq!(v, "seven");
    /// assert_eq!(cache.get(&7).as_deref(), Some("seven"));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn get_or_load_async<E, F>(&self, key: K, loader: F) -> Result<V, LoadError<E>>
    where
        E: Send + Sync + 'static,
        F: Future<Output = Result<V, E>> + Send + 'static,
    {
        self.get_or_load_with_outcome_async(key, loader)
            .await
            .map(|(v, _)| v)
    }

    /// The async form of [`get_or_load_with_outcome`](Self::get_or_load_with_outcome):
    /// [`get_or_load_async`](Self::get_or_load_async), also telling how the value was obtained
    /// (see [`LoadOutcome`]). A call whose loader runs on a spawned task reports
    /// [`LoadOutcome::Loaded`].
    ///
    /// # Errors
    /// As [`get_or_load_async`](Self::get_or_load_async).
    ///
    /// # Panics
    /// As [`get_or_load_async`](Self::get_or_load_async).
    ///
    /// # Examples
    ///
    /// ```
    /// use tierkit_cache::{ConcurrentCache, LoadOutcome, LruCache};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let cache: ConcurrentCache<u32, u32, LruCache<u32, u32>> = ConcurrentCache::new(100)?;
    /// let load = async { Ok::<_, std::io::Error>(49) };
    /// let (v, how) = cache.get_or_load_with_outcome_async(7, load).await?;
    /// assert_eq!((v, how), (49, LoadOutcome::Loaded));
    /// let load = async { Ok::<_, std::io::Error>(0) };
    /// let (v, how) = cache.get_or_load_with_outcome_async(7, load).await?;
    /// assert_eq!((v, how), (49, LoadOutcome::Hit));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn get_or_load_with_outcome_async<E, F>(
        &self,
        key: K,
        loader: F,
    ) -> Result<(V, LoadOutcome), LoadError<E>>
    where
        E: Send + Sync + 'static,
        F: Future<Output = Result<V, E>> + Send + 'static,
    {
        if let Some(v) = self.get(&key) {
            return Ok((v, LoadOutcome::Hit));
        }
        let loader = async move { loader.await.map(Required) };
        self.load_async(key, loader)
            .await
            .map(|(r, outcome)| (r.0, outcome))
    }

    /// The async form of [`get_or_load_opt`](Self::get_or_load_opt): a loader that finds
    /// nothing (`Ok(None)`) caches nothing.
    ///
    /// # Errors
    /// As [`get_or_load_async`](Self::get_or_load_async).
    ///
    /// # Panics
    /// As [`get_or_load_async`](Self::get_or_load_async).
    pub async fn get_or_load_opt_async<E, F>(
        &self,
        key: K,
        loader: F,
    ) -> Result<Option<V>, LoadError<E>>
    where
        E: Send + Sync + 'static,
        F: Future<Output = Result<Option<V>, E>> + Send + 'static,
    {
        if let Some(v) = self.get(&key) {
            return Ok(Some(v));
        }
        self.load_async(key, loader).await.map(|(v, _)| v)
    }

    /// The miss path of the async front ends.
    async fn load_async<T, E, F>(&self, key: K, loader: F) -> Result<(T, LoadOutcome), LoadError<E>>
    where
        T: Output<V> + Send + 'static,
        E: Send + Sync + 'static,
        F: Future<Output = Result<T, E>> + Send + 'static,
    {
        let lead: Lead<K, V, E, S> = loop {
            match self.flights.join::<V, E>(&key) {
                Join::Lead(lead) => break lead,
                Join::Wait(flight) => match flight.wait_async().await {
                    Settled::Done(Ok(found)) => {
                        if let Some(t) = T::from_flight(found) {
                            return Ok((t, LoadOutcome::Joined));
                        }
                    }
                    Settled::Done(Err(e)) => return Err(LoadError::Failed(e)),
                    Settled::Abandoned => {}
                },
                Join::Foreign => {
                    let t = self.load_uncoordinated(key, loader.await)?;
                    return Ok((t, LoadOutcome::Loaded));
                }
            }
        };
        let cached = self.peek(lead.key());
        if let Some(t) = cached.clone().and_then(|v| T::from_flight(Some(v))) {
            lead.complete(self, Ok(cached));
            return Ok((t, LoadOutcome::Hit));
        }
        let cache = self.clone();
        let job = async move {
            let result = loader.await;
            lead.settle(&cache, result, T::to_cache)
        };
        let t = match tokio::runtime::Handle::try_current() {
            Ok(runtime) => match runtime.spawn(job).await {
                Ok(result) => result,
                Err(e) => match e.try_into_panic() {
                    Ok(panic) => std::panic::resume_unwind(panic),
                    Err(_) => Err(LoadError::Abandoned),
                },
            },
            Err(_) => job.await,
        }?;
        Ok((t, LoadOutcome::Loaded))
    }
}
