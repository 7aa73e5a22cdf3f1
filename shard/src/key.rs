//! Sharding keys: integers route by value, bytes by hash, and hash tags co-locate related keys.

/// A key as a strategy sees it.
///
/// Integer keys keep their value, so `Modulo` over user ids is literally `user_id % n` and
/// `KeyRange` splits id ranges; byte keys (strings) are hashed by strategies that need a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ShardKey<'a> {
    /// An integer key such as a user id.
    Int(u64),
    /// A byte or string key such as `"user:42:cart"`.
    Bytes(&'a [u8]),
}

/// Types that can be used as sharding keys.
///
/// Unsigned integers map to [`ShardKey::Int`]; strings and byte slices to [`ShardKey::Bytes`].
///
/// # Examples
///
/// ```
/// use tierkit_shard::{AsShardKey, ShardKey};
///
/// assert_eq!(42u64.as_shard_key(), ShardKey::Int(42));
/// assert_eq!("user:42".as_shard_key(), ShardKey::Bytes(b"user:42"));
/// ```
pub trait AsShardKey {
    /// This value as a sharding key.
    fn as_shard_key(&self) -> ShardKey<'_>;
}

macro_rules! int_key {
    ($($t:ty),*) => {$(
        impl AsShardKey for $t {
            #[inline]
            fn as_shard_key(&self) -> ShardKey<'_> {
                ShardKey::Int(u64::from(*self))
            }
        }
    )*};
}
int_key!(u8, u16, u32, u64);

impl AsShardKey for usize {
    #[inline]
    fn as_shard_key(&self) -> ShardKey<'_> {
        // usize is at most 64 bits on every supported platform.
        ShardKey::Int(*self as u64)
    }
}

impl AsShardKey for str {
    #[inline]
    fn as_shard_key(&self) -> ShardKey<'_> {
        ShardKey::Bytes(self.as_bytes())
    }
}

impl AsShardKey for String {
    #[inline]
    fn as_shard_key(&self) -> ShardKey<'_> {
        ShardKey::Bytes(self.as_bytes())
    }
}

impl AsShardKey for [u8] {
    #[inline]
    fn as_shard_key(&self) -> ShardKey<'_> {
        ShardKey::Bytes(self)
    }
}

impl AsShardKey for Vec<u8> {
    #[inline]
    fn as_shard_key(&self) -> ShardKey<'_> {
        ShardKey::Bytes(self)
    }
}

impl<T: AsShardKey + ?Sized> AsShardKey for &T {
    #[inline]
    fn as_shard_key(&self) -> ShardKey<'_> {
        (**self).as_shard_key()
    }
}

impl AsShardKey for ShardKey<'_> {
    #[inline]
    fn as_shard_key(&self) -> ShardKey<'_> {
        *self
    }
}

/// The part of a key that decides its shard under Redis Cluster's hash-tag rule: if the key
/// contains `{`, and a `}` follows it with at least one byte between them, only the bytes between
/// the first `{` and the first `}` after it count. `{user:42}:cart` and `{user:42}:orders` both
/// route by `user:42`, so a user's rows live on one shard and can be joined there.
///
/// Integer keys have no tag and are returned unchanged. Applying the rule twice gives the same
/// result as applying it once.
///
/// # Examples
///
/// ```
/// use tierkit_shard::{ShardKey, hash_tag};
///
/// assert_eq!(hash_tag(ShardKey::Bytes(b"{user:42}:cart")), ShardKey::Bytes(b"user:42"));
/// assert_eq!(hash_tag(ShardKey::Bytes(b"no-tag")), ShardKey::Bytes(b"no-tag"));
/// assert_eq!(hash_tag(ShardKey::Bytes(b"{}empty")), ShardKey::Bytes(b"{}empty"));
/// ```
#[must_use]
pub fn hash_tag(key: ShardKey<'_>) -> ShardKey<'_> {
    match key {
        ShardKey::Int(_) => key,
        ShardKey::Bytes(bytes) => ShardKey::Bytes(tag_bytes(bytes)),
    }
}

pub(crate) fn tag_bytes(bytes: &[u8]) -> &[u8] {
    let Some(open) = bytes.iter().position(|&b| b == b'{') else {
        return bytes;
    };
    let rest = &bytes[open + 1..];
    match rest.iter().position(|&b| b == b'}') {
        Some(close) if close > 0 => &rest[..close],
        _ => bytes,
    }
}

/// How a [`ShardMap`](crate::ShardMap) derives the routing key from a key before any strategy
/// sees it, so related keys land on one shard.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Colocation {
    /// Redis Cluster's `{tag}` rule ([`hash_tag`]); the default.
    #[default]
    HashTag,
    /// Use the whole key.
    WholeKey,
}

impl Colocation {
    /// Applies the rule to `key`.
    #[inline]
    #[must_use]
    pub fn apply<'a>(&self, key: ShardKey<'a>) -> ShardKey<'a> {
        match self {
            Colocation::HashTag => hash_tag(key),
            Colocation::WholeKey => key,
        }
    }
}
