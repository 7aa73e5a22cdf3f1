//! The queue handle: a directory of topics.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering, fence};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::builder::Config;
use crate::group::{self, GroupState};
use crate::log::{Log, LogConfig, TailDamage};
use crate::storage::StorageDir;
use crate::{Consumer, Durability, Error, Message, Producer, QueueBuilder, Result, Stats};

/// A durable queue: a directory holding topics, each an append-only log with consumer groups.
///
/// Cloning is cheap and shares the queue. See the crate docs for the delivery guarantees.
///
/// # Examples
/// ```
/// use tierkit_mq::{Message, Queue};
/// let queue = Queue::builder().build_in_memory()?;
/// let offset = queue.producer("photos")?.send(Message::new("cat.jpg"))?;
/// let workers = queue.consumer("photos", "resizers")?;
/// let job = workers.try_recv()?.expect("a message is ready");
/// assert_eq!((job.offset(), &job.payload()[..]), (offset, &b"cat.jpg"[..]));
/// workers.ack(&job)?;
/// # Ok::<(), tierkit_mq::Error>(())
/// ```
#[derive(Clone)]
pub struct Queue {
    pub(crate) shared: Arc<Shared>,
}

impl fmt::Debug for Queue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue")
            .field("dir", &self.shared.dir)
            .finish_non_exhaustive()
    }
}

pub(crate) struct Shared {
    pub(crate) dir: Arc<dyn StorageDir>,
    pub(crate) cfg: Config,
    topics: Mutex<HashMap<String, Arc<Topic>>>,
    damage: Vec<(String, TailDamage)>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        for t in self.topics.get_mut().values() {
            if let Err(e) = t.log.flush_buffer() {
                tracing::error!(topic = %t.name, error = %e, "final write of the write buffer failed");
            }
        }
        if !matches!(self.cfg.durability, Durability::Never) {
            for t in self.topics.get_mut().values() {
                if let Err(e) = t.log.sync_all() {
                    tracing::error!(topic = %t.name, error = %e, "final fsync failed");
                }
            }
        }
        self.dir.unlock();
    }
}

pub(crate) struct Topic {
    pub(crate) name: String,
    pub(crate) log: Log,
    pub(crate) groups: Mutex<HashMap<String, Arc<Group>>>,
    pub(crate) wake: Mutex<u64>,
    pub(crate) wake_cv: Condvar,
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
    pub(crate) fn retain(&self, cfg: &Config) -> Result<()> {
        let groups: Vec<Arc<Group>> = self.groups.lock().values().cloned().collect();
        let mut freed = 0;
        if let Some(min) = groups.iter().map(|g| g.state.lock().committed).min() {
            freed += self.log.delete_before(min)?;
        }
        if cfg.retention_bytes.is_some() || cfg.retention_age_ms.is_some() {
            let deleted = self.log.delete_beyond(
                cfg.retention_bytes,
                cfg.retention_age_ms,
                cfg.clock.now_ms(),
            )?;
            freed += deleted;
            if deleted > 0 {
                let start = self.log.start();
                for g in &groups {
                    let dropped = g.state.lock().drop_below(start);
                    if dropped > 0 {
                        tracing::warn!(topic = %self.name, group = %g.name, dropped, start, "retention deleted unacknowledged messages");
                    }
                }
            }
        }
        if freed > 0 {
            *self.space.lock() += 1;
            self.space_cv.notify_all();
        }
        Ok(())
    }

    /// Appends `msgs`, waiting up to the configured time for retention to free space when
    /// the disk quota is reached (see `QueueBuilder::disk_quota_wait`).
    pub(crate) fn append(&self, cfg: &Config, msgs: &[Message]) -> Result<u64> {
        let Some(wait) = cfg.quota_wait else {
            return self.log.append(msgs);
        };
        let until = Instant::now() + wait;
        loop {
            let seen = *self.space.lock();
            match self.log.append(msgs) {
                Err(Error::QuotaExceeded { .. }) => {}
                other => return other,
            }
            // Age retention frees space without any ack: give it a chance first.
            self.retain(cfg)?;
            let now = Instant::now();
            if now >= until {
                return self.log.append(msgs);
            }
            let mut g = self.space.lock();
            if *g == seen {
                // The cap re-checks retention now and then (age limits need no event).
                let nap = (until - now).min(Duration::from_millis(50));
                self.space_cv.wait_for(&mut g, nap);
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
        self.async_wake.notify_waiters();
    }
}

fn validate_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidName {
            name: name.to_owned(),
        })
    }
}

/// Topic names with segment files among `names`.
fn topics_on_disk(names: &[String]) -> Vec<String> {
    let mut out: Vec<String> = names
        .iter()
        .filter_map(|n| {
            let stem = n.strip_suffix(".seg")?;
            let (topic, base) = stem.rsplit_once('.')?;
            (base.len() == 20 && base.bytes().all(|b| b.is_ascii_digit())).then(|| topic.to_owned())
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

impl Queue {
    /// A builder with the default settings.
    pub fn builder() -> QueueBuilder {
        QueueBuilder::default()
    }

    pub(crate) fn open(dir: Arc<dyn StorageDir>, cfg: Config) -> Result<Self> {
        if !dir.try_lock().map_err(Error::io("lock queue directory"))? {
            return Err(Error::AlreadyOpen);
        }
        let shared = match Self::recover(Arc::clone(&dir), cfg) {
            Ok(s) => s,
            Err(e) => {
                dir.unlock();
                return Err(e);
            }
        };
        let shared = Arc::new(shared);
        if let Durability::Interval(every) = shared.cfg.durability {
            // An error poisons the log; producers see it on their next send.
            spawn_periodic(&shared, "tierkit-mq-fsync", every, |t| {
                let _ = t.log.sync_all();
            })?;
        }
        if shared.cfg.retention_bytes.is_some() || shared.cfg.retention_age_ms.is_some() {
            let cfg = shared.cfg.clone();
            spawn_periodic(
                &shared,
                "tierkit-mq-retention",
                Duration::from_secs(1),
                move |t| {
                    if let Err(e) = t.retain(&cfg) {
                        tracing::warn!(topic = %t.name, error = %e, "retention failed");
                    }
                },
            )?;
        }
        if shared.cfg.write_buffer > 0 {
            // A failed write keeps the records buffered; the next send reports the error.
            spawn_periodic(&shared, "tierkit-mq-write", shared.cfg.write_delay, |t| {
                let _ = t.log.flush_buffer();
            })?;
        }
        Ok(Self { shared })
    }

    fn recover(dir: Arc<dyn StorageDir>, cfg: Config) -> Result<Shared> {
        let names = dir.list().map_err(Error::io("list queue directory"))?;
        for n in names.iter().filter(|n| n.ends_with(".tmp")) {
            dir.remove(n).map_err(Error::io("remove temporary file"))?;
        }
        let mut topics = HashMap::new();
        let mut damage = Vec::new();
        for name in topics_on_disk(&names) {
            let (topic, dmg) = open_topic(&dir, &cfg, &name, &names)?;
            if let Some(d) = dmg {
                damage.push((name.clone(), d));
            }
            topics.insert(name, Arc::new(topic));
        }
        Ok(Shared {
            dir,
            cfg,
            topics: Mutex::new(topics),
            damage,
        })
    }

    /// What recovery cut off the tail of each topic's last segment when this handle opened.
    #[must_use]
    pub fn recovery_report(&self) -> &[(String, TailDamage)] {
        &self.shared.damage
    }

    pub(crate) fn topic(&self, name: &str) -> Result<Arc<Topic>> {
        validate_name(name)?;
        self.topic_unchecked(name)
    }

    /// Opens a topic whose name the crate built itself (dead-letter topics).
    pub(crate) fn topic_unchecked(&self, name: &str) -> Result<Arc<Topic>> {
        let mut topics = self.shared.topics.lock();
        if let Some(t) = topics.get(name) {
            return Ok(Arc::clone(t));
        }
        let names = self
            .shared
            .dir
            .list()
            .map_err(Error::io("list queue directory"))?;
        let (topic, _) = open_topic(&self.shared.dir, &self.shared.cfg, name, &names)?;
        let topic = Arc::new(topic);
        topics.insert(name.to_owned(), Arc::clone(&topic));
        Ok(topic)
    }

    /// A producer for `topic` (created on first use).
    ///
    /// # Errors
    /// [`Error::InvalidName`], or an error creating the topic's first segment.
    pub fn producer(&self, topic: &str) -> Result<Producer> {
        Ok(Producer {
            queue: self.clone(),
            topic: self.topic(topic)?,
        })
    }

    /// A consumer in `group` of `topic`. Consumers of one group share its messages; every group
    /// sees every message.
    ///
    /// # Errors
    /// [`Error::InvalidName`], or an error reading the group's persisted state.
    pub fn consumer(&self, topic: &str, group: &str) -> Result<Consumer> {
        validate_name(group)?;
        let t = self.topic(topic)?;
        let g = {
            let mut groups = t.groups.lock();
            match groups.get(group) {
                Some(g) => Arc::clone(g),
                None => {
                    let mut st = GroupState::load(&*self.shared.dir, topic, group)?;
                    st.clamp(t.log.start(), t.log.end());
                    let g = Arc::new(Group {
                        name: group.to_owned(),
                        state: Mutex::new(st),
                    });
                    groups.insert(group.to_owned(), Arc::clone(&g));
                    g
                }
            }
        };
        Ok(Consumer {
            queue: self.clone(),
            topic: t,
            group: g,
        })
    }

    /// Metrics of `topic` and each of its groups.
    ///
    /// # Errors
    /// [`Error::InvalidName`], or an I/O error reading the oldest unacknowledged message.
    pub fn stats(&self, topic: &str) -> Result<Stats> {
        crate::stats::collect(self, &self.topic(topic)?)
    }

    /// Runs retention on every topic now: deletes segments every consumer group acknowledged
    /// past, and segments beyond the size and age limits
    /// ([`QueueBuilder::retention_bytes`], [`QueueBuilder::retention_age`]). It also runs after
    /// acknowledgements, after segment rolls and (with limits) every second in the background.
    ///
    /// # Errors
    /// [`Error::Io`] deleting a segment or reading a record's time; a failed directory fsync
    /// (which poisons the handle).
    pub fn apply_retention(&self) -> Result<()> {
        let topics: Vec<Arc<Topic>> = self.shared.topics.lock().values().cloned().collect();
        topics.iter().try_for_each(|t| t.retain(&self.shared.cfg))
    }

    /// Writes out the write buffer (see [`QueueBuilder::write_buffer`]) and fsyncs every topic
    /// now, whatever the durability policy.
    ///
    /// # Errors
    /// [`Error::Poisoned`], a write error (the records stay buffered), or the fsync error
    /// (which poisons the handle).
    pub fn flush(&self) -> Result<()> {
        let topics: Vec<Arc<Topic>> = self.shared.topics.lock().values().cloned().collect();
        topics.iter().try_for_each(|t| t.log.sync_all())
    }
}

/// Runs `work` on every topic each `every` on a background thread, until the queue is dropped.
fn spawn_periodic(
    shared: &Arc<Shared>,
    name: &str,
    every: Duration,
    work: impl Fn(&Topic) + Send + 'static,
) -> Result<()> {
    let weak: Weak<Shared> = Arc::downgrade(shared);
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            loop {
                std::thread::sleep(every);
                let Some(shared) = weak.upgrade() else { break };
                let topics: Vec<Arc<Topic>> = shared.topics.lock().values().cloned().collect();
                for t in topics {
                    work(&t);
                }
            }
        })
        .map(drop)
        .map_err(Error::io("spawn background thread"))
}

fn open_topic(
    dir: &Arc<dyn StorageDir>,
    cfg: &Config,
    name: &str,
    names: &[String],
) -> Result<(Topic, Option<TailDamage>)> {
    let lc = LogConfig {
        segment_size: cfg.segment_size,
        max_record: cfg.max_record,
        quota: cfg.quota,
        sync_each_append: matches!(cfg.durability, Durability::Always),
        repair_damaged_tail: cfg.repair_damaged_tail,
        write_buffer: cfg.write_buffer,
    };
    let (log, damage) = Log::open(Arc::clone(dir), name, lc, names)?;
    let mut groups = HashMap::new();
    for g in group::group_files(name, names) {
        // Known groups count for retention even before a consumer attaches.
        let mut st = GroupState::load(&**dir, name, &g)?;
        st.clamp(log.start(), log.end());
        groups.insert(
            g.clone(),
            Arc::new(Group {
                name: g,
                state: Mutex::new(st),
            }),
        );
    }
    let topic = Topic {
        name: name.to_owned(),
        log,
        groups: Mutex::new(groups),
        wake: Mutex::new(0),
        wake_cv: Condvar::new(),
        async_wake: tokio::sync::Notify::new(),
        sleepers: AtomicUsize::new(0),
        space: Mutex::new(0),
        space_cv: Condvar::new(),
    };
    Ok((topic, damage))
}
