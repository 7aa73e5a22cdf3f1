//! The promotion hook: how the set acts on the engine when it promotes a replica (feature
//! `tokio`).

use std::future::Future;
use std::pin::Pin;

use crate::{Error, PendingPromotion, Position, Promotion, ReplicaSet, ReplicaSetBuilder, Result};

/// Makes the engine promote a node, and confirms it takes writes: for PostgreSQL,
/// `SELECT pg_promote(true)` and a check that `pg_is_in_recovery()` is false
/// ([`pg::Promote`](crate::pg::Promote) with the `postgres` feature).
///
/// The set calls it after it has fenced the old primary and stopped routing writes; writes
/// resume only when it returns `Ok`. Its `Ok` value is where the candidate's history ended,
/// if the engine can tell (`pg_last_wal_replay_lsn()` after promotion): the lost-write report
/// starts there.
pub trait PromotionHook<C>: Send + Sync + 'static {
    /// The hook's error.
    type Error: std::fmt::Display + Send;

    /// Promotes `node` on the engine and returns once it takes writes.
    fn promote(
        &self,
        node: &C,
    ) -> impl Future<Output = Result<Option<Position>, Self::Error>> + Send;
}

type HookFuture<'a> = Pin<Box<dyn Future<Output = Result<Option<Position>, String>> + Send + 'a>>;

/// The object-safe face of a [`PromotionHook`] the set stores.
pub(crate) trait DynHook<C>: Send + Sync {
    fn promote<'a>(&'a self, node: &'a C) -> HookFuture<'a>;
}

impl<C: Sync, H: PromotionHook<C>> DynHook<C> for H {
    fn promote<'a>(&'a self, node: &'a C) -> HookFuture<'a> {
        Box::pin(async move {
            PromotionHook::promote(self, node)
                .await
                .map_err(|e| e.to_string())
        })
    }
}

impl<C: Send + Sync + 'static> ReplicaSetBuilder<C> {
    /// The hook that promotes a node on the engine (see [`PromotionHook`]). Without one,
    /// an automatic failover stops after [`check_failover`](ReplicaSet::check_failover): writes
    /// fail fast until the application calls
    /// [`complete_promotion`](ReplicaSet::complete_promotion).
    pub fn promotion_hook(mut self, hook: impl PromotionHook<C>) -> Self {
        self.hook = Some(Box::new(hook));
        self
    }
}

impl<C: Send + Sync> ReplicaSet<C> {
    /// Automatic failover that acts: [`check_failover`](Self::check_failover), then the
    /// promotion hook on the candidate, then [`complete_promotion`](Self::complete_promotion)
    /// with what the hook reported (or [`abort_promotion`](Self::abort_promotion) if it failed).
    /// `Ok(None)` when no failover is due, or when one started and there is no hook (it stays
    /// pending for the application to finish).
    ///
    /// # Errors
    /// As [`check_failover`](Self::check_failover); [`Error::PromotionFailed`] if the hook
    /// failed.
    pub async fn failover(&self) -> Result<Option<Promotion>> {
        let Some(pending) = self.check_failover()? else {
            return Ok(None);
        };
        self.drive_promotion(&pending).await
    }

    /// Runs the promotion hook for a started promotion and finishes or aborts it.
    ///
    /// # Errors
    /// [`Error::PromotionFailed`]; [`Error::StalePromotion`].
    pub async fn drive_promotion(&self, pending: &PendingPromotion) -> Result<Option<Promotion>> {
        let Some(hook) = &self.hook else {
            tracing::warn!(
                candidate = pending.candidate.0,
                "promotion pending: no promotion hook; call complete_promotion once the engine takes writes"
            );
            return Ok(None);
        };
        let topo = self.topology.load_full();
        let Some(i) = topo.index_of(pending.candidate) else {
            return Err(Error::StalePromotion {
                epoch: pending.epoch,
                current: topo.epoch,
            });
        };
        let handle = topo.members[i].handle.clone();
        drop(topo);
        match hook.promote(&handle).await {
            Ok(position) => self.complete_promotion(pending, position).map(Some),
            Err(reason) => {
                self.abort_promotion(pending, &reason)?;
                Err(Error::PromotionFailed {
                    candidate: pending.candidate,
                    reason,
                })
            }
        }
    }
}
