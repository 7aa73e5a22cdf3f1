//! One Redis server of the tier: its connection, health and background probe.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, Cmd, FromRedisValue, PushInfo, Value};
use tokio::sync::Notify;

use super::builder::Config;
use super::health::Health;
use super::invalidation::{Invalidate, Push, classify};
use super::tier::Shared;
use super::{RemoteError, RemoteResult};

/// A node's connection and state. Requests clone the current connection (a handle to its
/// multiplexing task) out of an `ArcSwapOption`; they never connect themselves: a missing or
/// broken connection wakes the probe, which reconnects.
pub(crate) struct Node {
    pub(crate) addr: String,
    pub(crate) weight: u32,
    client: Client,
    conn: ArcSwapOption<MultiplexedConnection>,
    /// Incremented per connection attempt; push messages of older connections are ignored.
    generation: AtomicU64,
    pub(crate) health: Health,
    /// Whether the current connection tracks keys for the near cache.
    channel_live: AtomicBool,
    pub(crate) wake: Arc<Notify>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("addr", &self.addr)
            .field("up", &self.health.is_up())
            .field("connected", &self.is_connected())
            .finish_non_exhaustive()
    }
}

/// `d` as a tokio timeout, `None` for [`Duration::MAX`] ("no timeout").
pub(crate) fn finite(d: Duration) -> Option<Duration> {
    (d != Duration::MAX).then_some(d)
}

/// Runs `fut` under `limit` (if any), turning an expiry into [`RemoteError::Timeout`].
pub(crate) async fn within<T>(
    node: &str,
    limit: Duration,
    fut: impl Future<Output = redis::RedisResult<T>>,
) -> RemoteResult<T> {
    let res = match finite(limit) {
        None => fut.await,
        Some(d) => match tokio::time::timeout(d, fut).await {
            Ok(r) => r,
            Err(_) => {
                return Err(RemoteError::Timeout {
                    node: node.to_owned(),
                    after: d,
                });
            }
        },
    };
    res.map_err(|e| RemoteError::from_redis(node, &e))
}

impl Node {
    pub(crate) fn new(
        addr: &str,
        weight: u32,
        config: &Config,
        tracking: bool,
    ) -> RemoteResult<Self> {
        let url = if tracking {
            format!("redis://{addr}/?protocol=resp3")
        } else {
            format!("redis://{addr}/")
        };
        let client = Client::open(url.as_str()).map_err(|e| RemoteError::InvalidConfig {
            name: "node",
            reason: format!("{addr}: {e}"),
        })?;
        Ok(Self {
            addr: addr.to_owned(),
            weight,
            client,
            conn: ArcSwapOption::empty(),
            generation: AtomicU64::new(0),
            health: Health::new(config.rise, config.fall, false),
            channel_live: AtomicBool::new(false),
            wake: Arc::new(Notify::new()),
        })
    }

    pub(crate) fn is_connected(&self) -> bool {
        self.conn.load().is_some()
    }

    /// Whether invalidations from this node currently reach the near cache.
    #[inline]
    pub(crate) fn channel_live(&self) -> bool {
        self.channel_live.load(Ordering::Acquire)
    }

    /// The current connection and its generation, if any.
    fn current(&self) -> Option<(Arc<MultiplexedConnection>, u64)> {
        let c = self.conn.load_full()?;
        Some((c, self.generation.load(Ordering::Acquire)))
    }

    /// Drops the connection of generation `generation` (if still current): the channel is lost
    /// and the probe is woken to reconnect.
    pub(crate) fn drop_conn(&self, generation: u64, sink: Option<&dyn Invalidate>, index: usize) {
        if self.generation.load(Ordering::Acquire) != generation {
            return;
        }
        self.conn.store(None);
        if self.channel_live.swap(false, Ordering::AcqRel) {
            tracing::warn!(node = %self.addr, "invalidation channel lost");
            if let Some(s) = sink {
                s.channel_lost(index);
            }
        }
        self.wake.notify_one();
    }

    /// Sends one command on the current connection, with the request timeout. Health is
    /// updated by the caller ([`Shared::exec`]).
    pub(crate) async fn send<T: FromRedisValue>(
        &self,
        cmd: &Cmd,
        timeout: Duration,
    ) -> (u64, RemoteResult<T>) {
        let Some((conn, generation)) = self.current() else {
            self.wake.notify_one();
            return (
                0,
                Err(RemoteError::NodeDown {
                    node: self.addr.clone(),
                }),
            );
        };
        let mut conn = MultiplexedConnection::clone(&conn);
        let res = within(&self.addr, timeout, conn.send_packed_command(cmd)).await;
        let res = res.and_then(|v: Value| {
            T::from_redis_value(v).map_err(|e| RemoteError::Protocol {
                node: self.addr.clone(),
                message: e.to_string(),
            })
        });
        (generation, res)
    }

    /// Opens a new connection (with tracking if the tier has a near cache), names it, and
    /// installs it. The channel is reported restored before any request can use the new
    /// connection.
    pub(crate) async fn connect(
        &self,
        index: usize,
        shared: &Weak<Shared>,
        config: &Config,
        sink: Option<&Arc<dyn Invalidate>>,
    ) -> RemoteResult<()> {
        let generation = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        let mut cfg = AsyncConnectionConfig::new()
            .set_connection_timeout(finite(config.connect_timeout))
            .set_response_timeout(None);
        if sink.is_some() {
            let weak = Weak::clone(shared);
            cfg = cfg.set_push_sender(move |info: PushInfo| {
                if let Some(shared) = weak.upgrade() {
                    shared.on_push(index, generation, &info);
                }
                Ok::<(), ()>(())
            });
        }
        let mut conn = within(
            &self.addr,
            config.connect_timeout,
            self.client
                .get_multiplexed_async_connection_with_config(&cfg),
        )
        .await?;
        let role = if sink.is_some() { "near" } else { "tier" };
        let name = format!("tk:{}:{role}", config.name);
        let setname = redis::cmd("CLIENT").arg("SETNAME").arg(name).clone();
        let _: () = self.setup(&mut conn, &setname, config).await?;
        if let Some(sink) = sink {
            let mut tracking = redis::cmd("CLIENT");
            tracking
                .arg("TRACKING")
                .arg("ON")
                .arg("BCAST")
                .arg("PREFIX")
                .arg(&config.prefix[..])
                .arg("NOLOOP");
            let _: () = self.setup(&mut conn, &tracking, config).await?;
            if self.generation.load(Ordering::Acquire) != generation {
                return Ok(()); // superseded by a newer attempt
            }
            self.channel_live.store(true, Ordering::Release);
            // Invalidations sent while there was no channel were missed.
            sink.channel_restored(index);
        }
        if self.generation.load(Ordering::Acquire) == generation {
            self.conn.store(Some(Arc::new(conn)));
        }
        Ok(())
    }

    async fn setup(
        &self,
        conn: &mut MultiplexedConnection,
        cmd: &Cmd,
        config: &Config,
    ) -> RemoteResult<()> {
        let v: Value = within(&self.addr, config.op_timeout, conn.send_packed_command(cmd)).await?;
        match v {
            Value::Okay | Value::SimpleString(_) => Ok(()),
            other => Err(RemoteError::Protocol {
                node: self.addr.clone(),
                message: format!("unexpected reply {other:?}"),
            }),
        }
    }

    /// The generation of the current connection (for [`drop_conn`](Self::drop_conn)).
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }
}

impl Shared {
    /// A push message from node `index`'s connection of generation `generation`.
    pub(crate) fn on_push(&self, index: usize, generation: u64, info: &PushInfo) {
        let Some(node) = self.nodes.get(index) else {
            return;
        };
        let Some(sink) = self.sink.as_deref() else {
            return;
        };
        match classify(info) {
            Push::Keys(keys) => {
                for k in keys {
                    match k.strip_prefix(&self.config.prefix[..]) {
                        Some(k) => sink.key(k),
                        None => sink.all(),
                    }
                }
            }
            Push::All => sink.all(),
            Push::Disconnected => node.drop_conn(generation, Some(sink), index),
            Push::Other => {}
        }
    }

    /// One probe of node `index`: reconnect if needed, PING, apply rise/fall; a node that
    /// passes `rise` probes in a row is flushed before it is marked up.
    pub(crate) async fn probe(self: &Arc<Self>, index: usize) {
        let Some(node) = self.nodes.get(index) else {
            return;
        };
        let weak = Arc::downgrade(self);
        let mut ok = node.is_connected()
            || node
                .connect(index, &weak, &self.config, self.sink.as_ref())
                .await
                .is_ok();
        if ok {
            let (generation, pong) = node
                .send::<String>(&redis::cmd("PING"), self.config.op_timeout)
                .await;
            ok = pong.is_ok();
            if !ok {
                node.drop_conn(generation, self.sink.as_deref(), index);
            }
        }
        if node.health.is_up() {
            if ok {
                node.health.success();
            } else if node.health.failure() {
                self.went_down(index);
            }
        } else if !ok {
            node.health.probe_failed();
        } else if node.health.probe_passed() {
            self.bring_back(index).await;
        }
    }

    /// Node `index` passed `rise` probes: flush what it held from before it went down, then
    /// route its keys back to it.
    async fn bring_back(&self, index: usize) {
        let node = &self.nodes[index];
        let flush = redis::cmd("FLUSHDB").arg("ASYNC").clone();
        let (_, res) = node.send::<()>(&flush, self.config.op_timeout).await;
        match res {
            Ok(()) => {
                node.health.mark_up();
                self.stats.returns.fetch_add(1, Ordering::Relaxed);
                tracing::info!(node = %node.addr, "cache node back up (flushed)");
            }
            Err(e) => {
                node.health.probe_failed();
                tracing::warn!(node = %node.addr, error = %e, "flush of a returning node failed");
            }
        }
    }

    /// Node `index` was just marked down.
    pub(crate) fn went_down(&self, index: usize) {
        let node = &self.nodes[index];
        self.stats.downs.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(node = %node.addr, "cache node marked down; its keys go to the next ring node");
        // Its invalidations can no longer be trusted; the probe reconnects.
        node.drop_conn(node.generation(), self.sink.as_deref(), index);
    }
}

/// The probe loop of node `index`: every interval, or at once when woken.
pub(crate) async fn probe_loop(
    weak: Weak<Shared>,
    index: usize,
    wake: Arc<Notify>,
    every: Duration,
) {
    loop {
        {
            let Some(shared) = weak.upgrade() else { return };
            shared.probe(index).await;
        }
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = wake.notified() => {}
        }
    }
}
