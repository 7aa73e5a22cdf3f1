//! [`ShardMap`]: the shards, the strategy, and live migrations, behind one atomic snapshot.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwap;

use crate::drain::{DrainSignal, Retired};
use crate::snapshot::Migration;
use crate::{
    AsShardKey, Colocation, Directory, Error, ReshardPlan, Result, Route, ShardId, ShardStrategy,
    Snapshot, StepState,
};

/// The routing brain in front of an application's shards: owns the shard handles (`S`, e.g. a
/// connection pool per shard), the [`ShardStrategy`] (always behind a [`Directory`] so keys can
/// be pinned), the co-location rule, and any migration in progress.
///
/// Every change publishes a new immutable [`Snapshot`]; routing loads the current one without
/// locking or allocating, so reads never block, even during a cut-over. Changes are serialised
/// by a mutex that routing never touches.
///
/// # Examples
///
/// ```
/// use tierkit_shard::{Modulo, Route, ShardId, ShardMap};
///
/// # fn main() -> Result<(), tierkit_shard::Error> {
/// let map = ShardMap::builder()
///     .shards((0..4).map(|i| (ShardId(i), format!("postgres://shard-{i}"))))
///     .strategy(Modulo::new(4)?)
///     .build()?;
/// assert_eq!(map.route(&10u64), Route::Shard(ShardId(2))); // user_id % 4
/// let pool = map.shard(ShardId(2)).expect("exists");
/// assert_eq!(*pool, "postgres://shard-2");
/// # Ok(())
/// # }
/// ```
pub struct ShardMap<S> {
    state: ArcSwap<Snapshot<S>>,
    writer: Mutex<u64>,
    retired: Retired<S>,
}

/// Configures a [`ShardMap`].
#[must_use]
pub struct ShardMapBuilder<S> {
    shards: Vec<(ShardId, Arc<S>)>,
    strategy: Option<Arc<dyn ShardStrategy>>,
    colocation: Colocation,
}

impl<S> Default for ShardMapBuilder<S> {
    fn default() -> Self {
        ShardMapBuilder {
            shards: Vec::new(),
            strategy: None,
            colocation: Colocation::default(),
        }
    }
}

impl<S> ShardMapBuilder<S> {
    /// Adds one shard.
    pub fn shard(mut self, id: ShardId, handle: S) -> Self {
        self.shards.push((id, Arc::new(handle)));
        self
    }

    /// Adds one shard whose handle is already shared (the map keeps this `Arc`, so the
    /// application and the map hold the same handle without an `Arc<Arc<S>>`).
    pub fn shard_arc(mut self, id: ShardId, handle: Arc<S>) -> Self {
        self.shards.push((id, handle));
        self
    }

    /// Adds shards.
    pub fn shards<I: IntoIterator<Item = (ShardId, S)>>(mut self, shards: I) -> Self {
        self.shards
            .extend(shards.into_iter().map(|(id, s)| (id, Arc::new(s))));
        self
    }

    /// The strategy (required).
    pub fn strategy<T: ShardStrategy + 'static>(mut self, strategy: T) -> Self {
        self.strategy = Some(Arc::new(strategy));
        self
    }

    /// The co-location rule (default: [`Colocation::HashTag`]).
    pub fn colocation(mut self, colocation: Colocation) -> Self {
        self.colocation = colocation;
        self
    }

    /// Validates and builds the map.
    ///
    /// # Errors
    /// [`Error::EmptyShardSet`] with no shards or no strategy, [`Error::DuplicateShard`], and
    /// [`Error::UnknownShard`] if the strategy can route to a shard the map does not have.
    pub fn build(self) -> Result<ShardMap<S>> {
        let strategy = self.strategy.ok_or(Error::EmptyShardSet)?;
        let mut shards: Vec<(ShardId, Arc<S>)> = self.shards;
        if shards.is_empty() {
            return Err(Error::EmptyShardSet);
        }
        shards.sort_by_key(|(id, _)| *id);
        if let Some(w) = shards.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(Error::DuplicateShard(w[0].0));
        }
        let strategy = Arc::new(Directory::over(strategy));
        check_known(&shards, strategy.shards())?;
        Ok(ShardMap {
            state: ArcSwap::from_pointee(Snapshot {
                version: 0,
                colocation: self.colocation,
                shards,
                strategy,
                migration: None,
                drain: Arc::new(DrainSignal::default()),
            }),
            writer: Mutex::new(0),
            retired: Retired::default(),
        })
    }
}

fn check_known<S>(shards: &[(ShardId, Arc<S>)], ids: &[ShardId]) -> Result<()> {
    match ids
        .iter()
        .find(|id| shards.binary_search_by_key(*id, |(i, _)| *i).is_err())
    {
        Some(&id) => Err(Error::UnknownShard(id)),
        None => Ok(()),
    }
}

impl<S> ShardMap<S> {
    /// A builder.
    pub fn builder() -> ShardMapBuilder<S> {
        ShardMapBuilder::default()
    }

    /// The current view. Hold it to route many keys against one consistent version.
    #[must_use]
    pub fn snapshot(&self) -> Arc<Snapshot<S>> {
        self.state.load_full()
    }

    /// Routes one key against the current view. Allocation-free and lock-free.
    #[inline]
    pub fn route<K: AsShardKey + ?Sized>(&self, key: &K) -> Route {
        self.state.load().route(key)
    }

    /// The handle of shard `id`.
    #[must_use]
    pub fn shard(&self, id: ShardId) -> Option<Arc<S>> {
        self.state.load().shard(id).cloned()
    }

    /// The version of the current view.
    #[must_use]
    pub fn version(&self) -> u64 {
        self.state.load().version
    }

    /// Applies `change` to a copy of the current view and publishes it, under the writer lock.
    fn update(&self, change: impl FnOnce(&Snapshot<S>) -> Result<Snapshot<S>>) -> Result<()> {
        let mut version = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let current = self.state.load_full();
        let mut next = change(&current)?;
        *version = current.version + 1;
        next.version = *version;
        self.state.store(Arc::new(next));
        self.retired.push(&current);
        Ok(())
    }

    fn with(current: &Snapshot<S>) -> Snapshot<S> {
        current.next()
    }

    /// Blocks until no one holds a view older than `version` (every [`Snapshot`] loaded before
    /// that version was published has been dropped), or `timeout` passes (`Duration::MAX`: no
    /// deadline). Woken by snapshot drops, not by polling. The [`Migrator`](crate::Migrator)
    /// calls this between [`start_step`](Self::start_step) and [`open_step`](Self::open_step).
    ///
    /// # Errors
    /// [`Error::ViewsInUse`] on timeout, with how many old views are still held.
    pub fn wait_for_views_before(&self, version: u64, timeout: Duration) -> Result<()> {
        let drain = self.state.load().drain.clone();
        self.retired.wait_before(&drain, version, timeout)
    }

    /// Adds a shard that no key routes to yet (plan a migration to give it keys).
    ///
    /// # Errors
    /// [`Error::DuplicateShard`] if `id` exists.
    pub fn add_shard(&self, id: ShardId, handle: S) -> Result<()> {
        let mut handle = Some(handle);
        self.update(|cur| {
            let at = match cur.shards.binary_search_by_key(&id, |(i, _)| *i) {
                Ok(_) => return Err(Error::DuplicateShard(id)),
                Err(at) => at,
            };
            let mut next = Self::with(cur);
            if let Some(h) = handle.take() {
                next.shards.insert(at, (id, Arc::new(h)));
            }
            Ok(next)
        })
    }

    /// Removes a shard that no key routes to any more, returning its handle's `Arc`.
    ///
    /// # Errors
    /// [`Error::UnknownShard`] if absent; [`Error::MigrationInProgress`] if the strategy or a
    /// migration still uses it.
    pub fn remove_shard(&self, id: ShardId) -> Result<Arc<S>> {
        let mut removed = None;
        self.update(|cur| {
            let at = cur
                .shards
                .binary_search_by_key(&id, |(i, _)| *i)
                .map_err(|_| Error::UnknownShard(id))?;
            if let Some(m) = &cur.migration {
                return Err(Error::MigrationInProgress(m.id));
            }
            if cur.strategy.shards().contains(&id) {
                return Err(Error::MigrationInProgress(0));
            }
            let mut next = Self::with(cur);
            removed = Some(next.shards.remove(at).1);
            Ok(next)
        })?;
        removed.ok_or(Error::UnknownShard(id))
    }

    /// Gives one hash slot to `owner` (what a Redis Cluster's MOVED says), in one new version:
    /// no migration plan, no probing of the other slots. For a strategy that follows a live
    /// Redis Cluster at MOVED rates, use a [`ClusterRouter`](crate::ClusterRouter).
    ///
    /// # Errors
    /// [`Error::NotSlotBased`] unless the strategy is [`HashSlots`](crate::HashSlots);
    /// [`Error::MigrationInProgress`]; [`Error::UnknownShard`] if the map has no `owner`;
    /// [`Error::SlotOutOfRange`].
    pub fn set_slot_owner(&self, slot: u16, owner: ShardId) -> Result<()> {
        self.update(|cur| {
            if let Some(m) = &cur.migration {
                return Err(Error::MigrationInProgress(m.id));
            }
            check_known(&cur.shards, &[owner])?;
            let mut slots = cur.hash_slots().ok_or(Error::NotSlotBased)?.clone();
            slots.set_slot_owner(slot, owner)?;
            let mut next = Self::with(cur);
            next.strategy = Arc::new(cur.strategy.with_inner(Arc::new(slots)));
            Ok(next)
        })
    }

    /// A plan from the current strategy to `new` (keeping the current pins).
    ///
    /// # Errors
    /// [`Error::UnknownShard`] if `new` routes to a shard the map does not have (add it first).
    pub fn plan_to<T: ShardStrategy + 'static>(&self, new: T) -> Result<ReshardPlan> {
        let cur = self.state.load();
        let to = Arc::new(cur.strategy.with_inner(Arc::new(new)));
        check_known(&cur.shards, to.shards())?;
        let mut plan = ReshardPlan::new(cur.strategy.clone(), to.clone());
        plan.target_directory = Some(to);
        Ok(plan)
    }

    /// A plan that pins `key` (after co-location) to `shard`: one step moving that key's data.
    ///
    /// # Errors
    /// [`Error::UnknownShard`] if the map has no such shard.
    pub fn plan_pin<K: AsShardKey + ?Sized>(&self, key: &K, shard: ShardId) -> Result<ReshardPlan> {
        let cur = self.state.load();
        check_known(&cur.shards, &[shard])?;
        let key = cur.colocation.apply(key.as_shard_key());
        let to = Arc::new(cur.strategy.pin(key, shard));
        let mut plan = ReshardPlan::for_key(cur.strategy.clone(), to.clone(), key);
        plan.target_directory = Some(to);
        Ok(plan)
    }

    /// Starts a migration: every step `Pending`. Returns its id.
    ///
    /// # Errors
    /// [`Error::MigrationInProgress`]; [`Error::UnknownShard`] if the plan's target strategy
    /// routes to a shard the map does not have.
    pub fn begin(&self, plan: ReshardPlan) -> Result<u64> {
        let mut id = 0;
        let plan = Arc::new(plan);
        self.update(|cur| {
            if let Some(m) = &cur.migration {
                return Err(Error::MigrationInProgress(m.id));
            }
            check_known(&cur.shards, plan.to().shards())?;
            let mut next = Self::with(cur);
            id = cur.version + 1;
            next.migration = Some(Migration {
                id,
                plan: plan.clone(),
                steps: vec![StepState::Pending; plan.steps().len()],
            });
            Ok(next)
        })?;
        Ok(id)
    }

    fn set_step(
        &self,
        id: u64,
        step: usize,
        from: StepState,
        to: StepState,
        action: &'static str,
    ) -> Result<()> {
        self.update(|cur| {
            let m = Migration::of(cur, id)?;
            let state = *m.steps.get(step).ok_or(Error::NoSuchStep {
                step,
                steps: m.steps.len(),
            })?;
            if state != from {
                return Err(Error::StepState {
                    step,
                    state: state.name(),
                    action,
                });
            }
            let mut next = Self::with(cur);
            if let Some(m) = next.migration.as_mut() {
                m.steps[step] = to;
            }
            Ok(next)
        })
    }

    /// Starts a step: its keys now route as [`Route::Preparing`]. Returns the version that
    /// published it: wait for views older than it ([`wait_for_views_before`]) before
    /// [`open_step`](Self::open_step).
    ///
    /// [`wait_for_views_before`]: Self::wait_for_views_before
    ///
    /// # Errors
    /// [`Error::NoSuchMigration`], [`Error::NoSuchStep`], [`Error::StepState`] unless pending.
    pub fn start_step(&self, id: u64, step: usize) -> Result<u64> {
        self.set_step(id, step, StepState::Pending, StepState::Preparing, "start")?;
        Ok(self.version())
    }

    /// Opens a preparing step's target: its keys now route as [`Route::Migrating`]. Call it
    /// only once no view older than the version [`start_step`](Self::start_step) returned is
    /// held (a client with an older view may still write to the source blindly).
    ///
    /// # Errors
    /// [`Error::NoSuchMigration`], [`Error::NoSuchStep`], [`Error::StepState`] unless preparing.
    pub fn open_step(&self, id: u64, step: usize) -> Result<()> {
        self.set_step(id, step, StepState::Preparing, StepState::Copying, "open")
    }

    /// Marks a step as done (its keys are all on the target): they now route to the target.
    ///
    /// # Errors
    /// [`Error::NoSuchMigration`], [`Error::NoSuchStep`], [`Error::StepState`] unless copying.
    pub fn finish_step(&self, id: u64, step: usize) -> Result<()> {
        self.set_step(id, step, StepState::Copying, StepState::Done, "finish")
    }

    /// The atomic cut-over: once every step is done, the plan's target strategy becomes the
    /// map's strategy and the migration ends.
    ///
    /// # Errors
    /// [`Error::NoSuchMigration`]; [`Error::StepState`] for the first step not done.
    pub fn complete(&self, id: u64) -> Result<()> {
        self.update(|cur| {
            let m = Migration::of(cur, id)?;
            m.require_all(StepState::Done, "complete the migration with")?;
            let mut next = Self::with(cur);
            next.strategy = match &m.plan.target_directory {
                Some(dir) => dir.clone(),
                None => Arc::new(Directory::over(m.plan.to().clone())),
            };
            next.migration = None;
            Ok(next)
        })
    }

    /// Abandons a migration none of whose steps has started.
    ///
    /// # Errors
    /// [`Error::NoSuchMigration`]; [`Error::StepState`] if a step has started (finish it
    /// instead: keys may already live on its target).
    pub fn abort(&self, id: u64) -> Result<()> {
        self.update(|cur| {
            Migration::of(cur, id)?.require_all(StepState::Pending, "abort the migration with")?;
            let mut next = Self::with(cur);
            next.migration = None;
            Ok(next)
        })
    }

    /// The plan of the migration in progress.
    #[must_use]
    pub fn migration_plan(&self) -> Option<(u64, Arc<ReshardPlan>)> {
        self.state
            .load()
            .migration
            .as_ref()
            .map(|m| (m.id, m.plan.clone()))
    }
}

impl<S> std::fmt::Debug for ShardMap<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.state.load();
        f.debug_struct("ShardMap")
            .field("version", &s.version)
            .field("shards", &s.shards.len())
            .field("strategy", &s.strategy.inner().name())
            .field("migrating", &s.migration.is_some())
            .finish_non_exhaustive()
    }
}

impl<S> std::fmt::Debug for ShardMapBuilder<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardMapBuilder")
            .field("shards", &self.shards.len())
            .finish_non_exhaustive()
    }
}
