//! [`RemoteTierBuilder`]: the nodes, placement, timeouts and health rules of a [`RemoteTier`].

use std::sync::Arc;
use std::time::Duration;

use tierkit_consistent_hash::KeyHasher;

use super::invalidation::Invalidate;
use super::{RemoteError, RemoteResult, RemoteTier};

/// The validated settings shared by every part of the tier.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) nodes: Vec<(String, u32)>,
    pub(crate) vnodes: u32,
    pub(crate) hasher: KeyHasher,
    pub(crate) prefix: Vec<u8>,
    pub(crate) name: String,
    pub(crate) op_timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) probe_interval: Duration,
    pub(crate) rise: u32,
    pub(crate) fall: u32,
    pub(crate) fallback_ttl: Duration,
}

/// Builds a [`RemoteTier`]: Redis servers on a consistent-hash ring.
///
/// | setting | default | meaning |
/// |---|---|---|
/// | [`node`](Self::node) / [`weighted_node`](Self::weighted_node) | none (required) | `host:port` of a standalone Redis server, and its share of keys |
/// | [`vnodes`](Self::vnodes) | 160 | ring points per unit of weight |
/// | [`hash_secret`](Self::hash_secret) | [`KeyHasher::DEFAULT`] | SipHash key of the placement; every app instance must use the same |
/// | [`key_prefix`](Self::key_prefix) | `"tk:"` | prepended to every key stored in Redis (and the tracked prefix) |
/// | [`op_timeout`](Self::op_timeout) | 250 ms | a request or probe slower than this fails with [`RemoteError::Timeout`] |
/// | [`connect_timeout`](Self::connect_timeout) | 1 s | a connection attempt slower than this fails |
/// | [`probe_interval`](Self::probe_interval) | 500 ms | how often the background probe PINGs each node |
/// | [`rise`](Self::rise) / [`fall`](Self::fall) | 2 / 3 | passing probes that bring a down node back / consecutive failures that mark it down (as `tierkit-lb`'s health checks) |
/// | [`fallback_ttl`](Self::fallback_ttl) | 30 s | TTL cap of values written to a node that is not the key's own (failover) |
///
/// [`Duration::MAX`] means "no timeout" for the timeouts; zero is rejected.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use tierkit_cache::remote::RemoteTier;
///
/// let builder = RemoteTier::builder()
///     .node("127.0.0.1:26379")
///     .weighted_node("127.0.0.1:26380", 2)
///     .op_timeout(Duration::from_millis(100))
///     .rise(2)
///     .fall(3);
/// # let _ = builder;
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct RemoteTierBuilder {
    pub(crate) config: Config,
}

impl Default for RemoteTierBuilder {
    fn default() -> Self {
        Self {
            config: Config {
                nodes: Vec::new(),
                vnodes: 160,
                hasher: KeyHasher::DEFAULT,
                prefix: b"tk:".to_vec(),
                name: "tierkit".to_owned(),
                op_timeout: Duration::from_millis(250),
                connect_timeout: Duration::from_secs(1),
                probe_interval: Duration::from_millis(500),
                rise: 2,
                fall: 3,
                fallback_ttl: Duration::from_secs(30),
            },
        }
    }
}

impl RemoteTierBuilder {
    /// A builder with the defaults of the table above and no nodes.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a Redis server (`host:port`) of weight 1.
    pub fn node(self, addr: impl Into<String>) -> Self {
        self.weighted_node(addr, 1)
    }

    /// Adds a Redis server whose share of keys is proportional to `weight` (0 is rejected by
    /// the build).
    pub fn weighted_node(mut self, addr: impl Into<String>, weight: u32) -> Self {
        self.config.nodes.push((addr.into(), weight));
        self
    }

    /// Adds every `host:port` of a comma-separated list (the `TIERKIT_REDIS_NODES` format),
    /// each of weight 1; blank items are skipped.
    pub fn nodes_from_list(mut self, list: &str) -> Self {
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            self.config.nodes.push((item.to_owned(), 1));
        }
        self
    }

    /// Ring points per unit of weight (more points, better balance; 0 is rejected).
    pub fn vnodes(mut self, vnodes: u32) -> Self {
        self.config.vnodes = vnodes;
        self
    }

    /// The 128-bit SipHash secret of the placement. Every app instance sharing the tier must
    /// use the same one, or they would look for keys on different nodes.
    pub fn hash_secret(mut self, k0: u64, k1: u64) -> Self {
        self.config.hasher = KeyHasher::with_secret(k0, k1);
        self
    }

    /// The prefix of every key stored in Redis; near caches track writes under it.
    pub fn key_prefix(mut self, prefix: impl AsRef<[u8]>) -> Self {
        self.config.prefix = prefix.as_ref().to_vec();
        self
    }

    /// The name this app instance gives its connections (`CLIENT SETNAME`, seen in
    /// `CLIENT LIST`); letters, digits, `-`, `_`, `.` and `:` only.
    pub fn instance_name(mut self, name: impl Into<String>) -> Self {
        self.config.name = name.into();
        self
    }

    /// The longest a request or probe may take before it fails with
    /// [`RemoteError::Timeout`] and counts towards [`fall`](Self::fall).
    pub fn op_timeout(mut self, timeout: Duration) -> Self {
        self.config.op_timeout = timeout;
        self
    }

    /// The longest a connection attempt may take.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.config.connect_timeout = timeout;
        self
    }

    /// How often each node is probed (PING; reconnects and, for a down node, the rise count).
    /// A lost connection wakes its probe at once.
    pub fn probe_interval(mut self, interval: Duration) -> Self {
        self.config.probe_interval = interval;
        self
    }

    /// Passing probes in a row that bring a down node back (0 is rejected).
    pub fn rise(mut self, n: u32) -> Self {
        self.config.rise = n;
        self
    }

    /// Failed requests or probes in a row that mark a node down (0 is rejected).
    pub fn fall(mut self, n: u32) -> Self {
        self.config.fall = n;
        self
    }

    /// The TTL cap of a value written to a node other than its key's own, because that node
    /// was down. Such a copy outlives the outage on the other node; if the key's node goes down
    /// again within this time the copy may be read again, so this bounds how old it can be.
    pub fn fallback_ttl(mut self, ttl: Duration) -> Self {
        self.config.fallback_ttl = ttl;
        self
    }

    /// Checks every setting.
    ///
    /// # Errors
    /// [`RemoteError::InvalidConfig`] naming the setting: no nodes, a zero weight, a duplicate
    /// node, zero vnodes, zero rise or fall, a zero timeout, interval or fallback TTL, an
    /// instance name with spaces.
    pub fn validate(&self) -> RemoteResult<()> {
        let c = &self.config;
        let bad = |name, reason: String| Err(RemoteError::InvalidConfig { name, reason });
        if c.nodes.is_empty() {
            return bad("node", "at least one node is required".into());
        }
        for (i, (addr, w)) in c.nodes.iter().enumerate() {
            if *w == 0 {
                return bad("weighted_node", format!("node {addr} has weight 0"));
            }
            if addr.is_empty() || addr.contains(char::is_whitespace) {
                return bad("node", format!("{addr:?} is not host:port"));
            }
            if c.nodes[..i].iter().any(|(a, _)| a == addr) {
                return bad("node", format!("node {addr} is listed twice"));
            }
        }
        if c.vnodes == 0 {
            return bad("vnodes", "must be at least 1".into());
        }
        if c.rise == 0 || c.fall == 0 {
            return bad("rise/fall", "must be at least 1".into());
        }
        for (name, d) in [
            ("op_timeout", c.op_timeout),
            ("connect_timeout", c.connect_timeout),
            ("probe_interval", c.probe_interval),
            ("fallback_ttl", c.fallback_ttl),
        ] {
            if d.is_zero() {
                return bad(name, "must be greater than zero".into());
            }
        }
        if c.probe_interval == Duration::MAX {
            return bad("probe_interval", "must be finite".into());
        }
        if c.name.is_empty()
            || !c
                .name
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || "-_.:".contains(ch))
        {
            return bad(
                "instance_name",
                format!("{:?} is not a valid client name", c.name),
            );
        }
        Ok(())
    }

    /// Connects to every node (concurrently) and starts one background probe per node. A node
    /// that cannot be reached starts down and is probed like any down node; the build itself
    /// only fails on bad settings.
    ///
    /// # Errors
    /// Every error of [`validate`](Self::validate), and [`RemoteError::InvalidConfig`] for an
    /// address the client cannot parse.
    ///
    /// # Panics
    /// Outside a tokio runtime (the probes are spawned tasks).
    pub async fn connect(self) -> RemoteResult<RemoteTier> {
        RemoteTier::connect(self.config, None).await
    }

    /// As [`connect`](Self::connect), with invalidations delivered to `sink`.
    pub(crate) async fn connect_with(self, sink: Arc<dyn Invalidate>) -> RemoteResult<RemoteTier> {
        RemoteTier::connect(self.config, Some(sink)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err_name(b: RemoteTierBuilder) -> &'static str {
        match b.validate() {
            Err(RemoteError::InvalidConfig { name, .. }) => name,
            other => panic!("expected InvalidConfig, got {other:?}"),
        }
    }

    #[test]
    fn rejects_bad_settings_with_their_name() {
        let ok = RemoteTierBuilder::new().node("127.0.0.1:1");
        assert!(ok.clone().validate().is_ok());
        assert_eq!(err_name(RemoteTierBuilder::new()), "node");
        assert_eq!(
            err_name(ok.clone().weighted_node("b:1", 0)),
            "weighted_node"
        );
        assert_eq!(err_name(ok.clone().node("127.0.0.1:1")), "node");
        assert_eq!(err_name(ok.clone().node("a b:1")), "node");
        assert_eq!(err_name(ok.clone().vnodes(0)), "vnodes");
        assert_eq!(err_name(ok.clone().rise(0)), "rise/fall");
        assert_eq!(err_name(ok.clone().fall(0)), "rise/fall");
        assert_eq!(
            err_name(ok.clone().op_timeout(Duration::ZERO)),
            "op_timeout"
        );
        assert_eq!(
            err_name(ok.clone().probe_interval(Duration::MAX)),
            "probe_interval"
        );
        assert_eq!(
            err_name(ok.clone().fallback_ttl(Duration::ZERO)),
            "fallback_ttl"
        );
        assert_eq!(err_name(ok.clone().instance_name("a b")), "instance_name");
        assert!(
            ok.op_timeout(Duration::MAX).validate().is_ok(),
            "MAX = no timeout"
        );
    }

    #[test]
    fn node_lists_skip_blanks() {
        let b = RemoteTierBuilder::new().nodes_from_list(" a:1, ,b:2,");
        assert_eq!(
            b.config.nodes,
            [("a:1".to_owned(), 1), ("b:2".to_owned(), 1)]
        );
    }
}
