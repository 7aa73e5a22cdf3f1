//! [`TieredCache`]: a [`ConcurrentCache`] near cache in front of a [`RemoteTier`], kept coherent
//! between app instances by Redis's client-side caching invalidations.

use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;

use super::invalidation::Invalidate;
use super::stats::TieredStats;
use super::{RemoteResult, RemoteTier, RemoteTierBuilder};
use crate::{CacheBuilder, CachePolicy, ConcurrentCache, LoadError, LruCache};

/// The near cache's type.
pub type NearCache<P> = ConcurrentCache<Bytes, Bytes, P>;

#[derive(Debug, Default)]
struct Counters {
    near_misses: AtomicU64,
    remote_hits: AtomicU64,
    loads: AtomicU64,
    remote_errors: AtomicU64,
    invalidations: AtomicU64,
    channel_losses: AtomicU64,
    capped_fills: AtomicU64,
    /// Bumped when a channel comes back, before the near cache is flushed: a value kept while
    /// a channel was down must not outlive the flush that follows the channel's return.
    restores: AtomicU64,
}

/// Delivers a tier's invalidations to the near cache.
struct NearSink<P> {
    near: Arc<NearCache<P>>,
    counters: Arc<Counters>,
}

impl<P> Invalidate for NearSink<P>
where
    P: CachePolicy<Bytes, Bytes, crate::SipHashBuilder> + Send + Sync + 'static,
{
    fn key(&self, key: &[u8]) {
        self.near.invalidate(key);
        self.counters.invalidations.fetch_add(1, Ordering::Relaxed);
    }

    fn all(&self) {
        self.near.invalidate_all();
        self.counters.invalidations.fetch_add(1, Ordering::Relaxed);
    }

    fn channel_lost(&self, _node: usize) {
        self.near.invalidate_all();
        self.counters.channel_losses.fetch_add(1, Ordering::Relaxed);
    }

    fn channel_restored(&self, _node: usize) {
        self.counters.restores.fetch_add(1, Ordering::SeqCst);
        self.near.invalidate_all();
    }
}

/// Builds a [`TieredCache`] from a [`RemoteTierBuilder`].
///
/// | setting | default | meaning |
/// |---|---|---|
/// | [`near_capacity`](Self::near_capacity) | 10,000 | entries of the near cache |
/// | [`near_ttl`](Self::near_ttl) | 60 s | the longest a near entry lives (a backstop; invalidations remove it sooner) |
/// | [`remote_ttl`](Self::remote_ttl) | 10 min | TTL of values the loader produced, written to Redis |
/// | [`disconnected_ttl`](Self::disconnected_ttl) | 1 s | the longest a near entry lives when its node's invalidation channel is lost (zero: such values are not kept) |
#[derive(Debug, Clone)]
#[must_use]
pub struct TieredCacheBuilder<P = LruCache<Bytes, Bytes>> {
    remote: RemoteTierBuilder,
    near_capacity: u64,
    near_ttl: Duration,
    remote_ttl: Duration,
    disconnected_ttl: Duration,
    _policy: PhantomData<fn() -> P>,
}

impl<P> TieredCacheBuilder<P>
where
    P: CachePolicy<Bytes, Bytes, crate::SipHashBuilder> + Send + Sync + 'static,
{
    /// A builder over the nodes and settings of `remote`.
    pub fn new(remote: RemoteTierBuilder) -> Self {
        Self {
            remote,
            near_capacity: 10_000,
            near_ttl: Duration::from_secs(60),
            remote_ttl: Duration::from_secs(600),
            disconnected_ttl: Duration::from_secs(1),
            _policy: PhantomData,
        }
    }

    /// Entries the near cache holds.
    pub fn near_capacity(mut self, capacity: u64) -> Self {
        self.near_capacity = capacity;
        self
    }

    /// The longest a near entry lives ([`Duration::MAX`]: only invalidations remove it).
    pub fn near_ttl(mut self, ttl: Duration) -> Self {
        self.near_ttl = ttl;
        self
    }

    /// The TTL of loaded values written to Redis.
    pub fn remote_ttl(mut self, ttl: Duration) -> Self {
        self.remote_ttl = ttl;
        self
    }

    /// The TTL cap of near entries read while their node's invalidation channel is lost.
    pub fn disconnected_ttl(mut self, ttl: Duration) -> Self {
        self.disconnected_ttl = ttl;
        self
    }

    /// Builds the near cache, connects the tier with tracking on every node, and starts the
    /// probes.
    ///
    /// # Errors
    /// The near cache's [`CacheError`](crate::CacheError)s (zero capacity, zero TTL) as
    /// [`RemoteError::Cache`](super::RemoteError::Cache), and every error of [`RemoteTierBuilder::connect`].
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub async fn connect(self) -> RemoteResult<TieredCache<P>> {
        let near_builder: CacheBuilder<Bytes, Bytes> =
            CacheBuilder::new(self.near_capacity).default_ttl(self.near_ttl);
        let near = Arc::new(ConcurrentCache::with_builder(&near_builder)?);
        let counters = Arc::new(Counters::default());
        let sink = Arc::new(NearSink {
            near: Arc::clone(&near),
            counters: Arc::clone(&counters),
        });
        let remote = self.remote.connect_with(sink).await?;
        Ok(TieredCache {
            near,
            remote,
            counters,
            remote_ttl: self.remote_ttl,
            disconnected_ttl: self.disconnected_ttl,
        })
    }
}

/// What the single-flight load produced, besides a value to cache.
enum Fill<E> {
    /// A value that must not be cached for the near TTL (its node's channel is lost).
    Uncached(Bytes),
    /// The loader failed.
    Loader(Arc<E>),
}

/// Two cache levels, read through: a [`ConcurrentCache`] near cache in this process, then a
/// [`RemoteTier`] of Redis servers shared by every app instance, then the loader.
///
/// # Reads
///
/// [`get_or_load`](Self::get_or_load) answers from the near cache; on a miss it runs one
/// load per key for the whole app instance (single flight: concurrent misses of a key wait for
/// the same load) that reads Redis, and on a miss there runs the loader and writes its value to
/// Redis. **A cache error never fails a read**: a remote timeout, refused connection or down
/// node is counted in [`stats`](Self::stats) and the loader serves the read; only the loader's
/// own error is returned.
///
/// # Coherence between app instances
///
/// Each node's connection runs `CLIENT TRACKING ON BCAST PREFIX <prefix> NOLOOP` (RESP3): any
/// write to a key under the prefix, by any instance or any other Redis client, and any expiry
/// or eviction in Redis, sends an invalidation to every other instance, which drops the key
/// from its near cache (a load of that key in flight then does not store its result). An
/// instance's own [`set`](Self::set) and [`delete`](Self::delete) drop the key locally.
///
/// **Staleness bound.** While the channels are up, an instance stops serving an old value
/// within the invalidation latency (measured: see the crate README). When a node's channel is
/// lost (its connection closes, or a probe times out), the whole near cache is flushed at once,
/// and values read from that node until a new tracked connection is up are kept at most
/// [`disconnected_ttl`](TieredCacheBuilder::disconnected_ttl). A lost connection is seen at once
/// when it closes; a silent one (a paused server, a partition) within
/// `probe_interval + op_timeout`. So a near entry is never older than the later of those
/// detection times plus the disconnected TTL, and never older than
/// [`near_ttl`](TieredCacheBuilder::near_ttl) in any case.
///
/// # Examples
///
/// ```no_run
/// use bytes::Bytes;
/// use tierkit_cache::remote::{RemoteTier, TieredCache};
///
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let cache: TieredCache = TieredCache::builder(
///     RemoteTier::builder().nodes_from_list("127.0.0.1:26379,127.0.0.1:26380,127.0.0.1:26381"),
/// )
/// .near_capacity(10_000)
/// .connect()
/// .await?;
/// let v = cache
///     .get_or_load(b"user:42", async { Ok::<_, std::io::Error>(Some(Bytes::from("alice"))) })
///     .await?;
/// assert_eq!(v.as_deref(), Some(&b"alice"[..]));
/// # Ok(())
/// # }
/// ```
pub struct TieredCache<P = LruCache<Bytes, Bytes>> {
    near: Arc<NearCache<P>>,
    remote: RemoteTier,
    counters: Arc<Counters>,
    remote_ttl: Duration,
    disconnected_ttl: Duration,
}

impl<P> Clone for TieredCache<P> {
    fn clone(&self) -> Self {
        Self {
            near: Arc::clone(&self.near),
            remote: self.remote.clone(),
            counters: Arc::clone(&self.counters),
            remote_ttl: self.remote_ttl,
            disconnected_ttl: self.disconnected_ttl,
        }
    }
}

impl<P> std::fmt::Debug for TieredCache<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TieredCache")
            .field("remote", &self.remote)
            .finish_non_exhaustive()
    }
}

impl TieredCache {
    /// A builder with an LRU near cache over the nodes of `remote`.
    pub fn builder(remote: RemoteTierBuilder) -> TieredCacheBuilder {
        TieredCacheBuilder::new(remote)
    }
}

impl<P> TieredCache<P>
where
    P: CachePolicy<Bytes, Bytes, crate::SipHashBuilder> + Send + Sync + 'static,
{
    /// The value of `key` from the near cache, else Redis, else `loader` (whose value is
    /// written to Redis and kept in the near cache). `Ok(None)` when the loader finds nothing.
    ///
    /// # Errors
    /// Only the loader's: [`LoadError::Failed`] with its error, or [`LoadError::Abandoned`] if
    /// the runtime shut down during the load. Remote errors are swallowed (see the type docs).
    ///
    /// A near hit is answered before the returned future is first polled, and that future is a
    /// few words (the miss path is boxed), so a hit costs what a `ConcurrentCache` lookup
    /// costs.
    pub fn get_or_load<E, F>(
        &self,
        key: impl AsRef<[u8]>,
        loader: F,
    ) -> impl Future<Output = Result<Option<Bytes>, LoadError<E>>> + Send + '_
    where
        E: Send + Sync + 'static,
        F: Future<Output = Result<Option<Bytes>, E>> + Send + 'static,
    {
        let key = key.as_ref();
        let state = match self.near.get(key) {
            Some(v) => Ok(v),
            None => Err(Box::pin(self.miss(Bytes::copy_from_slice(key), loader))),
        };
        async move {
            match state {
                Ok(v) => Ok(Some(v)),
                Err(miss) => miss.await,
            }
        }
    }

    /// The near-miss path of [`get_or_load`](Self::get_or_load).
    async fn miss<E, F>(&self, key: Bytes, loader: F) -> Result<Option<Bytes>, LoadError<E>>
    where
        E: Send + Sync + 'static,
        F: Future<Output = Result<Option<Bytes>, E>> + Send + 'static,
    {
        self.counters.near_misses.fetch_add(1, Ordering::Relaxed);
        // Read before the fill looks at any channel (see `Fill::Uncached` below).
        let restores = self.counters.restores.load(Ordering::SeqCst);
        let fill = fill(
            self.remote.clone(),
            Arc::clone(&self.counters),
            key.clone(),
            loader,
            self.remote_ttl,
        );
        match self.near.get_or_load_opt_async(key.clone(), fill).await {
            Ok(v) => Ok(v),
            Err(LoadError::Failed(f)) => match &*f {
                Fill::Uncached(v) => {
                    if !self.disconnected_ttl.is_zero() {
                        let ttl = self.disconnected_ttl;
                        drop(self.near.insert_with_ttl(key.clone(), v.clone(), ttl));
                        // A channel that came back since the fill began flushed the near cache
                        // (its return sets the channel live, bumps `restores`, then flushes):
                        // either that flush came after this insert, or the bump is visible
                        // here. Either way the value, read while the channel was down, is gone
                        // once the channel is back.
                        if self.counters.restores.load(Ordering::SeqCst) != restores {
                            self.near.invalidate(&key);
                        }
                    }
                    Ok(Some(v.clone()))
                }
                Fill::Loader(e) => Err(LoadError::Failed(Arc::clone(e))),
            },
            Err(LoadError::Abandoned) => Err(LoadError::Abandoned),
        }
    }

    /// The value of `key` from the near cache or Redis, without a loader.
    pub async fn get(&self, key: impl AsRef<[u8]>) -> Option<Bytes> {
        let none = async { Ok::<_, std::convert::Infallible>(None) };
        self.get_or_load(key, none).await.ok().flatten()
    }

    /// Writes `value` to Redis (with the remote TTL) and drops `key` from this instance's near
    /// cache; other instances drop it when the write's invalidation reaches them. One failed
    /// node never fails a write (see [`RemoteTier::set`]).
    ///
    /// # Errors
    /// As [`RemoteTier::set`] when no node could take the write. The near entry is dropped
    /// whatever the outcome.
    pub async fn set(&self, key: impl AsRef<[u8]>, value: Bytes) -> RemoteResult<()> {
        let key = key.as_ref();
        let res = self.remote.set_routed(key, &value, self.remote_ttl).await;
        self.near.invalidate(key);
        res.map(|_| ())
    }

    /// Removes `key` from Redis and from this instance's near cache.
    ///
    /// # Errors
    /// As [`RemoteTier::delete`]. The near entry is dropped whatever the outcome.
    pub async fn delete(&self, key: impl AsRef<[u8]>) -> RemoteResult<()> {
        let key = key.as_ref();
        let res = self.remote.delete(key).await;
        self.near.invalidate(key);
        res
    }

    /// The near cache (to inspect it, or invalidate entries by hand).
    #[must_use]
    pub fn near(&self) -> &NearCache<P> {
        &self.near
    }

    /// The remote tier.
    #[must_use]
    pub fn remote(&self) -> &RemoteTier {
        &self.remote
    }

    /// Where reads were served, and invalidation counters.
    #[must_use]
    pub fn stats(&self) -> TieredStats {
        let c = &self.counters;
        TieredStats {
            near_hits: self.near.stats().hits,
            near_misses: c.near_misses.load(Ordering::Relaxed),
            remote_hits: c.remote_hits.load(Ordering::Relaxed),
            loads: c.loads.load(Ordering::Relaxed),
            remote_errors: c.remote_errors.load(Ordering::Relaxed),
            invalidations: c.invalidations.load(Ordering::Relaxed),
            channel_losses: c.channel_losses.load(Ordering::Relaxed),
            capped_fills: c.capped_fills.load(Ordering::Relaxed),
        }
    }
}

/// The single-flight load of one key: Redis, then the loader (whose value goes to Redis).
async fn fill<E, F>(
    remote: RemoteTier,
    counters: Arc<Counters>,
    key: Bytes,
    loader: F,
    ttl: Duration,
) -> Result<Option<Bytes>, Fill<E>>
where
    F: Future<Output = Result<Option<Bytes>, E>>,
{
    let (node, got) = remote.get_routed(&key).await;
    let remote_ok = match got {
        Ok(Some(v)) => {
            counters.remote_hits.fetch_add(1, Ordering::Relaxed);
            return keep(&remote, &counters, node, v);
        }
        Ok(None) => true,
        Err(e) => {
            counters.remote_errors.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(error = %e, "remote read failed; loading");
            false
        }
    };
    counters.loads.fetch_add(1, Ordering::Relaxed);
    let value = match loader.await {
        Ok(Some(v)) => v,
        Ok(None) => return Ok(None),
        Err(e) => return Err(Fill::Loader(Arc::new(e))),
    };
    // After a failed read, do not spend another timeout on a write to the same failing node.
    let node = if remote_ok {
        match remote.set_routed(&key, &value, ttl).await {
            Ok(i) => Some(i),
            Err(e) => {
                counters.remote_errors.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(error = %e, "remote write of a loaded value failed");
                None
            }
        }
    } else {
        None
    };
    keep(&remote, &counters, node, value)
}

/// Cache `value` in the near cache for the near TTL only if invalidations from `node` reach us.
fn keep<E>(
    remote: &RemoteTier,
    counters: &Counters,
    node: Option<usize>,
    value: Bytes,
) -> Result<Option<Bytes>, Fill<E>> {
    if node.is_some_and(|i| remote.channel_live(i)) {
        Ok(Some(value))
    } else {
        counters.capped_fills.fetch_add(1, Ordering::Relaxed);
        Err(Fill::Uncached(value))
    }
}
