//! [`Node`]: a PostgreSQL server as a replica set member, over a small pool of connections.

use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use tokio::sync::{Mutex, OwnedMutexGuard};
use tokio_postgres::{Client, NoTls};

use crate::Result;

/// Connections a [`Node`] keeps for requests (the probe has one more of its own).
const DEFAULT_POOL: usize = 4;

#[derive(Default)]
pub(crate) struct Slot {
    client: Option<Client>,
    /// A transaction was left open (a guard dropped without commit): roll back before reuse.
    dirty: bool,
}

/// A PostgreSQL server: its connection string and a small pool of connections opened on first
/// use (and reopened after a failure), plus one for the probe so probes never queue behind
/// requests. Cheap to create; needs a tokio runtime to connect.
pub struct Node {
    conninfo: String,
    slots: Vec<Arc<Mutex<Slot>>>,
    probe: Arc<Mutex<Slot>>,
    next: AtomicUsize,
    /// `wal_block_size` and `wal_segment_size` (0 until the first connection reads them).
    geometry: OnceLock<(u64, u64)>,
    connects: AtomicU64,
}

impl Node {
    /// A node reached with `conninfo` (`"host=127.0.0.1 port=5432 user=app dbname=app"` or a
    /// `postgresql://` URL), with a pool of 4 connections.
    #[must_use]
    pub fn new(conninfo: impl Into<String>) -> Self {
        Self::with_pool(conninfo, DEFAULT_POOL)
    }

    /// A node with a pool of `size` connections (at least 1).
    #[must_use]
    pub fn with_pool(conninfo: impl Into<String>, size: usize) -> Self {
        Node {
            conninfo: conninfo.into(),
            slots: (0..size.max(1)).map(|_| Arc::default()).collect(),
            probe: Arc::default(),
            next: AtomicUsize::new(0),
            geometry: OnceLock::new(),
            connects: AtomicU64::new(0),
        }
    }

    /// The connection string.
    #[must_use]
    pub fn conninfo(&self) -> &str {
        &self.conninfo
    }

    /// Connections opened so far (reconnects included).
    #[must_use]
    pub fn connects(&self) -> u64 {
        self.connects.load(Ordering::Relaxed)
    }

    /// A connection from the pool (a free one if any, else the next in turn once it is free).
    ///
    /// # Errors
    /// [`Error::Engine`](crate::Error::Engine) if connecting fails.
    pub async fn conn(&self) -> Result<Conn> {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let n = self.slots.len();
        let free = (0..n).find_map(|k| self.slots[(start + k) % n].clone().try_lock_owned().ok());
        let guard = match free {
            Some(g) => g,
            None => self.slots[start % n].clone().lock_owned().await,
        };
        self.ready(guard).await
    }

    /// The probe's own connection.
    pub(crate) async fn probe_conn(&self) -> Result<Conn> {
        let guard = self.probe.clone().lock_owned().await;
        self.ready(guard).await
    }

    async fn ready(&self, mut guard: OwnedMutexGuard<Slot>) -> Result<Conn> {
        if guard.client.as_ref().is_none_or(Client::is_closed) {
            guard.client = None;
            guard.dirty = false;
            let (client, connection) = tokio_postgres::connect(&self.conninfo, NoTls).await?;
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::debug!(error = %e, "postgres connection closed");
                }
            });
            self.connects.fetch_add(1, Ordering::Relaxed);
            if self.geometry.get().is_none() {
                let row = client
                    .query_one(
                        "SELECT current_setting('wal_block_size')::int8, \
                         (SELECT setting::int8 FROM pg_settings WHERE name = 'wal_segment_size')",
                        &[],
                    )
                    .await?;
                let (block, segment): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
                let _ = self.geometry.set((
                    u64::try_from(block).unwrap_or(0),
                    u64::try_from(segment).unwrap_or(0),
                ));
            }
            guard.client = Some(client);
        }
        if guard.dirty {
            if let Some(c) = &guard.client {
                c.batch_execute("ROLLBACK").await?;
            }
            guard.dirty = false;
        }
        Ok(Conn { guard })
    }

    /// An LSN as a position ([`canonical_lsn`](super::canonical_lsn) with this server's WAL
    /// geometry).
    pub(crate) fn position(&self, lsn: tokio_postgres::types::PgLsn) -> crate::Position {
        let (block, segment) = self.geometry.get().copied().unwrap_or((8192, 16 << 20));
        crate::Position(super::canonical_lsn(u64::from(lsn), block, segment))
    }
}

/// A pooled connection, held until dropped. Derefs to [`tokio_postgres::Client`].
pub struct Conn {
    guard: OwnedMutexGuard<Slot>,
}

impl Conn {
    /// Marks the connection as holding an open transaction: the next user rolls it back.
    pub(crate) fn set_dirty(&mut self, dirty: bool) {
        self.guard.dirty = dirty;
    }

    /// Whether the connection holds an open transaction.
    pub(crate) fn is_dirty(&self) -> bool {
        self.guard.dirty
    }

    /// Drops the connection (it is reopened on next use).
    pub(crate) fn discard(&mut self) {
        self.guard.client = None;
        self.guard.dirty = false;
    }
}

impl Deref for Conn {
    type Target = Client;
    fn deref(&self) -> &Client {
        // Invariant: `ready` returns a Conn only with a client in the slot, and only
        // `discard` (which consumes the guard's use) takes it out.
        self.guard
            .client
            .as_ref()
            .expect("invariant: a Conn always holds a client")
    }
}

impl DerefMut for Conn {
    fn deref_mut(&mut self) -> &mut Client {
        self.guard
            .client
            .as_mut()
            .expect("invariant: a Conn always holds a client")
    }
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("dirty", &self.guard.dirty)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("conninfo", &self.conninfo)
            .field("pool", &self.slots.len())
            .finish_non_exhaustive()
    }
}
