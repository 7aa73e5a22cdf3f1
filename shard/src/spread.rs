//! Spreading one hot key's reads over several shards.

use tierkit_consistent_hash::KeyHasher;

use crate::{AsShardKey, Route, ShardKey, Snapshot};

/// The integer sub-key under which copy `i` (1-based) of a spread key is stored and routed.
///
/// A key too hot for one shard even on a dedicated machine can be stored `replicas` times:
/// copy 0 under the key itself, copies `1..replicas` under these derived integer keys, which land
/// on (pseudo-random) other shards. Reads pick any copy; writes update every copy. Derived
/// deterministically (keyed SipHash of the key's bytes and `i`), so every process agrees.
///
/// # Examples
///
/// ```
/// use tierkit_shard::{ShardKey, replica_key};
///
/// let a = replica_key(ShardKey::Bytes(b"user:42"), 1);
/// assert_eq!(a, replica_key(ShardKey::Bytes(b"user:42"), 1));
/// assert_ne!(a, replica_key(ShardKey::Bytes(b"user:42"), 2));
/// ```
#[must_use]
pub fn replica_key(key: ShardKey<'_>, i: u32) -> u64 {
    let mut bytes = [0u8; 13];
    let hasher = KeyHasher::DEFAULT;
    let base = match key {
        ShardKey::Int(v) => hasher.hash(&v),
        ShardKey::Bytes(b) => hasher.hash(b),
    };
    bytes[..8].copy_from_slice(&base.to_le_bytes());
    bytes[8..12].copy_from_slice(&i.to_le_bytes());
    bytes[12] = b'#';
    hasher.hash(&bytes)
}

impl<S> Snapshot<S> {
    /// The route of copy `pick % replicas` of `key` for a read, with the sub-key it is stored
    /// under (`None` for copy 0, the key itself). Spread reads by varying `pick` (a request
    /// counter, a random number).
    pub fn route_spread_read<K: AsShardKey + ?Sized>(
        &self,
        key: &K,
        replicas: u32,
        pick: u32,
    ) -> (Option<u64>, Route) {
        let i = pick % replicas.max(1);
        if i == 0 {
            (None, self.route(key))
        } else {
            let sub = replica_key(self.colocate(key.as_shard_key()), i);
            (Some(sub), self.route(&sub))
        }
    }

    /// The routes of every copy of a spread key, for a write (update them all).
    pub fn route_spread_writes<'a, K: AsShardKey + ?Sized>(
        &'a self,
        key: &'a K,
        replicas: u32,
    ) -> impl Iterator<Item = (Option<u64>, Route)> + 'a {
        (0..replicas.max(1)).map(move |i| self.route_spread_read(key, replicas, i))
    }
}
