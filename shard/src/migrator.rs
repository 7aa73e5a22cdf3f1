//! [`Migrator`]: drives a migration through the application's own data-moving callbacks.

use std::sync::Arc;
use std::time::Duration;

use crate::{Error, ReshardPlan, ShardMap, Step, StepState};

/// The application's side of a migration: how to list, copy and delete keys on its shards.
///
/// The [`Migrator`] calls these for one step at a time, after the step's keys route as
/// [`Route::Migrating`](crate::Route) and no older view is held (so no client creates a key on
/// the source any more: see [`protocol`](crate::KeyOp)).
pub trait MigrationIo {
    /// The application's key type.
    type Key;
    /// The application's error type.
    type Error;

    /// One page of the keys on `step.source` that `plan.moves` sends to `step.target`, starting
    /// at `cursor` (0 for a new pass), and the cursor of the next page (0 when the pass is over),
    /// like Redis `SCAN`. For slot-based plans, scanning `step.slots` is enough. Keys holding
    /// a [`Tombstone`](crate::Entry::Tombstone) or a [`Moved`](crate::Entry::Moved) marker
    /// count: they must be moved (removed) too.
    ///
    /// # Errors
    /// Any error of the application's storage; the migrator stops and can be resumed.
    fn scan(
        &mut self,
        plan: &ReshardPlan,
        step: &Step,
        cursor: u64,
    ) -> Result<(Vec<Self::Key>, u64), Self::Error>;

    /// Moves each key from `step.source` to `step.target` so that the source no longer holds
    /// it: with single-key operations, drive a [`MoveKey`](crate::MoveKey) per key (copy the
    /// source's entry, swap it for `Moved` by compare-and-set, retry if a client changed it,
    /// delete the marker). A store that can lock both shards may instead copy and delete each
    /// key under those locks; Redis does it with `MIGRATE`.
    ///
    /// # Errors
    /// Any error of the application's storage.
    fn move_keys(&mut self, step: &Step, keys: &[Self::Key]) -> Result<(), Self::Error>;

    /// Called after every page with the progress so far. Does nothing by default.
    fn progress(&mut self, progress: &Progress) {
        let _ = progress;
    }
}

/// How far a migration has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Progress {
    /// Steps done.
    pub steps_done: usize,
    /// Steps in the plan.
    pub steps: usize,
    /// Keys copied and deleted so far (a key moved twice after a resume counts twice).
    pub keys_moved: u64,
    /// The step in progress and its scan cursor.
    pub current: Option<(usize, u64)>,
    /// Whether the cut-over happened.
    pub complete: bool,
}

/// What stopped a [`Migrator`] run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MigrateError<E> {
    /// A callback failed during `step`. The migrator keeps its place: call
    /// [`run`](Migrator::run) again to resume (copying is idempotent, so the page is redone).
    #[error("migration step {step} failed in {during}")]
    Io {
        /// The step.
        step: usize,
        /// Which callback failed: "scan" or "move".
        during: &'static str,
        /// The application's error.
        #[source]
        error: E,
    },
    /// The map refused a state change (for example another process finished the migration).
    #[error(transparent)]
    Map(#[from] Error),
}

/// Runs a [`ReshardPlan`] on a [`ShardMap`]: for each step, starts it (preparing), waits until
/// no view older than that is held (the drain), opens it (copying), scans its source in pages
/// and moves each page, repeats the scan until a full pass finds nothing, marks the step done,
/// and finally cuts over.
///
/// The drain blocks the calling thread (woken by snapshot drops); in an async program run the
/// migrator on a blocking thread.
///
/// # Examples
///
/// See the crate's `sharded_users` example and `tests/integration/migrator.rs`.
#[derive(Debug)]
pub struct Migrator<'m, S> {
    map: &'m ShardMap<S>,
    id: u64,
    plan: Arc<ReshardPlan>,
    progress: Progress,
    found_this_pass: bool,
    drain_timeout: Duration,
}

impl<'m, S> Migrator<'m, S> {
    /// Begins `plan` on `map`.
    ///
    /// # Errors
    /// As [`ShardMap::begin`].
    pub fn start(map: &'m ShardMap<S>, plan: ReshardPlan) -> Result<Self, Error> {
        let id = map.begin(plan)?;
        Self::resume(map).and_then(|m| {
            if m.id == id {
                Ok(m)
            } else {
                Err(Error::NoSuchMigration(id))
            }
        })
    }

    /// Picks up the migration in progress on `map` (after a restart of the driving process, say):
    /// continues with the first step that is not done; a step left copying is rescanned from the
    /// start.
    ///
    /// # Errors
    /// [`Error::NoSuchMigration`] if none is in progress.
    pub fn resume(map: &'m ShardMap<S>) -> Result<Self, Error> {
        let (id, plan) = map.migration_plan().ok_or(Error::NoSuchMigration(0))?;
        let states = map
            .snapshot()
            .migration_steps()
            .map(<[_]>::to_vec)
            .unwrap_or_default();
        let steps_done = states.iter().filter(|s| **s == StepState::Done).count();
        Ok(Migrator {
            map,
            id,
            progress: Progress {
                steps_done,
                steps: plan.steps().len(),
                ..Progress::default()
            },
            plan,
            found_this_pass: false,
            drain_timeout: Self::DEFAULT_DRAIN_TIMEOUT,
        })
    }

    /// How long [`run`](Self::run) waits by default for views older than a step to be dropped.
    pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

    /// Sets how long to wait for views older than a step to be dropped (`Duration::MAX`: no
    /// deadline). On timeout `run` fails with [`Error::ViewsInUse`] and can be resumed.
    #[must_use]
    pub fn drain_timeout(mut self, timeout: Duration) -> Self {
        self.drain_timeout = timeout;
        self
    }

    /// The migration's id in the map.
    #[must_use]
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Progress so far.
    #[must_use]
    pub fn progress(&self) -> Progress {
        self.progress
    }

    /// Runs to completion (cut-over included), or until a callback fails.
    ///
    /// # Errors
    /// [`MigrateError::Io`] with the failing step; the migrator can be run again to resume.
    /// [`MigrateError::Map`] if the map refuses a transition.
    pub fn run<Io: MigrationIo>(
        &mut self,
        io: &mut Io,
    ) -> Result<Progress, MigrateError<Io::Error>> {
        while !self.progress.complete {
            self.advance(io)?;
        }
        Ok(self.progress)
    }

    fn advance<Io: MigrationIo>(&mut self, io: &mut Io) -> Result<(), MigrateError<Io::Error>> {
        let states = self
            .map
            .snapshot()
            .migration_steps()
            .map(<[_]>::to_vec)
            .ok_or(Error::NoSuchMigration(self.id))?;
        let Some(step) = states.iter().position(|s| *s != StepState::Done) else {
            self.map.complete(self.id)?;
            self.progress.complete = true;
            self.progress.current = None;
            io.progress(&self.progress);
            return Ok(());
        };
        if states[step] == StepState::Pending {
            self.map.start_step(self.id, step)?;
        }
        if states[step] != StepState::Copying {
            // Preparing (just started, or left so by a crash or a drain timeout): the drain.
            let started = self.map.version();
            self.map
                .wait_for_views_before(started, self.drain_timeout)?;
            self.map.open_step(self.id, step)?;
            self.progress.current = Some((step, 0));
            self.found_this_pass = false;
        }
        let cursor = match self.progress.current {
            Some((s, c)) if s == step => c,
            _ => {
                self.found_this_pass = false;
                0
            }
        };
        let plan = self.plan.clone();
        let desc = &plan.steps()[step];
        let io_err = |during, error| MigrateError::Io {
            step,
            during,
            error,
        };
        let (keys, next) = io
            .scan(&plan, desc, cursor)
            .map_err(|e| io_err("scan", e))?;
        if !keys.is_empty() {
            io.move_keys(desc, &keys).map_err(|e| io_err("move", e))?;
            self.progress.keys_moved += keys.len() as u64;
            self.found_this_pass = true;
        }
        if next != 0 {
            self.progress.current = Some((step, next));
        } else if self.found_this_pass {
            // Something moved in this pass; scan again until a pass comes back empty.
            self.progress.current = Some((step, 0));
            self.found_this_pass = false;
        } else {
            self.map.finish_step(self.id, step)?;
            self.progress.steps_done += 1;
            self.progress.current = None;
        }
        io.progress(&self.progress);
        Ok(())
    }
}
