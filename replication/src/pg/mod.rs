//! The PostgreSQL adapter (feature `postgres`): node handles over tokio-postgres connections,
//! a position probe, write and read helpers that report the right positions, and promotion
//! through `pg_promote()`.
//!
//! ```no_run
//! use std::sync::Arc;
//! use std::time::Duration;
//! use tierkit_replication::pg::{Node, Probe, Promote, Read, Write};
//! use tierkit_replication::{Consistency, Intent, MonitorOptions, NodeId, ReplicaSet, monitor};
//!
//! # async fn demo() -> Result<(), tierkit_replication::Error> {
//! let set = Arc::new(
//!     ReplicaSet::builder()
//!         .primary(NodeId(0), Node::new("host=10.0.0.1 user=app dbname=app"))
//!         .replica(NodeId(1), Node::new("host=10.0.0.2 user=app dbname=app"))
//!         .promotion_hook(Promote::default())
//!         .build()?,
//! );
//! let options = MonitorOptions::default().interval(Duration::from_millis(50));
//! tokio::spawn(monitor(set.clone(), Probe, options));
//!
//! // A write: the token is read after COMMIT.
//! let w = Write::begin(set.route(Intent::Write)?).await?;
//! w.execute("INSERT INTO profile VALUES (1, 'Ada')", &[]).await?;
//! let token = w.commit().await?;
//!
//! // Read your write: a replica that has replayed it, else the primary.
//! let route = set.route(Intent::Read(Consistency::ReadYourWrites(token)))?;
//! let r = Read::begin(route).await?;
//! let rows = r.query("SELECT name FROM profile WHERE id = 1", &[]).await?;
//! let served = r.finish().await?; // keep for Consistency::MonotonicReads
//! # let _ = (rows, served);
//! # Ok(())
//! # }
//! ```
//!
//! Positions are LSNs as `u64`. WAL insert positions (`pg_current_wal_insert_lsn()`) that sit
//! just past a page header are moved back to the page boundary, the form replay and receive
//! positions take, so a token compares exactly with what a replica has received (see
//! [`canonical_lsn`]).

mod lsn;
mod node;
mod probe;
mod promote;
mod session;

pub use lsn::canonical_lsn;
pub use node::{Conn, Node};
pub use probe::Probe;
pub use promote::Promote;
pub use session::{Read, Write};

impl From<tokio_postgres::Error> for crate::Error {
    fn from(e: tokio_postgres::Error) -> Self {
        crate::Error::Engine {
            sqlstate: e.code().map(|c| c.code().to_owned()),
            message: match e.as_db_error() {
                Some(db) => db.message().to_owned(),
                None => e.to_string(),
            },
        }
    }
}

/// SQLSTATE of "cannot execute ... in a read-only transaction".
pub const READ_ONLY_SQLSTATE: &str = "25006";
