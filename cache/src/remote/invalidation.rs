//! Invalidation between app instances: Redis's server-assisted client-side caching
//! (`CLIENT TRACKING ON BCAST PREFIX <prefix> NOLOOP`) on each node's RESP3 connection.
//!
//! With tracking in broadcast mode, every write to a key under the prefix, by any client (or an
//! expiry, an eviction, a `FLUSHDB`), sends an `invalidate` push message to every tracking
//! connection of that server except the writer's own (`NOLOOP`: an instance invalidates its own
//! near cache itself). The push arrives on the same connection as the replies, after the reply
//! to any read that saw the old value, so a read that raced a write is always followed by its
//! invalidation.

use redis::{PushInfo, PushKind, Value};

/// Where a tier delivers invalidations (implemented by the near cache of a
/// [`TieredCache`](super::TieredCache)). Called from the connection's reader task: must not
/// block.
pub(crate) trait Invalidate: Send + Sync + 'static {
    /// `key` (without the tier's prefix) was written or removed on some node.
    fn key(&self, key: &[u8]);
    /// Everything may have changed (a `FLUSHDB` / `FLUSHALL` on some node).
    fn all(&self);
    /// The invalidation channel of node `node` was lost: invalidations may be missed from now on.
    fn channel_lost(&self, node: usize);
    /// The channel of node `node` is back (a new connection with tracking on). Invalidations sent
    /// while it was lost were missed.
    fn channel_restored(&self, node: usize);
}

/// What a push message asks for.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Push<'a> {
    /// These keys (full Redis keys, prefix included) changed.
    Keys(Vec<&'a [u8]>),
    /// Everything changed.
    All,
    /// The connection closed.
    Disconnected,
    /// Not about invalidation.
    Other,
}

/// Decodes a push message. Unknown shapes are [`Push::All`] when they claim to be
/// invalidations (safe: a flush never serves stale data) and [`Push::Other`] otherwise.
pub(crate) fn classify(info: &PushInfo) -> Push<'_> {
    match info.kind {
        PushKind::Disconnection => Push::Disconnected,
        PushKind::Invalidate => match info.data.first() {
            Some(Value::Array(keys)) | Some(Value::Set(keys)) => {
                let mut out = Vec::with_capacity(keys.len());
                for k in keys {
                    match k {
                        Value::BulkString(b) => out.push(b.as_slice()),
                        Value::SimpleString(s) => out.push(s.as_bytes()),
                        _ => return Push::All,
                    }
                }
                Push::Keys(out)
            }
            _ => Push::All,
        },
        _ => Push::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_keys_flushes_and_garbage() {
        let keys = PushInfo {
            kind: PushKind::Invalidate,
            data: vec![Value::Array(vec![
                Value::BulkString(b"tk:a".to_vec()),
                Value::BulkString(b"tk:b".to_vec()),
            ])],
        };
        assert_eq!(classify(&keys), Push::Keys(vec![b"tk:a", b"tk:b"]));
        let flush = PushInfo {
            kind: PushKind::Invalidate,
            data: vec![Value::Nil],
        };
        assert_eq!(classify(&flush), Push::All);
        let garbage = PushInfo {
            kind: PushKind::Invalidate,
            data: vec![Value::Array(vec![Value::Int(3)])],
        };
        assert_eq!(classify(&garbage), Push::All, "unknown shapes flush");
        let empty = PushInfo {
            kind: PushKind::Invalidate,
            data: vec![],
        };
        assert_eq!(classify(&empty), Push::All);
        let msg = PushInfo {
            kind: PushKind::Message,
            data: vec![],
        };
        assert_eq!(classify(&msg), Push::Other);
        let gone = PushInfo {
            kind: PushKind::Disconnection,
            data: vec![],
        };
        assert_eq!(classify(&gone), Push::Disconnected);
    }
}
