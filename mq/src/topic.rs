//! One topic: its log, its consumer groups, and the wake-ups between producers, consumers and
//! quota-waiting producers.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering, fence};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::builder::Config;
use crate::group::{self, GroupState};
use crate::journal::{Commit, Entry};
use crate::log::{Log, LogConfig};
use crate::report::RecoveryReport;
use crate::storage::StorageDir;
use crate::{Durability, Error, Message, Result};

pub(crate) struct Topic {
    pub(crate) name: String,
    pub(crate) dir: Arc<dyn StorageDir>,
    pub(crate) log: Log,
    pub(crate) groups: Mutex<HashMap<String, Arc<Group>>>,
    pub(crate) wake: Mutex<u64>,
    pub(crate) wake_cv: Condvar,
    #[cfg(feature = "tokio")]
    pub(crate) async_wake: tokio::sync::Notify,
    /// Consumers that may be waiting (blocking or async); sends skip the wake-up when zero.
    pub(crate) sleepers: AtomicUsize,
    /// Bumped when retention frees space; producers waiting on the disk quota sleep on it.
    pub(crate) space: Mutex<u64>,
    pub(crate) space_cv: Condvar,
}

/// Counts a consumer as a possible sleeper for as long as it lives (see [`Topic::notify`]).
pub(crate) struct Sleeper<'a>(&'a AtomicUsize);

impl<'a> Sleeper<'a> {
    pub(crate) fn new(topic: &'a Topic) -> Self {
        topic.sleepers.fetch_add(1, Ordering::SeqCst);
        // Pairs with the fence in `notify`: either the sender sees this count, or this
        // consumer's next look at the log sees the sender's record.
        fence(Ordering::SeqCst);
        Self(&topic.sleepers)
    }
}

impl Drop for Sleeper<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

pub(crate) struct Group {
    pub(crate) name: String,
    pub(crate) state: Mutex<GroupState>,
    /// Group commit of the ack journal's fsyncs.
    pub(crate) commit: Commit,
}

impl Group {
    pub(crate) fn new(name: &str, state: GroupState) -> Self {
        Self {
            name: name.to_owned(),
            state: Mutex::new(state),
            commit: Commit::default(),
        }
    }
}

impl Topic {
    /// End of what consumers may see: with `Always`, only durable records.
    pub(crate) fn visible_end(&self, d: Durability) -> u64 {
        match d {
            Durability::Always => self.log.durable_end(),
            _ => self.log.end(),
        }
    }

    /// Retention: deletes the segments every group acknowledged past, then those beyond the
    /// size and age limits (acknowledged or not: the groups skip what was lost and count it).
    /// Before size or age retention deletes messages a group has not acknowledged, the new
    /// start is journaled for that group, so a reopen tells retention from a deleted file.
    pub(crate) fn retain(&self, cfg: &Config) -> Result<()> {
        if cfg.read_only {
            return Ok(());
        }
        let groups: Vec<Arc<Group>> = self.groups.lock().values().cloned().collect();
        let mut freed = 0;
        if let Some(min) = groups.iter().map(|g| g.state.lock().committed).min() {
            freed += self.log.delete_before(min)?;
        }
        if (cfg.retention_bytes.is_some() || cfg.retention_age_ms.is_some())
            && let Some(start) = self.log.retention_start(
                cfg.retention_bytes,
                cfg.retention_age_ms,
                cfg.clock.unix_millis(),
            )?
        {
            for g in &groups {
                let mut st = g.state.lock();
                if st.committed >= start {
                    continue;
                }
                let seq = st.append(&self.dir, &self.name, &g.name, &[Entry::Floor(start)])?;
                let dropped = st.drop_below(start);
                st.maybe_compact(&self.dir, &self.name, &g.name, &g.commit);
                drop(st);
                self.sync_journal(cfg, g, seq)?;
                if dropped > 0 {
                    tracing::warn!(topic = %self.name, group = %g.name, dropped, start, "retention deleted unacknowledged messages");
                }
            }
            freed += self.log.delete_before(start)?;
        }
        if freed > 0 {
            *self.space.lock() += 1;
            self.space_cv.notify_all();
        }
        Ok(())
    }

    /// Makes a group's journal durable up to `seq` (shared fsyncs), unless the durability is
    /// `Never`. A failed fsync poisons the handle: the record may or may not be on disk.
    pub(crate) fn sync_journal(&self, cfg: &Config, g: &Group, seq: u64) -> Result<()> {
        if matches!(cfg.durability, Durability::Never) {
            return Ok(());
        }
        g.commit
            .sync_to(seq, || g.state.lock().journal_file())
            .map_err(|e| {
                let op = "an fsync of an ack journal";
                self.log.mark_poisoned(op);
                tracing::error!(topic = %self.name, group = %g.name, error = %e, "ack journal fsync failed; queue handle poisoned");
                Error::Io { op, source: e }
            })
    }

    /// Appends `msgs`, waiting up to the configured time for retention to free space when
    /// the disk quota is reached (see `QueueBuilder::disk_quota_wait`; `Duration::MAX` waits
    /// without a deadline).
    pub(crate) fn append(&self, cfg: &Config, msgs: &[Message]) -> Result<u64> {
        let Some(wait) = cfg.quota_wait else {
            return self.log.append(msgs);
        };
        let until = tierkit_core::deadline_after(Instant::now(), wait);
        loop {
            let seen = *self.space.lock();
            match self.log.append(msgs) {
                Err(Error::QuotaExceeded { .. }) => {}
                other => return other,
            }
            // Age retention frees space without any ack: give it a chance first.
            self.retain(cfg)?;
            let now = Instant::now();
            if until.is_some_and(|u| now >= u) {
                return self.log.append(msgs);
            }
            let mut g = self.space.lock();
            if *g == seen {
                // The cap re-checks age retention now and then (age limits need no event).
                let left = until.map_or(Duration::MAX, |u| u - now);
                self.space_cv
                    .wait_for(&mut g, left.min(Duration::from_millis(50)));
            }
        }
    }

    /// Wakes waiting consumers after an append. Free when no consumer waits: a consumer
    /// registers as a `Sleeper` before it looks at the log, so a zero count means any later
    /// sleeper will see the appended record before it waits.
    pub(crate) fn notify(&self) {
        fence(Ordering::SeqCst);
        if self.sleepers.load(Ordering::SeqCst) == 0 {
            return;
        }
        *self.wake.lock() += 1;
        self.wake_cv.notify_all();
        #[cfg(feature = "tokio")]
        self.async_wake.notify_waiters();
    }
}

/// Opens (recovering) the topic `name`: its log and the groups found on disk.
pub(crate) fn open_topic(
    dir: &Arc<dyn StorageDir>,
    cfg: &Config,
    name: &str,
    names: &[String],
    report: &mut RecoveryReport,
) -> Result<Topic> {
    let lc = LogConfig {
        segment_size: cfg.segment_size,
        max_record: cfg.max_record,
        quota: cfg.quota,
        sync_each_append: matches!(cfg.durability, Durability::Always),
        repair_damaged_tail: cfg.repair_damaged_tail,
        write_buffer: cfg.write_buffer,
        read_only: cfg.read_only,
    };
    let log = Log::open(Arc::clone(dir), name, lc, names, report)?;
    let mut groups = HashMap::new();
    for g in group::group_files(name, names) {
        // Known groups count for retention even before a consumer attaches.
        let Some(mut st) = GroupState::load(dir, name, &g, cfg.read_only, report)? else {
            continue;
        };
        st.clamp_reporting(log.start(), log.end(), (name, &g), report);
        groups.insert(g.clone(), Arc::new(Group::new(&g, st)));
    }
    Ok(Topic {
        name: name.to_owned(),
        dir: Arc::clone(dir),
        log,
        groups: Mutex::new(groups),
        wake: Mutex::new(0),
        wake_cv: Condvar::new(),
        #[cfg(feature = "tokio")]
        async_wake: tokio::sync::Notify::new(),
        sleepers: AtomicUsize::new(0),
        space: Mutex::new(0),
        space_cv: Condvar::new(),
    })
}
