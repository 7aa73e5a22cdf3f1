//! [`Write`] and [`Read`]: a transaction on a routed node that reports the positions the
//! router needs: the token *after* `COMMIT`, the position a read actually served.

use std::ops::Deref;
use std::sync::Arc;

use tokio_postgres::Client;
use tokio_postgres::types::PgLsn;

use super::{Conn, Node};
use crate::{Position, Result, Route, SessionToken};

/// The position a node serves: `pg_last_wal_replay_lsn()` on a replica, the WAL insert
/// position on a primary (everything a snapshot there can see was inserted before it).
const SERVED: &str = "SELECT CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() \
                      ELSE pg_current_wal_insert_lsn() END";

/// A write transaction on the primary a [`Route`] chose. Derefs to the connection's
/// [`Client`]: run statements on it, then [`commit`](Write::commit), which returns the session
/// token. Dropped without commit, the transaction is rolled back before the connection is
/// used again.
pub struct Write<'a> {
    route: Route<'a, Node>,
    node: Arc<Node>,
    conn: Open,
}

impl<'a> Write<'a> {
    /// Opens a transaction (`BEGIN`) on the route's node.
    ///
    /// # Errors
    /// [`Error::Engine`](crate::Error::Engine) (the route counts a failure if the connection
    /// could not be used).
    pub async fn begin(route: Route<'a, Node>) -> Result<Write<'a>> {
        let node = route.handle();
        let mut conn = match node.conn().await {
            Ok(c) => c,
            Err(e) => {
                route.failure();
                return Err(e);
            }
        };
        if let Err(e) = conn.batch_execute("BEGIN").await {
            conn.discard();
            route.failure();
            return Err(e.into());
        }
        conn.set_dirty(true);
        Ok(Write {
            route,
            node,
            conn: Open(Some(conn)),
        })
    }

    /// The route (its node, epoch, ...).
    pub fn route(&self) -> &Route<'a, Node> {
        &self.route
    }

    /// Commits, then reads the primary's WAL insert position in a separate statement (after
    /// `COMMIT` returned, so the position is at or past the commit record) and returns the
    /// session token for read-your-writes.
    ///
    /// # Errors
    /// [`Error::Engine`](crate::Error::Engine): the commit failed (the write may or may not
    /// have happened if the connection broke), or the position could not be read (the write
    /// happened; no token).
    pub async fn commit(mut self) -> Result<SessionToken> {
        if let Err(e) = self.conn.get().batch_execute("COMMIT").await {
            return Err(self.fail(e));
        }
        self.conn.get().set_dirty(false);
        let lsn: PgLsn = match self
            .conn
            .get()
            .query_one("SELECT pg_current_wal_insert_lsn()", &[])
            .await
        {
            Ok(row) => match row.try_get(0) {
                Ok(lsn) => lsn,
                Err(e) => return Err(e.into()),
            },
            Err(e) => return Err(self.fail(e)),
        };
        let position = self.node.position(lsn);
        Ok(self.route.committed(position))
    }

    fn fail(mut self, e: tokio_postgres::Error) -> crate::Error {
        if self.conn.get().is_closed() {
            self.conn.get().discard();
            self.route.failure();
        }
        e.into()
    }
}

impl Deref for Write<'_> {
    type Target = Client;
    fn deref(&self) -> &Client {
        self.conn.client()
    }
}

impl std::fmt::Debug for Write<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Write")
            .field("route", &self.route)
            .finish_non_exhaustive()
    }
}

/// A read-only `REPEATABLE READ` transaction on the node a [`Route`] chose. Derefs to the
/// connection's [`Client`]: run queries on it, then [`finish`](Read::finish), which returns
/// the position the read served (read inside the same transaction).
pub struct Read<'a> {
    route: Route<'a, Node>,
    node: Arc<Node>,
    conn: Open,
}

impl<'a> Read<'a> {
    /// Opens `BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY` on the route's node.
    ///
    /// # Errors
    /// [`Error::Engine`](crate::Error::Engine).
    pub async fn begin(route: Route<'a, Node>) -> Result<Read<'a>> {
        let node = route.handle();
        let mut conn = match node.conn().await {
            Ok(c) => c,
            Err(e) => {
                route.failure();
                return Err(e);
            }
        };
        if let Err(e) = conn
            .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await
        {
            conn.discard();
            route.failure();
            return Err(e.into());
        }
        conn.set_dirty(true);
        Ok(Read {
            route,
            node,
            conn: Open(Some(conn)),
        })
    }

    /// The route (its node, fallback reason, ...).
    pub fn route(&self) -> &Route<'a, Node> {
        &self.route
    }

    /// Reads the position the transaction served, commits, and records it
    /// ([`Route::served`]): keep the largest a session has seen for
    /// [`Consistency::MonotonicReads`](crate::Consistency::MonotonicReads).
    ///
    /// The position is read after the transaction's snapshot was taken, so it is at or past
    /// what the snapshot shows: a later read at that position sees at least as much.
    ///
    /// # Errors
    /// [`Error::Engine`](crate::Error::Engine).
    pub async fn finish(mut self) -> Result<Position> {
        let lsn: PgLsn = match self.conn.get().query_one(SERVED, &[]).await {
            Ok(row) => row.try_get(0)?,
            Err(e) => return Err(self.fail(e)),
        };
        if let Err(e) = self.conn.get().batch_execute("COMMIT").await {
            return Err(self.fail(e));
        }
        self.conn.get().set_dirty(false);
        let position = self.node.position(lsn);
        Ok(self.route.served(position))
    }

    fn fail(mut self, e: tokio_postgres::Error) -> crate::Error {
        if self.conn.get().is_closed() {
            self.conn.get().discard();
            self.route.failure();
        }
        e.into()
    }
}

impl Deref for Read<'_> {
    type Target = Client;
    fn deref(&self) -> &Client {
        self.conn.client()
    }
}

impl std::fmt::Debug for Read<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Read")
            .field("route", &self.route)
            .finish_non_exhaustive()
    }
}

/// The connection of an open transaction. Dropped while the transaction is still open (the
/// guard was dropped, or its future cancelled), it rolls back at once on the runtime, so no
/// lock outlives the request; without a runtime, the next user of the connection rolls back.
struct Open(Option<Conn>);

impl Open {
    fn get(&mut self) -> &mut Conn {
        self.0
            .as_mut()
            .expect("invariant: the connection is only taken out on drop")
    }

    fn client(&self) -> &Client {
        self.0
            .as_ref()
            .expect("invariant: the connection is only taken out on drop")
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        let Some(mut conn) = self.0.take() else {
            return;
        };
        if !conn.is_dirty() {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if conn.batch_execute("ROLLBACK").await.is_ok() {
                    conn.set_dirty(false);
                } else {
                    conn.discard();
                }
            });
        }
    }
}
