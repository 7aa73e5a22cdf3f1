//! [`Snapshot`]: one immutable view of a [`ShardMap`](crate::ShardMap).

use std::sync::Arc;

use crate::drain::DrainSignal;
use crate::{
    Arrival, AsShardKey, Colocation, Directory, Error, Redirect, ReshardPlan, Result, Route,
    ShardId, ShardKey, ShardStrategy, StepState,
};

/// A migration in progress.
#[derive(Debug, Clone)]
pub(crate) struct Migration {
    pub(crate) id: u64,
    pub(crate) plan: Arc<ReshardPlan>,
    pub(crate) steps: Vec<StepState>,
}

impl Migration {
    /// The migration `id` of this view.
    pub(crate) fn of<S>(snapshot: &Snapshot<S>, id: u64) -> Result<&Migration> {
        snapshot
            .migration
            .as_ref()
            .filter(|m| m.id == id)
            .ok_or(Error::NoSuchMigration(id))
    }

    /// Fails with the first step not in `state`, saying what could not be done.
    pub(crate) fn require_all(&self, state: StepState, action: &'static str) -> Result<()> {
        match self.steps.iter().enumerate().find(|(_, s)| **s != state) {
            Some((step, other)) => Err(Error::StepState {
                step,
                state: other.name(),
                action,
            }),
            None => Ok(()),
        }
    }
}

/// One immutable view of the map: the shards, the strategy, any migration. Load one with
/// [`ShardMap::snapshot`](crate::ShardMap::snapshot) and **hold it until the operations routed
/// with it have finished**: the [`Migrator`](crate::Migrator) waits for views older than a step
/// to be dropped before it lets the step's target take writes (the migration protocol's drain).
#[derive(Debug)]
pub struct Snapshot<S> {
    pub(crate) version: u64,
    pub(crate) colocation: Colocation,
    pub(crate) shards: Vec<(ShardId, Arc<S>)>,
    pub(crate) strategy: Arc<Directory>,
    pub(crate) migration: Option<Migration>,
    pub(crate) drain: Arc<DrainSignal>,
}

impl<S> Drop for Snapshot<S> {
    fn drop(&mut self) {
        self.drain.notify();
    }
}

impl<S> Snapshot<S> {
    /// Increases by one with every change to the map.
    #[must_use]
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The shard handle for `id`.
    #[must_use]
    pub fn shard(&self, id: ShardId) -> Option<&Arc<S>> {
        self.shards
            .binary_search_by_key(&id, |(i, _)| *i)
            .ok()
            .map(|i| &self.shards[i].1)
    }

    /// Every shard id, ascending.
    pub fn shard_ids(&self) -> impl Iterator<Item = ShardId> + '_ {
        self.shards.iter().map(|(id, _)| *id)
    }

    /// The current strategy (with its pins).
    #[must_use]
    pub fn strategy(&self) -> &Arc<Directory> {
        &self.strategy
    }

    /// The current slot table, when the strategy is [`HashSlots`](crate::HashSlots) (behind the
    /// map's pins).
    #[must_use]
    pub fn hash_slots(&self) -> Option<&crate::HashSlots> {
        self.strategy.as_hash_slots()
    }

    /// Routes one key. Allocation-free.
    #[inline]
    pub fn route<K: AsShardKey + ?Sized>(&self, key: &K) -> Route {
        self.route_key(self.colocation.apply(key.as_shard_key()))
    }

    /// Applies the map's co-location rule to a key.
    #[inline]
    pub(crate) fn colocate<'k>(&self, key: ShardKey<'k>) -> ShardKey<'k> {
        self.colocation.apply(key)
    }

    /// Routes a key that already went through co-location.
    #[inline]
    fn route_key(&self, key: ShardKey<'_>) -> Route {
        let Some(m) = &self.migration else {
            return Route::Shard(self.strategy.shard_of(key));
        };
        let Some((source, target)) = m.plan.moves(&key) else {
            return Route::Shard(self.strategy.shard_of(key));
        };
        let state = m
            .plan
            .step_of(source, target)
            .and_then(|i| m.steps.get(i).copied())
            // Every moving pair has a step by construction of the plan.
            .unwrap_or(StepState::Preparing);
        match state {
            StepState::Pending => Route::Shard(source),
            StepState::Preparing => Route::Preparing { source, target },
            StepState::Copying => Route::Migrating { source, target },
            StepState::Done => Route::Shard(target),
        }
    }

    /// Routes a multi-key request that must run as one command on one shard, with Redis
    /// Cluster's rules: every key in one hash slot (for slot-based strategies; one shard
    /// otherwise), and no key in a slot that is migrating.
    ///
    /// # Errors
    /// [`Redirect::CrossSlot`] if the keys are in different slots (or on different shards for
    /// strategies without slots), [`Redirect::TryAgain`] if a key's step is under way. Returns
    /// `Ok(None)` for no keys.
    pub fn route_all<K, I>(&self, keys: I) -> Result<Option<ShardId>, Redirect>
    where
        K: AsShardKey,
        I: IntoIterator<Item = K>,
    {
        let mut first: Option<(Option<u16>, Route)> = None;
        let mut migrating = false;
        for key in keys {
            let key = key.as_shard_key();
            let key = self.colocation.apply(key);
            let slot = self.strategy.slot_of(key);
            let route = self.route_key(key);
            migrating |= route.is_migrating();
            match first {
                None => first = Some((slot, route)),
                Some((s, r)) => {
                    let same = match (s, slot) {
                        (Some(a), Some(b)) => a == b,
                        _ => r.first_shard() == route.first_shard(),
                    };
                    if !same {
                        return Err(Redirect::CrossSlot);
                    }
                }
            }
        }
        if migrating {
            return Err(Redirect::TryAgain);
        }
        Ok(first.map(|(_, r)| r.first_shard()))
    }

    /// What shard `at` should do with a request for `key`, by this view: `Ok` to serve it, or
    /// the redirect to answer — Redis Cluster's rules. A shard server that can check and
    /// execute atomically (a single-threaded server, or one lock per shard) calls this before
    /// executing, so a client routing with an older view is corrected.
    ///
    /// - A key that does not move: its owner serves it, every other shard answers MOVED.
    /// - A key whose step is copying: the source serves it while it holds it (`Present`) and
    ///   answers ASK otherwise; the target serves it only when asked (`Asking`), and answers
    ///   MOVED to the source otherwise.
    /// - A key whose step is preparing: the source serves it while it holds it, and answers
    ///   TRYAGAIN otherwise; the target answers MOVED to the source.
    ///
    /// # Errors
    /// The redirect the client must follow.
    pub fn check<K: AsShardKey + ?Sized>(
        &self,
        key: &K,
        at: ShardId,
        arrival: Arrival,
    ) -> Result<(), Redirect> {
        match self.route(key) {
            Route::Shard(s) if s == at => Ok(()),
            Route::Shard(s) => Err(Redirect::Moved(s)),
            Route::Migrating { source, target } => match arrival {
                Arrival::Present if at == source => Ok(()),
                Arrival::Absent if at == source => Err(Redirect::Ask(target)),
                Arrival::Asking if at == target => Ok(()),
                _ => Err(Redirect::Moved(source)),
            },
            Route::Preparing { source, .. } => match arrival {
                Arrival::Present if at == source => Ok(()),
                _ if at == source => Err(Redirect::TryAgain),
                _ => Err(Redirect::Moved(source)),
            },
        }
    }

    /// The state of each step of the migration in progress, if any.
    #[must_use]
    pub fn migration_steps(&self) -> Option<&[StepState]> {
        self.migration.as_ref().map(|m| m.steps.as_slice())
    }

    /// A copy of this view with a new version, for the map's writer.
    pub(crate) fn next(&self) -> Snapshot<S> {
        Snapshot {
            version: self.version,
            colocation: self.colocation,
            shards: self.shards.clone(),
            strategy: self.strategy.clone(),
            migration: self.migration.clone(),
            drain: self.drain.clone(),
        }
    }
}
