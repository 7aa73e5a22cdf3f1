//! [`Probe`]: where a PostgreSQL node is, and whether it takes writes.

use tokio_postgres::types::PgLsn;

use super::Node;
use crate::{Error, Observation, PositionProbe};

/// Probes a node on its own connection with one query: `pg_is_in_recovery()`, the applied
/// position (`pg_last_wal_replay_lsn()` in recovery, the WAL insert position otherwise) and
/// the received position (`pg_last_wal_receive_lsn()`, replicas only).
#[derive(Debug, Clone, Copy, Default)]
pub struct Probe;

const OBSERVE: &str = "SELECT pg_is_in_recovery(), \
     CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() \
          ELSE pg_current_wal_insert_lsn() END, \
     CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn() END";

impl PositionProbe<Node> for Probe {
    type Error = Error;

    async fn observe(&self, node: &Node) -> Result<Observation, Error> {
        let mut conn = node.probe_conn().await?;
        let row = match conn.query_one(OBSERVE, &[]).await {
            Ok(row) => row,
            Err(e) => {
                if conn.is_closed() {
                    conn.discard();
                }
                return Err(e.into());
            }
        };
        let in_recovery: bool = row.try_get(0)?;
        let applied: Option<PgLsn> = row.try_get(1)?;
        let received: Option<PgLsn> = row.try_get(2)?;
        let mut observation =
            Observation::new(applied.map(|l| node.position(l)).unwrap_or_default())
                .writable(!in_recovery);
        if let Some(r) = received {
            observation = observation.received(node.position(r));
        }
        Ok(observation)
    }
}
