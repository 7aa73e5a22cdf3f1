//! [`Route`], [`Redirect`], [`Arrival`] and [`StepState`]: the vocabulary of routing and of the
//! migration protocol (see the crate README, "The migration protocol").

use crate::ShardId;

/// Where to send an operation on one key.
///
/// During a migration step a key's **source owns it as long as the source holds it** (Redis
/// Cluster's source-first rule): clients always go to the source first and follow the answer.
/// [`KeyOp`](crate::KeyOp) drives one request through these rules with single-key store
/// operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Route {
    /// The key lives on this shard.
    Shard(ShardId),
    /// The key's step is preparing (the migrator waits for every older view to be dropped):
    /// the source serves the key if it holds it; if it does not, retry shortly (TRYAGAIN),
    /// because a client with an older view may still create it there.
    Preparing {
        /// Where the key lives before the step.
        source: ShardId,
        /// Where it will live after.
        target: ShardId,
    },
    /// The key's step is copying: the source serves the key if it holds it; if it does not, the
    /// key is (or will be created) on the target, asked with ASKING — the ASK redirect of
    /// Redis Cluster.
    Migrating {
        /// Where the key lived before the step.
        source: ShardId,
        /// Where it lives after.
        target: ShardId,
    },
}

impl Route {
    /// The shard to contact first: the owner, or the source of a migrating key.
    #[must_use]
    pub fn first_shard(&self) -> ShardId {
        match *self {
            Route::Shard(s)
            | Route::Preparing { source: s, .. }
            | Route::Migrating { source: s, .. } => s,
        }
    }

    /// Whether the key's slot (or shard pair) is in the middle of a migration step.
    #[must_use]
    pub fn is_migrating(&self) -> bool {
        !matches!(self, Route::Shard(_))
    }
}

/// What a shard server knows about a request when it validates it with
/// [`Snapshot::check`](crate::Snapshot::check).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Arrival {
    /// The key exists on this shard (a value or a tombstone of a delete during a migration).
    Present,
    /// The key does not exist on this shard.
    Absent,
    /// The client was sent here by [`Redirect::Ask`] and says so (Redis's `ASKING`).
    Asking,
}

/// What a shard server answers when asked about a key that is not (only) its own: the outcomes
/// Redis Cluster clients know. See [`Snapshot::check`](crate::Snapshot::check).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Redirect {
    /// The key belongs to another shard: update the routing view and go there.
    #[error("MOVED to shard {0}")]
    Moved(ShardId),
    /// The key is migrating and is not on this (source) shard: ask the target this once, with
    /// ASKING, without updating the routing view.
    #[error("ASK shard {0}")]
    Ask(ShardId),
    /// The key (or a key of a multi-key request) is being migrated: retry shortly.
    #[error("TRYAGAIN: a key of the request is being migrated")]
    TryAgain,
    /// The keys of a multi-key request are in different hash slots (or, for strategies without
    /// slots, on different shards): it cannot run as one command (Redis's CROSSSLOT).
    #[error("CROSSSLOT: keys of the request belong to different slots")]
    CrossSlot,
}

/// Progress of one migration step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StepState {
    /// Not started: its keys route to the source.
    Pending,
    /// Waiting for older views to be dropped: its keys route as [`Route::Preparing`].
    Preparing,
    /// Copying: its keys route as [`Route::Migrating`].
    Copying,
    /// Done: its keys route to the target.
    Done,
}

impl StepState {
    pub(crate) fn name(self) -> &'static str {
        match self {
            StepState::Pending => "pending",
            StepState::Preparing => "preparing",
            StepState::Copying => "copying",
            StepState::Done => "done",
        }
    }
}
