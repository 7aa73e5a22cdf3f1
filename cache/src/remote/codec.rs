//! Typed values over the byte-valued tier: the [`Codec`] hook and [`Typed`].

use std::marker::PhantomData;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;

use super::{RemoteError, RemoteResult, TieredCache};
use crate::{CachePolicy, LoadError, LruCache};

/// Turns values into bytes and back, for [`Typed`]. Implement it with your serializer of choice
/// (serde + bincode, prost, ...); the tier itself only sees bytes.
///
/// # Examples
///
/// ```
/// use bytes::Bytes;
/// use tierkit_cache::remote::{Codec, RemoteError};
///
/// struct U64Le;
/// impl Codec<u64> for U64Le {
///     fn encode(&self, v: &u64) -> Result<Bytes, RemoteError> {
///         Ok(Bytes::copy_from_slice(&v.to_le_bytes()))
///     }
///     fn decode(&self, b: &[u8]) -> Result<u64, RemoteError> {
///         let arr: [u8; 8] = b.try_into().map_err(|_| RemoteError::Codec {
///             message: format!("{} bytes, expected 8", b.len()),
///         })?;
///         Ok(u64::from_le_bytes(arr))
///     }
/// }
/// assert_eq!(U64Le.decode(&U64Le.encode(&7)?)?, 7);
/// assert!(U64Le.decode(b"short").is_err());
/// # Ok::<(), RemoteError>(())
/// ```
pub trait Codec<T>: Send + Sync + 'static {
    /// The bytes stored for `value`.
    ///
    /// # Errors
    /// [`RemoteError::Codec`] if `value` cannot be encoded.
    fn encode(&self, value: &T) -> RemoteResult<Bytes>;

    /// The value stored as `bytes`.
    ///
    /// # Errors
    /// [`RemoteError::Codec`] if `bytes` are not a valid encoding.
    fn decode(&self, bytes: &[u8]) -> RemoteResult<T>;
}

/// UTF-8 strings as their bytes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Utf8;

impl Codec<String> for Utf8 {
    fn encode(&self, value: &String) -> RemoteResult<Bytes> {
        Ok(Bytes::copy_from_slice(value.as_bytes()))
    }

    fn decode(&self, bytes: &[u8]) -> RemoteResult<String> {
        String::from_utf8(bytes.to_vec()).map_err(|e| RemoteError::Codec {
            message: e.to_string(),
        })
    }
}

/// Why a [`Typed`] read failed: the loader's error, or a value the codec could not encode.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TypedError<E> {
    /// The loader failed.
    #[error("loader failed: {0}")]
    Load(E),
    /// The loader's value could not be encoded.
    #[error(transparent)]
    Codec(RemoteError),
}

/// A [`TieredCache`] seen through a [`Codec`]: reads and writes `T`.
///
/// A stored value that does not decode (written by an older version of the app, say) is
/// deleted from both levels and the loader serves the read: a cache problem never fails a read
/// the loader can serve.
///
/// # Examples
///
/// ```no_run
/// use tierkit_cache::remote::{RemoteTier, TieredCache, Typed, Utf8};
///
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let cache: TieredCache = TieredCache::builder(RemoteTier::builder().node("127.0.0.1:26379"))
///     .connect()
///     .await?;
/// let names = Typed::new(cache, Utf8);
/// let name = names
///     .get_or_load(b"user:42", || async { Ok::<_, std::io::Error>(Some("alice".to_string())) })
///     .await?;
/// assert_eq!(name.as_deref(), Some("alice"));
/// # Ok(())
/// # }
/// ```
pub struct Typed<T, C, P = LruCache<Bytes, Bytes>> {
    cache: TieredCache<P>,
    codec: Arc<C>,
    _values: PhantomData<fn() -> T>,
}

impl<T, C, P> std::fmt::Debug for Typed<T, C, P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Typed")
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

impl<T, C, P> Typed<T, C, P>
where
    T: Send + 'static,
    C: Codec<T>,
    P: CachePolicy<Bytes, Bytes, crate::SipHashBuilder> + Send + Sync + 'static,
{
    /// `cache` read and written as `T` through `codec`.
    pub fn new(cache: TieredCache<P>, codec: C) -> Self {
        Self {
            cache,
            codec: Arc::new(codec),
            _values: PhantomData,
        }
    }

    /// The byte-level cache underneath.
    #[must_use]
    pub fn inner(&self) -> &TieredCache<P> {
        &self.cache
    }

    /// [`TieredCache::get_or_load`] with typed values; `loader` is called (at most once) only
    /// if neither level holds a value that decodes.
    ///
    /// # Errors
    /// [`TypedError::Load`] with the loader's error, [`TypedError::Codec`] if the loader's
    /// value cannot be encoded, [`LoadError::Abandoned`] if the runtime shut down.
    pub async fn get_or_load<E, L, F>(
        &self,
        key: impl AsRef<[u8]>,
        loader: L,
    ) -> Result<Option<T>, LoadError<TypedError<E>>>
    where
        E: Send + Sync + 'static,
        L: FnOnce() -> F + Send + 'static,
        F: Future<Output = Result<Option<T>, E>> + Send + 'static,
    {
        let key = key.as_ref();
        let slot = Arc::new(Mutex::new(Some(loader)));
        let taken = Arc::clone(&slot);
        let codec = Arc::clone(&self.codec);
        let load = async move {
            let loader = taken.lock().take();
            match loader {
                Some(l) => encode_loaded(&*codec, l().await),
                None => Ok(None),
            }
        };
        let Some(bytes) = self.cache.get_or_load(key, load).await? else {
            return Ok(None);
        };
        match self.codec.decode(&bytes) {
            Ok(v) => Ok(Some(v)),
            Err(e) => {
                tracing::warn!(error = %e, "cached value does not decode; reloading");
                drop(self.cache.delete(key).await);
                let loader = slot.lock().take();
                let Some(l) = loader else {
                    // Our loader produced these very bytes: the codec cannot read its own output.
                    return Err(LoadError::Failed(Arc::new(TypedError::Codec(e))));
                };
                let value = l()
                    .await
                    .map_err(|e| LoadError::Failed(Arc::new(TypedError::Load(e))))?;
                if let Some(Ok(b)) = value.as_ref().map(|v| self.codec.encode(v)) {
                    drop(self.cache.set(key, b).await);
                }
                Ok(value)
            }
        }
    }

    /// Encodes `value` and [`TieredCache::set`]s it.
    ///
    /// # Errors
    /// [`RemoteError::Codec`] from the codec, and those of [`TieredCache::set`].
    pub async fn set(&self, key: impl AsRef<[u8]>, value: &T) -> RemoteResult<()> {
        let bytes = self.codec.encode(value)?;
        self.cache.set(key, bytes).await
    }
}

fn encode_loaded<T, E, C: Codec<T>>(
    codec: &C,
    loaded: Result<Option<T>, E>,
) -> Result<Option<Bytes>, TypedError<E>> {
    match loaded {
        Ok(Some(v)) => codec.encode(&v).map(Some).map_err(TypedError::Codec),
        Ok(None) => Ok(None),
        Err(e) => Err(TypedError::Load(e)),
    }
}
