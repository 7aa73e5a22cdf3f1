//! The queue handle: a directory of topics.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::background::Background;
use crate::builder::Config;
use crate::group::GroupState;
use crate::report::RecoveryReport;
use crate::storage::StorageDir;
use crate::topic::{Group, Topic, open_topic};
use crate::{Consumer, Durability, Error, Producer, QueueBuilder, Result, Stats};

/// A durable queue: a directory holding topics, each an append-only log with consumer groups.
///
/// Cloning is cheap and shares the queue. See the crate docs for the delivery guarantees.
/// When the last clone (and every producer and consumer made from it) is dropped, the
/// background threads are woken and joined, the write buffer is written, the log fsynced
/// (unless `Never`) and the directory lock released, in that order, before `drop` returns: the
/// directory can be opened again at once.
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
    /// Dropped with the last handle: stops the background threads, then closes the queue.
    _owner: Arc<Owner>,
}

impl fmt::Debug for Queue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue")
            .field("dir", &self.shared.dir)
            .finish_non_exhaustive()
    }
}

/// What background threads may hold: never the [`Owner`], so the last user handle always
/// closes the queue on the user's thread.
pub(crate) struct Shared {
    pub(crate) dir: Arc<dyn StorageDir>,
    pub(crate) cfg: Config,
    pub(crate) topics: Mutex<HashMap<String, Arc<Topic>>>,
    report: RecoveryReport,
}

impl Shared {
    pub(crate) fn topics(&self) -> Vec<Arc<Topic>> {
        self.topics.lock().values().cloned().collect()
    }
}

struct Owner {
    shared: Arc<Shared>,
    background: Background,
}

impl Drop for Owner {
    fn drop(&mut self) {
        // Background threads first: none may touch the directory after the lock is released.
        self.background.stop_and_join();
        let shared = &self.shared;
        let topics = shared.topics();
        if !shared.cfg.read_only {
            for t in &topics {
                if let Err(e) = t.log.flush_buffer() {
                    tracing::error!(topic = %t.name, error = %e, "final write of the write buffer failed");
                }
            }
            if !matches!(shared.cfg.durability, Durability::Never) {
                for t in &topics {
                    if let Err(e) = t.log.sync_all() {
                        tracing::error!(topic = %t.name, error = %e, "final fsync failed");
                    }
                }
            }
        }
        for t in &topics {
            t.log.join_background();
        }
        shared.dir.unlock();
    }
}

/// Whether `name` is a topic or group name a user may choose: 1 to 64 of `[A-Za-z0-9_-]`.
fn plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn invalid(name: &str) -> Error {
    Error::InvalidName {
        name: name.to_owned(),
    }
}

/// A topic name: a plain name, or a dead-letter topic `<topic>.<group>.dlq` (which no plain
/// name can equal, since plain names have no dots).
fn validate_topic(name: &str) -> Result<()> {
    let mut rest = name;
    while let Some(stem) = rest.strip_suffix(".dlq") {
        let Some((topic, group)) = stem.rsplit_once('.') else {
            return Err(invalid(name));
        };
        if !plain_name(group) {
            return Err(invalid(name));
        }
        rest = topic;
    }
    if plain_name(rest) {
        Ok(())
    } else {
        Err(invalid(name))
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

    /// The name of the dead-letter topic of `group` on `topic`: `<topic>.<group>.dlq`. The dot
    /// keeps it apart from every topic a user can name.
    ///
    /// # Examples
    /// ```
    /// use tierkit_mq::Queue;
    /// assert_eq!(Queue::dead_letter_topic("photos", "resizers"), "photos.resizers.dlq");
    /// ```
    #[must_use]
    pub fn dead_letter_topic(topic: &str, group: &str) -> String {
        format!("{topic}.{group}.dlq")
    }

    pub(crate) fn open(dir: Arc<dyn StorageDir>, cfg: Config) -> Result<Self> {
        let locked = if cfg.read_only {
            dir.try_lock_shared()
        } else {
            dir.try_lock()
        };
        if !locked.map_err(Error::io("lock queue directory"))? {
            return Err(Error::AlreadyOpen);
        }
        let shared = match Self::recover(Arc::clone(&dir), cfg) {
            Ok(s) => Arc::new(s),
            Err(e) => {
                dir.unlock();
                return Err(e);
            }
        };
        let background = match Background::start(&shared) {
            Ok(b) => b,
            Err(e) => {
                dir.unlock();
                return Err(e);
            }
        };
        let owner = Arc::new(Owner {
            shared: Arc::clone(&shared),
            background,
        });
        Ok(Self {
            shared,
            _owner: owner,
        })
    }

    fn recover(dir: Arc<dyn StorageDir>, cfg: Config) -> Result<Shared> {
        let names = dir.list().map_err(Error::io("list queue directory"))?;
        if !cfg.read_only {
            // Interrupted atomic writes (segment rolls, snapshots): never data.
            for n in names.iter().filter(|n| n.ends_with(".tmp")) {
                dir.remove(n).map_err(Error::io("remove temporary file"))?;
            }
        }
        let mut topics = HashMap::new();
        let mut report = RecoveryReport::default();
        for name in topics_on_disk(&names) {
            let topic = open_topic(&dir, &cfg, &name, &names, &mut report)?;
            topics.insert(name, Arc::new(topic));
        }
        Ok(Shared {
            dir,
            cfg,
            topics: Mutex::new(topics),
            report,
        })
    }

    /// Everything recovery found and repaired when this handle opened the directory: cut
    /// segment tails, removed headerless segments, damaged or missing journal and state files,
    /// missing messages. Empty ([`RecoveryReport::is_clean`]) after a clean shutdown.
    #[must_use]
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.shared.report
    }

    pub(crate) fn topic(&self, name: &str) -> Result<Arc<Topic>> {
        validate_topic(name)?;
        let mut topics = self.shared.topics.lock();
        if let Some(t) = topics.get(name) {
            return Ok(Arc::clone(t));
        }
        let names = self
            .shared
            .dir
            .list()
            .map_err(Error::io("list queue directory"))?;
        // A new topic has no files: nothing to recover or report.
        let mut report = RecoveryReport::default();
        let topic = open_topic(
            &self.shared.dir,
            &self.shared.cfg,
            name,
            &names,
            &mut report,
        )?;
        let topic = Arc::new(topic);
        topics.insert(name.to_owned(), Arc::clone(&topic));
        Ok(topic)
    }

    /// A producer for `topic` (created on first use).
    ///
    /// # Errors
    /// [`Error::InvalidName`], [`Error::ReadOnly`], or an error creating the topic's first
    /// segment.
    pub fn producer(&self, topic: &str) -> Result<Producer> {
        if self.shared.cfg.read_only {
            return Err(Error::ReadOnly { op: "producing" });
        }
        Ok(Producer {
            queue: self.clone(),
            topic: self.topic(topic)?,
        })
    }

    /// A consumer in `group` of `topic`. Consumers of one group share its messages; every group
    /// sees every message. On a read-only queue, consumers receive but cannot acknowledge.
    ///
    /// # Errors
    /// [`Error::InvalidName`], or an error reading the group's persisted state.
    pub fn consumer(&self, topic: &str, group: &str) -> Result<Consumer> {
        if !plain_name(group) {
            return Err(invalid(group));
        }
        let t = self.topic(topic)?;
        let g = {
            let mut groups = t.groups.lock();
            match groups.get(group) {
                Some(g) => Arc::clone(g),
                None => {
                    // A group without files is new: it starts at the oldest stored message.
                    let mut st = GroupState::default();
                    st.clamp(t.log.start(), t.log.end());
                    let g = Arc::new(Group::new(group, st));
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
        let topics = self.shared.topics();
        topics.iter().try_for_each(|t| t.retain(&self.shared.cfg))
    }

    /// Writes out the write buffer (see [`QueueBuilder::write_buffer`]) and fsyncs every topic
    /// now, whatever the durability policy.
    ///
    /// # Errors
    /// [`Error::Poisoned`], [`Error::ReadOnly`], a write error (the records stay buffered), or
    /// the fsync error (which poisons the handle).
    pub fn flush(&self) -> Result<()> {
        if self.shared.cfg.read_only {
            return Err(Error::ReadOnly { op: "flush" });
        }
        let topics = self.shared.topics();
        topics.iter().try_for_each(|t| t.log.sync_all())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_letter_topics_never_equal_a_plain_topic() {
        assert!(validate_topic("t").is_ok());
        assert!(validate_topic("t-g-dlq").is_ok());
        assert!(validate_topic(&Queue::dead_letter_topic("t", "g")).is_ok());
        assert!(validate_topic("t.g.dlq.h.dlq").is_ok());
        for bad in [
            "",
            ".g.dlq",
            "t..dlq",
            "t.g",
            "t.g.dlq.x",
            "a/b",
            "t.g.dlq.",
        ] {
            assert!(validate_topic(bad).is_err(), "{bad:?}");
        }
        // Two different (topic, group) pairs never share a dead-letter topic.
        assert_ne!(
            Queue::dead_letter_topic("a-b", "c"),
            Queue::dead_letter_topic("a", "b-c")
        );
    }
}
