//! [`Promote`]: the promotion hook for PostgreSQL, `pg_promote()`.

use std::time::Duration;

use tokio_postgres::types::PgLsn;

use super::Node;
use crate::{Error, Position, PromotionHook};

/// Promotes a standby with `SELECT pg_promote(true, wait_seconds)` (it applies everything the
/// standby received, then leaves recovery), then confirms `pg_is_in_recovery()` is false, and
/// reports `pg_last_wal_replay_lsn()`: where the old timeline ended on the new primary, the
/// start of the lost-write range.
#[derive(Debug, Clone, Copy)]
pub struct Promote {
    /// How long `pg_promote` may wait for the promotion to finish (default 60 s).
    pub wait: Duration,
}

impl Default for Promote {
    fn default() -> Self {
        Promote {
            wait: Duration::from_secs(60),
        }
    }
}

impl PromotionHook<Node> for Promote {
    type Error = Error;

    async fn promote(&self, node: &Node) -> Result<Option<Position>, Error> {
        let conn = node.conn().await?;
        let wait = i32::try_from(self.wait.as_secs().max(1)).unwrap_or(i32::MAX);
        let row = conn
            .query_one("SELECT pg_promote(true, $1)", &[&wait])
            .await?;
        let promoted: bool = row.try_get(0)?;
        let row = conn
            .query_one("SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()", &[])
            .await?;
        let in_recovery: bool = row.try_get(0)?;
        if !promoted || in_recovery {
            return Err(Error::Engine {
                message: format!(
                    "pg_promote did not finish within {} s; the server is still in recovery",
                    wait
                ),
                sqlstate: None,
            });
        }
        let end: Option<PgLsn> = row.try_get(1)?;
        Ok(end.map(|l| node.position(l)))
    }
}
