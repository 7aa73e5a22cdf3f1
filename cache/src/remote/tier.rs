//! [`RemoteTier`]: get / set / delete / multi-get over Redis servers placed on a ring, with
//! failover.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use redis::Cmd;
use tierkit_consistent_hash::{HashRing, Placement};
use tokio::task::JoinHandle;

use super::builder::Config;
use super::invalidation::Invalidate;
use super::join::join_all;
use super::node::{Node, probe_loop};
use super::stats::{NodeStatus, RemoteStats};
use super::{RemoteError, RemoteResult, RemoteTierBuilder};

/// Keys per `MGET` in [`RemoteTier::get_many`]; larger batches send several, pipelined.
const MGET_CHUNK: usize = 256;

/// A TTL at or above this many milliseconds is stored without expiry (Redis rejects expiry
/// times that overflow its clock).
const MAX_PX: u128 = 1 << 60;

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) failovers: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) timeouts: AtomicU64,
    pub(crate) downs: AtomicU64,
    pub(crate) returns: AtomicU64,
}

/// What the handles, probes and push handlers share.
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) nodes: Vec<Node>,
    ring: HashRing<String>,
    pub(crate) sink: Option<Arc<dyn Invalidate>>,
    pub(crate) stats: Counters,
    probes: parking_lot::Mutex<Vec<JoinHandle<()>>>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        for p in self.probes.get_mut().drain(..) {
            p.abort();
        }
    }
}

/// A distributed cache tier: standalone Redis servers placed on a
/// [`HashRing`] (keyed SipHash, weights, virtual nodes), with per-node multiplexed
/// connections (concurrent requests to a node are pipelined on one connection), timeouts and
/// failover.
///
/// # Failover
///
/// A node is marked down after [`fall`](RemoteTierBuilder::fall) consecutive failed requests
/// or probes (timeouts, lost connections; error *replies* do not count), and its keys go to the
/// next node clockwise on the ring, so the other nodes' keys stay where they are. A background
/// probe PINGs every node each [`probe_interval`](RemoteTierBuilder::probe_interval); a down
/// node that passes [`rise`](RemoteTierBuilder::rise) probes in a row is **flushed**
/// (`FLUSHDB ASYNC`) and then receives its keys again, so it never serves a value written
/// before it went down (see the module docs for why a flush). Values written to a stand-in
/// node during the outage carry a TTL of at most
/// [`fallback_ttl`](RemoteTierBuilder::fallback_ttl).
///
/// The tier owns the Redis databases it is given: the flush empties the whole database.
///
/// # Examples
///
/// ```no_run
/// use std::time::Duration;
/// use bytes::Bytes;
/// use tierkit_cache::remote::RemoteTier;
///
/// # async fn demo() -> Result<(), tierkit_cache::remote::RemoteError> {
/// let tier = RemoteTier::builder()
///     .nodes_from_list("127.0.0.1:26379,127.0.0.1:26380,127.0.0.1:26381")
///     .connect()
///     .await?;
/// tier.set(b"user:42", Bytes::from_static(b"alice"), Duration::from_secs(60)).await?;
/// assert_eq!(tier.get(b"user:42").await?.as_deref(), Some(&b"alice"[..]));
/// let both = tier.get_many(&[&b"user:42"[..], b"user:43"]).await;
/// assert_eq!(both[1], Ok(None));
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RemoteTier {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for RemoteTier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteTier")
            .field("nodes", &self.shared.nodes)
            .finish_non_exhaustive()
    }
}

impl RemoteTier {
    /// A builder with no nodes; see [`RemoteTierBuilder`].
    pub fn builder() -> RemoteTierBuilder {
        RemoteTierBuilder::new()
    }

    pub(crate) async fn connect(
        config: Config,
        sink: Option<Arc<dyn Invalidate>>,
    ) -> RemoteResult<Self> {
        RemoteTierBuilder {
            config: config.clone(),
        }
        .validate()?;
        let mut ring = HashRing::<String>::builder()
            .vnodes(config.vnodes)
            .hasher(config.hasher);
        for (addr, w) in &config.nodes {
            ring = ring.weighted_node(addr.clone(), *w);
        }
        let ring = ring.build().map_err(|e| RemoteError::InvalidConfig {
            name: "node",
            reason: e.to_string(),
        })?;
        // Node `i` of the tier is node `i` of the ring.
        let nodes = ring
            .nodes()
            .iter()
            .map(|addr| {
                let w = config
                    .nodes
                    .iter()
                    .find(|(a, _)| a == addr)
                    .map_or(1, |(_, w)| *w);
                Node::new(addr, w, &config, sink.is_some())
            })
            .collect::<RemoteResult<Vec<_>>>()?;
        let shared = Arc::new(Shared {
            config,
            nodes,
            ring,
            sink,
            stats: Counters::default(),
            probes: parking_lot::Mutex::new(Vec::new()),
        });
        let weak = Arc::downgrade(&shared);
        // First connections, concurrently; a node that answers starts up without a flush (this
        // instance never routed around it).
        let connects = shared.nodes.iter().enumerate().map(|(i, n)| {
            let weak = weak.clone();
            let shared = &shared;
            async move {
                let ok = n
                    .connect(i, &weak, &shared.config, shared.sink.as_ref())
                    .await
                    .is_ok();
                if ok {
                    n.health.mark_up();
                } else {
                    tracing::warn!(node = %n.addr, "cache node unreachable at start; probing");
                }
            }
        });
        join_all(connects).await;
        let handles = shared
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| {
                tokio::spawn(probe_loop(
                    weak.clone(),
                    i,
                    Arc::clone(&n.wake),
                    shared.config.probe_interval,
                ))
            })
            .collect();
        *shared.probes.lock() = handles;
        Ok(Self { shared })
    }

    /// The key's own node (ignoring health), by index.
    fn primary(&self, hash: u64) -> Option<usize> {
        self.shared.ring.locate_index(hash)
    }

    /// The node serving `key` now: its own node if up, else the next up node clockwise.
    pub(crate) fn route(&self, key: &[u8]) -> RemoteResult<(usize, bool)> {
        let s = &*self.shared;
        let hash = s.ring.hasher().hash(key);
        let primary = self
            .primary(hash)
            .ok_or(RemoteError::NoNodeUp { nodes: 0 })?;
        if s.nodes[primary].health.is_up() {
            return Ok((primary, true));
        }
        let mut prefs = Vec::with_capacity(s.nodes.len());
        s.ring.preference_indices(hash, s.nodes.len(), &mut prefs);
        prefs
            .into_iter()
            .find(|&i| s.nodes[i].health.is_up())
            .map(|i| (i, false))
            .ok_or(RemoteError::NoNodeUp {
                nodes: s.nodes.len(),
            })
    }

    /// The address of the node `key` belongs to when every node is up.
    #[must_use]
    pub fn home_node(&self, key: impl AsRef<[u8]>) -> Option<&str> {
        let hash = self.shared.ring.hasher().hash(key.as_ref());
        self.primary(hash)
            .map(|i| self.shared.nodes[i].addr.as_str())
    }

    /// The address of the node serving `key` now (its home node, or a stand-in while that one
    /// is down); `None` if no node is up.
    #[must_use]
    pub fn serving_node(&self, key: impl AsRef<[u8]>) -> Option<&str> {
        self.route(key.as_ref())
            .ok()
            .map(|(i, _)| self.shared.nodes[i].addr.as_str())
    }

    fn redis_key(&self, key: &[u8]) -> Vec<u8> {
        let mut k = Vec::with_capacity(self.shared.config.prefix.len() + key.len());
        k.extend_from_slice(&self.shared.config.prefix);
        k.extend_from_slice(key);
        k
    }

    /// Runs `cmd` on node `index`, applying the health rules to the outcome.
    pub(crate) async fn exec<T: redis::FromRedisValue>(
        &self,
        index: usize,
        cmd: &Cmd,
    ) -> RemoteResult<T> {
        let s = &*self.shared;
        let node = &s.nodes[index];
        let (generation, res) = node.send::<T>(cmd, s.config.op_timeout).await;
        match &res {
            Ok(_) => node.health.success(),
            // No connection (being re-established): the probe, woken by `send`, decides.
            Err(RemoteError::NodeDown { .. }) => {
                s.stats.errors.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) if e.is_node_failure() => {
                s.stats.errors.fetch_add(1, Ordering::Relaxed);
                match e {
                    RemoteError::Timeout { .. } => {
                        s.stats.timeouts.fetch_add(1, Ordering::Relaxed);
                    }
                    RemoteError::Connection { .. } => {
                        node.drop_conn(generation, s.sink.as_deref(), index);
                    }
                    _ => {}
                }
                if node.health.failure() {
                    s.went_down(index);
                }
            }
            Err(_) => {
                s.stats.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        res
    }

    /// The value of `key`, or `None` if no node holds it.
    ///
    /// # Errors
    /// [`RemoteError::Timeout`], [`RemoteError::Connection`] or [`RemoteError::NodeDown`] from
    /// the serving node (counted towards marking it down), [`RemoteError::NoNodeUp`], and
    /// [`RemoteError::Protocol`] for an unexpected reply. A failed read is not retried on
    /// another node (a stand-in may hold an older copy).
    pub async fn get(&self, key: impl AsRef<[u8]>) -> RemoteResult<Option<Bytes>> {
        self.get_routed(key.as_ref()).await.1
    }

    /// As [`get`](Self::get), also returning the index of the node asked.
    pub(crate) async fn get_routed(
        &self,
        key: &[u8],
    ) -> (Option<usize>, RemoteResult<Option<Bytes>>) {
        let (index, _) = match self.route(key) {
            Ok(r) => r,
            Err(e) => return (None, Err(e)),
        };
        let cmd = redis::cmd("GET").arg(self.redis_key(key)).clone();
        (Some(index), self.exec(index, &cmd).await)
    }

    /// Stores `value` under `key` for `ttl` ([`Duration::MAX`] or anything past about 36
    /// million years: no expiry; below a millisecond: one millisecond; zero: the key is
    /// deleted, as an already expired value). If the serving node fails with a timeout or a
    /// lost connection, the value is written to the next up node of the ring instead (with the
    /// fallback TTL cap), so one failed node never fails a write.
    ///
    /// # Errors
    /// The last node's error when no node could take the write, [`RemoteError::NoNodeUp`], and
    /// [`RemoteError::Protocol`] for an error reply.
    pub async fn set(
        &self,
        key: impl AsRef<[u8]>,
        value: Bytes,
        ttl: Duration,
    ) -> RemoteResult<()> {
        self.set_routed(key.as_ref(), &value, ttl).await.map(|_| ())
    }

    /// As [`set`](Self::set), returning the index of the node that took the write.
    pub(crate) async fn set_routed(
        &self,
        key: &[u8],
        value: &Bytes,
        ttl: Duration,
    ) -> RemoteResult<usize> {
        let (mut index, mut home) = self.route(key)?;
        let rkey = self.redis_key(key);
        let mut tried = 0;
        loop {
            let ttl = if home {
                ttl
            } else {
                self.shared.stats.failovers.fetch_add(1, Ordering::Relaxed);
                ttl.min(self.shared.config.fallback_ttl)
            };
            let mut cmd = if ttl.is_zero() {
                redis::cmd("DEL").arg(&rkey).clone()
            } else {
                redis::cmd("SET").arg(&rkey).arg(&value[..]).clone()
            };
            let ms = ttl.as_millis().max(1);
            if !ttl.is_zero() && ms < MAX_PX {
                cmd.arg("PX").arg(u64::try_from(ms).unwrap_or(u64::MAX));
            }
            match self.exec::<redis::Value>(index, &cmd).await {
                Ok(_) => return Ok(index),
                Err(e) if e.is_node_failure() && tried + 1 < self.shared.nodes.len() => {
                    tried += 1;
                    match self.next_up(key, index) {
                        Some(next) => {
                            index = next;
                            home = false;
                        }
                        None => return Err(e),
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The first up node after `after` in `key`'s preference list.
    fn next_up(&self, key: &[u8], after: usize) -> Option<usize> {
        let s = &*self.shared;
        let mut prefs = Vec::with_capacity(s.nodes.len());
        s.ring
            .preference_indices(s.ring.hasher().hash(key), s.nodes.len(), &mut prefs);
        let pos = prefs.iter().position(|&i| i == after)?;
        prefs[pos + 1..]
            .iter()
            .copied()
            .find(|&i| s.nodes[i].health.is_up())
    }

    /// Removes `key` from its serving node. If that node fails, the delete is also sent to the
    /// next up node (which may hold a stand-in copy).
    ///
    /// # Errors
    /// As [`set`](Self::set).
    pub async fn delete(&self, key: impl AsRef<[u8]>) -> RemoteResult<()> {
        self.set_routed(key.as_ref(), &Bytes::new(), Duration::ZERO)
            .await
            .map(|_| ())
    }

    /// The values of `keys`, in order: one `MGET` per serving node (several, pipelined, for
    /// more than 256 keys), every node asked concurrently. Each key gets its own result, so one
    /// failed node fails only its keys.
    pub async fn get_many<K: AsRef<[u8]>>(&self, keys: &[K]) -> Vec<RemoteResult<Option<Bytes>>> {
        let n = self.shared.nodes.len();
        let mut out: Vec<RemoteResult<Option<Bytes>>> = (0..keys.len()).map(|_| Ok(None)).collect();
        let mut groups: Vec<Vec<usize>> = vec![Vec::new(); n];
        for (i, k) in keys.iter().enumerate() {
            match self.route(k.as_ref()) {
                Ok((node, _)) => groups[node].push(i),
                Err(e) => out[i] = Err(e),
            }
        }
        let batches = groups
            .iter()
            .enumerate()
            .flat_map(|(node, idx)| idx.chunks(MGET_CHUNK).map(move |chunk| (node, chunk)));
        let requests = batches.map(|(node, chunk)| {
            let mut cmd = redis::cmd("MGET");
            for &i in chunk {
                cmd.arg(self.redis_key(keys[i].as_ref()));
            }
            async move { (chunk, self.exec::<Vec<Option<Bytes>>>(node, &cmd).await) }
        });
        for (chunk, res) in join_all(requests).await {
            match res {
                Ok(values) if values.len() == chunk.len() => {
                    for (&i, v) in chunk.iter().zip(values) {
                        out[i] = Ok(v);
                    }
                }
                Ok(values) => {
                    let e = RemoteError::Protocol {
                        node: String::new(),
                        message: format!("MGET of {} keys answered {}", chunk.len(), values.len()),
                    };
                    for &i in chunk {
                        out[i] = Err(e.clone());
                    }
                }
                Err(e) => {
                    for &i in chunk {
                        out[i] = Err(e.clone());
                    }
                }
            }
        }
        out
    }

    /// Whether invalidations from the node serving `index` currently reach the near cache.
    pub(crate) fn channel_live(&self, index: usize) -> bool {
        self.shared.nodes.get(index).is_some_and(Node::channel_live)
    }

    /// Each node's address, weight and state.
    #[must_use]
    pub fn nodes(&self) -> Vec<NodeStatus> {
        self.shared
            .nodes
            .iter()
            .map(|n| NodeStatus {
                addr: n.addr.clone(),
                weight: n.weight,
                up: n.health.is_up(),
                connected: n.is_connected(),
                // Live and connected: the connection is stored after the near cache was
                // flushed of what it may have missed while the channel was down.
                tracking: n.channel_live() && n.is_connected(),
                times_down: n.health.downs(),
            })
            .collect()
    }

    /// Whether the node at `addr` is up (`None` if it is not a member).
    #[must_use]
    pub fn is_up(&self, addr: &str) -> Option<bool> {
        self.shared
            .nodes
            .iter()
            .find(|n| n.addr == addr)
            .map(|n| n.health.is_up())
    }

    /// Counters since the tier was built.
    #[must_use]
    pub fn stats(&self) -> RemoteStats {
        let c = &self.shared.stats;
        RemoteStats {
            failovers: c.failovers.load(Ordering::Relaxed),
            errors: c.errors.load(Ordering::Relaxed),
            timeouts: c.timeouts.load(Ordering::Relaxed),
            downs: c.downs.load(Ordering::Relaxed),
            returns: c.returns.load(Ordering::Relaxed),
        }
    }

    /// Probes node `addr` now (as the background probe does) and waits for the result; for
    /// tests and operators who do not want to wait for the next interval. Returns whether the
    /// node is up afterwards (`None` if not a member).
    pub async fn probe_now(&self, addr: &str) -> Option<bool> {
        let i = self.shared.nodes.iter().position(|n| n.addr == addr)?;
        self.shared.probe(i).await;
        Some(self.shared.nodes[i].health.is_up())
    }
}
