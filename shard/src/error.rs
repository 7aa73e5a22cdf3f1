//! The crate's error type.

use crate::ShardId;

/// Everything that can go wrong when building a strategy, a map or a resharding plan.
///
/// Routing itself never fails for a well-formed map: every check happens at construction, so a
/// map that exists routes every key to exactly one shard.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A strategy or map was given no shards.
    #[error("a shard set needs at least one shard")]
    EmptyShardSet,

    /// The same shard id was given twice.
    #[error("shard {0} appears more than once")]
    DuplicateShard(ShardId),

    /// A route, override or plan names a shard the map does not have.
    #[error("unknown shard {0}")]
    UnknownShard(ShardId),

    /// Range split points must be strictly increasing.
    #[error("range split points must be strictly increasing: {previous} is followed by {next}")]
    UnsortedRanges {
        /// The earlier split point.
        previous: u64,
        /// The split point that is not greater than it.
        next: u64,
    },

    /// A range strategy needs one more shard than split points.
    #[error("{splits} split points need {} shards, got {shards}", splits + 1)]
    RangeShardMismatch {
        /// Split points given.
        splits: usize,
        /// Shards given.
        shards: usize,
    },

    /// A split point that is not inside any range, or a merge of ranges that are not neighbours.
    #[error("no range boundary at {0}")]
    NoSuchBoundary(u64),

    /// A slot table must give every slot an owner.
    #[error("slot table has {got} entries, expected {expected}")]
    SlotTableSize {
        /// Entries given.
        got: usize,
        /// The slot count (16,384 for Redis Cluster).
        expected: usize,
    },

    /// A slot number outside the slot space.
    #[error("slot {slot} is outside 0..{slots}")]
    SlotOutOfRange {
        /// The slot given.
        slot: usize,
        /// The slot count.
        slots: usize,
    },

    /// Modulo over more shards than ids can name.
    #[error("too many shards: {0}")]
    TooManyShards(usize),

    /// A migration is already in progress; finish or abort it first.
    #[error("a migration is already in progress (plan {0})")]
    MigrationInProgress(u64),

    /// No migration is in progress, or the plan given is not the one in progress.
    #[error("no migration with id {0} is in progress")]
    NoSuchMigration(u64),

    /// A plan step index out of range.
    #[error("plan has {steps} steps, no step {step}")]
    NoSuchStep {
        /// The step asked for.
        step: usize,
        /// Steps in the plan.
        steps: usize,
    },

    /// Migration steps must be started before they are finished, and finished once.
    #[error("step {step} is {state}, cannot {action}")]
    StepState {
        /// The step.
        step: usize,
        /// Its current state.
        state: &'static str,
        /// What was attempted.
        action: &'static str,
    },

    /// Views older than `version` are still held after the drain's timeout (a client keeps a
    /// [`Snapshot`](crate::Snapshot) for too long); the step stays preparing and can be resumed.
    #[error("{views} views older than version {version} are still held")]
    ViewsInUse {
        /// The version the drain waited for.
        version: u64,
        /// Older views still alive.
        views: usize,
    },

    /// A slot operation on a map whose strategy is not [`HashSlots`](crate::HashSlots).
    #[error("the strategy is not a hash-slot table")]
    NotSlotBased,

    /// A Redis Cluster reply this crate cannot read (a topology or an error line).
    #[error("unexpected reply from the cluster: {0}")]
    Protocol(String),

    /// An error from the consistent-hash placement.
    #[error(transparent)]
    Placement(#[from] tierkit_consistent_hash::Error),
}

/// `Result` with this crate's [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
