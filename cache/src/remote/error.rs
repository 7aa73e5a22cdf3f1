//! The remote tier's error type.

use std::time::Duration;

use crate::CacheError;

/// Result alias of the remote tier.
pub type RemoteResult<T, E = RemoteError> = std::result::Result<T, E>;

/// Why a remote-tier operation failed, or why a tier could not be built.
///
/// The near-cache front end ([`TieredCache`](super::TieredCache)) never returns these from a
/// read: a remote error is counted and the read falls through to the loader. They reach callers
/// of [`RemoteTier`](super::RemoteTier) directly, and of the write and delete methods.
///
/// This is the remote tier's own enum rather than variants of [`CacheError`] because that type
/// is `Copy`-like plain data (`Clone + Eq`) describing configuration mistakes; the node and
/// message strings here keep this one `Clone + Eq` too, so it can be shared between waiters of a
/// single-flight load.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RemoteError {
    /// The node the key maps to is marked down (after `fall` consecutive failures) or has no
    /// connection at the moment, and no other node of the ring is up.
    #[error("cache node {node} is down")]
    NodeDown {
        /// The node's address, as given to the builder.
        node: String,
    },
    /// No node of the ring is up.
    #[error("no cache node is up ({nodes} configured)")]
    NoNodeUp {
        /// How many nodes the ring holds.
        nodes: usize,
    },
    /// The node did not answer within the operation timeout.
    #[error("cache node {node} did not answer within {after:?}")]
    Timeout {
        /// The node's address.
        node: String,
        /// The timeout that expired.
        after: Duration,
    },
    /// The connection to the node failed (refused, reset, closed).
    #[error("cache node {node}: connection failed: {message}")]
    Connection {
        /// The node's address.
        node: String,
        /// The client library's description.
        message: String,
    },
    /// The node answered something the tier did not expect (an error reply, a wrong type).
    #[error("cache node {node}: protocol error: {message}")]
    Protocol {
        /// The node's address.
        node: String,
        /// The server's or the client library's description.
        message: String,
    },
    /// A value could not be encoded or decoded by a [`Codec`](super::Codec).
    #[error("codec error: {message}")]
    Codec {
        /// The codec's description.
        message: String,
    },
    /// A builder setting was outside its documented range.
    #[error("invalid {name}: {reason}")]
    InvalidConfig {
        /// The setting's name, as in the builder method.
        name: &'static str,
        /// What was wrong with it (including the offending value).
        reason: String,
    },
    /// The near cache could not be built.
    #[error(transparent)]
    Cache(#[from] CacheError),
}

impl RemoteError {
    /// Whether this error says something about the node's health (a timeout or a failed
    /// connection), as opposed to the data or the configuration. Only these count towards
    /// marking a node down.
    #[must_use]
    pub fn is_node_failure(&self) -> bool {
        matches!(
            self,
            Self::Timeout { .. } | Self::Connection { .. } | Self::NodeDown { .. }
        )
    }

    /// Classifies a client error from `node`.
    pub(crate) fn from_redis(node: &str, e: &redis::RedisError) -> Self {
        let node = node.to_owned();
        if e.is_timeout() {
            // The client's own timeouts (connect) carry no duration we know here.
            return Self::Timeout {
                node,
                after: Duration::ZERO,
            };
        }
        if e.is_io_error()
            || e.is_connection_dropped()
            || e.is_connection_refusal()
            || e.is_unrecoverable_error()
        {
            return Self::Connection {
                node,
                message: e.to_string(),
            };
        }
        Self::Protocol {
            node,
            message: e.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_transport_failures_count_against_a_node() {
        let t = RemoteError::Timeout {
            node: "a".into(),
            after: Duration::from_millis(5),
        };
        assert!(t.is_node_failure());
        let p = RemoteError::Protocol {
            node: "a".into(),
            message: "WRONGTYPE".into(),
        };
        assert!(!p.is_node_failure());
        assert_eq!(
            t.to_string(),
            "cache node a did not answer within 5ms",
            "lowercase, no final period"
        );
    }
}
