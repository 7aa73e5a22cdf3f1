//! Queue configuration.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tierkit_core::{Clock, SystemClock};

use crate::sim::SimDir;
use crate::storage::{StdDir, StorageDir};
use crate::{Durability, Error, Queue, Result};

/// Whole milliseconds of `d`, saturating.
pub(crate) fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The shortest `Durability::Interval` accepted: an fsync takes 0.1 to 10 ms on real disks, so a
/// shorter period only queues fsyncs behind each other.
const MIN_SYNC_INTERVAL: Duration = Duration::from_millis(1);

/// Validated queue settings.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) durability: Durability,
    pub(crate) segment_size: u64,
    pub(crate) max_record: usize,
    pub(crate) quota: Option<u64>,
    pub(crate) visibility_ms: u64,
    pub(crate) max_deliveries: u32,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) repair_damaged_tail: bool,
    /// Write-buffer size in bytes (0: every append is written at once).
    pub(crate) write_buffer: usize,
    /// Longest time a record waits in the write buffer.
    pub(crate) write_delay: Duration,
    /// Size retention: delete the oldest segments beyond this many bytes per topic.
    pub(crate) retention_bytes: Option<u64>,
    /// Age retention: delete segments whose newest record is older than this.
    pub(crate) retention_age_ms: Option<u64>,
    /// How long a send waits for space when the disk quota is reached (`None`: fail at once).
    pub(crate) quota_wait: Option<Duration>,
    /// Inspect only: nothing is written, created, cut or deleted.
    pub(crate) read_only: bool,
}

/// Builds a [`Queue`].
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use tierkit_mq::{Durability, Queue};
/// let queue = Queue::builder()
///     .durability(Durability::Never)
///     .segment_size(1 << 20)
///     .visibility_timeout(Duration::from_secs(30))
///     .max_deliveries(5)
///     .build_in_memory()?;
/// # drop(queue);
/// # Ok::<(), tierkit_mq::Error>(())
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct QueueBuilder {
    cfg: Config,
}

impl Default for QueueBuilder {
    fn default() -> Self {
        Self {
            cfg: Config {
                durability: Durability::Always,
                segment_size: 64 << 20,
                max_record: 16 << 20,
                quota: None,
                visibility_ms: 30_000,
                max_deliveries: 10,
                clock: Arc::new(SystemClock),
                repair_damaged_tail: false,
                write_buffer: 0,
                write_delay: Duration::from_millis(1),
                retention_bytes: None,
                retention_age_ms: None,
                quota_wait: None,
                read_only: false,
            },
        }
    }
}

impl QueueBuilder {
    /// Durability policy for every topic (default [`Durability::Always`]).
    pub fn durability(mut self, d: Durability) -> Self {
        self.cfg.durability = d;
        self
    }

    /// Segment files roll when they would exceed this many bytes (default 64 MiB).
    pub fn segment_size(mut self, bytes: u64) -> Self {
        self.cfg.segment_size = bytes;
        self
    }

    /// Largest encoded record accepted (default 16 MiB); larger sends fail with
    /// [`Error::Oversize`].
    pub fn max_record_size(mut self, bytes: usize) -> Self {
        self.cfg.max_record = bytes;
        self
    }

    /// Refuse sends with [`Error::QuotaExceeded`] once a topic's log holds this many bytes
    /// (at once, or after waiting: see [`QueueBuilder::disk_quota_wait`]). Must be at least one
    /// segment header (16 bytes); 0 is refused by `build`.
    pub fn disk_quota(mut self, bytes: u64) -> Self {
        self.cfg.quota = Some(bytes);
        self
    }

    /// Backpressure instead of an immediate error: a send that would pass the
    /// [disk quota](QueueBuilder::disk_quota) blocks for up to `timeout` until retention frees
    /// space (consumer groups acknowledging whole segments, or size/age retention), then fails
    /// with [`Error::QuotaExceeded`] if there is still none. `Duration::MAX` waits without a
    /// deadline. The async sends wait on tokio's blocking pool, not on the runtime's threads.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use tierkit_mq::Queue;
    /// let queue = Queue::builder()
    ///     .disk_quota(10 << 30)
    ///     .disk_quota_wait(Duration::from_secs(5)) // slow producers down, then give up
    ///     .build_in_memory()?;
    /// # drop(queue);
    /// # Ok::<(), tierkit_mq::Error>(())
    /// ```
    pub fn disk_quota_wait(mut self, timeout: Duration) -> Self {
        self.cfg.quota_wait = Some(timeout);
        self
    }

    /// How long a delivery stays invisible to other consumers before it is redelivered
    /// (default 30 s; at least 1 ms).
    pub fn visibility_timeout(mut self, d: Duration) -> Self {
        self.cfg.visibility_ms = duration_ms(d);
        self
    }

    /// Deliveries after which a message goes to the group's dead-letter topic (default 10).
    pub fn max_deliveries(mut self, n: u32) -> Self {
        self.cfg.max_deliveries = n;
        self
    }

    /// What to do when the last segment has a damaged record FOLLOWED by intact ones. That is
    /// not a torn write (a crash tears only the end), so by default opening fails with
    /// [`Error::Corrupt`] and nothing is cut: intact records after the damage may include
    /// messages whose send returned. Set `true` to cut the log at the damage anyway (losing the
    /// records after it; the recovery report says how many bytes), for example after checking
    /// the file by hand. A damaged record with nothing intact after it is always cut and
    /// reported: that is what a crash mid-write leaves.
    pub fn repair_damaged_tail(mut self, repair: bool) -> Self {
        self.cfg.repair_damaged_tail = repair;
        self
    }

    /// Gathers appends in memory and hands them to the OS in one write when `max_bytes` are
    /// waiting, when the oldest has waited `max_delay` (a background thread), before every
    /// fsync and segment roll, on [`Queue::flush`] and when the queue is dropped. Off by
    /// default: every append is one `write` system call.
    ///
    /// What it changes: a `send` no longer costs a system call (about 0.5 us here), so small
    /// messages go several times faster under [`Durability::Never`] and
    /// [`Durability::Interval`]; the price is that a **process crash** (kill -9, abort) now
    /// loses the sends of at most the last `max_delay` or `max_bytes`, as a power loss would.
    /// Losses are still a suffix of the log (never a hole), and consumers may already have
    /// received a message that such a crash then loses. Under [`Durability::Always`] nothing
    /// changes for durability: a send still returns only after the fsync that follows the
    /// write, and concurrent producers then also share the write.
    ///
    /// A failed buffered write keeps the buffered records for the next attempt and fails the
    /// send that triggered it; the queue is not poisoned (only a failed fsync poisons it).
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use tierkit_mq::{Durability, Message, Queue};
    /// let queue = Queue::builder()
    ///     .durability(Durability::Never)
    ///     .write_buffer(64 << 10, Duration::from_millis(2))
    ///     .build_in_memory()?;
    /// let producer = queue.producer("clicks")?;
    /// let offset = producer.send(Message::new("home"))?;
    /// queue.flush()?; // buffered records reach the OS (and the disk) now
    /// # let _ = offset;
    /// # Ok::<(), tierkit_mq::Error>(())
    /// ```
    pub fn write_buffer(mut self, max_bytes: usize, max_delay: Duration) -> Self {
        self.cfg.write_buffer = max_bytes;
        self.cfg.write_delay = max_delay;
        self
    }

    /// Size retention: once a topic's segments hold more than `bytes`, the oldest segments are
    /// deleted **even if consumer groups have not acknowledged them** (Kafka's
    /// `retention.bytes`). Off by default: segments are then deleted only when every group has
    /// acknowledged past them, and [`QueueBuilder::disk_quota`] is what stops a stuck group
    /// from filling the disk.
    ///
    /// The active segment is never deleted, so a topic may hold up to one segment more than
    /// `bytes`. 0 is refused by `build` (use a small positive limit to keep only the active
    /// segment). Retention runs after every segment roll, after acknowledgements, every second in
    /// the background and on [`Queue::apply_retention`]. A group that loses unacknowledged
    /// messages this way skips them; they are counted in
    /// [`GroupStats::retention_dropped`](crate::GroupStats::retention_dropped) and logged as a
    /// `tracing` warning.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use tierkit_mq::Queue;
    /// let queue = Queue::builder()
    ///     .segment_size(16 << 20)
    ///     .retention_bytes(1 << 30) // keep about 1 GiB per topic
    ///     .retention_age(Duration::from_secs(7 * 24 * 3600)) // and at most a week
    ///     .build_in_memory()?;
    /// # drop(queue);
    /// # Ok::<(), tierkit_mq::Error>(())
    /// ```
    pub fn retention_bytes(mut self, bytes: u64) -> Self {
        self.cfg.retention_bytes = Some(bytes);
        self
    }

    /// Age retention: a segment whose newest message was sent more than `age` ago (by the
    /// queue's [`Clock`]) is deleted, acknowledged or not (Kafka's `retention.ms`). See
    /// [`QueueBuilder::retention_bytes`] for when retention runs and what groups see.
    pub fn retention_age(mut self, age: Duration) -> Self {
        self.cfg.retention_age_ms = Some(duration_ms(age));
        self
    }

    /// The clock (default: the system clock). The queue reads wall-clock time from
    /// [`Clock::unix_millis`] for message timestamps, not-before times, visibility timeouts,
    /// nack delays and age retention; a [`ManualClock`](crate::ManualClock) drives them in tests.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.cfg.clock = Arc::new(clock);
        self
    }

    /// Opens the queue for inspection only: no lock file, segment, journal or state file is
    /// created, cut or deleted, so it works on a read-only mount (and on a copy being
    /// examined). Damage is reported in the [recovery report](Queue::recovery_report) but not
    /// repaired; reads stop before it. Producers, acknowledgements, retention and `flush` fail
    /// with [`Error::ReadOnly`]. The directory is locked shared: it cannot be opened read-only
    /// while a writer holds it, nor for writing while an inspector does.
    ///
    /// # Examples
    /// ```
    /// use tierkit_mq::{Error, Message, Queue};
    /// # let dir = std::env::temp_dir().join(format!("tierkit-mq-ro-doc-{}", std::process::id()));
    /// drop(Queue::builder().build(&dir)?.producer("jobs")?.send(Message::new("x"))?);
    /// let inspector = Queue::builder().read_only(true).build(&dir)?;
    /// assert_eq!(inspector.stats("jobs")?.log_end, 1);
    /// assert!(matches!(inspector.producer("jobs"), Err(Error::ReadOnly { .. })));
    /// # drop(inspector);
    /// # std::fs::remove_dir_all(&dir).ok();
    /// # Ok::<(), tierkit_mq::Error>(())
    /// ```
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.cfg.read_only = read_only;
        self
    }

    fn validate(&self) -> Result<()> {
        let c = &self.cfg;
        let invalid = |what, expected, got| {
            Err(Error::InvalidConfig {
                what,
                expected,
                got,
            })
        };
        if c.max_record < 64 {
            return invalid("max_record_size", "at least 64", c.max_record as u64);
        }
        if c.max_record > u32::MAX as usize {
            return invalid("max_record_size", "at most 4 GiB", c.max_record as u64);
        }
        if c.segment_size < 4096 {
            return invalid("segment_size", "at least 4096", c.segment_size);
        }
        if c.quota.is_some_and(|q| q < 16) {
            return invalid(
                "disk_quota",
                "at least 16 bytes (one segment header)",
                c.quota.unwrap_or(0),
            );
        }
        if c.retention_bytes == Some(0) {
            return invalid("retention_bytes", "at least 1", 0);
        }
        if c.max_deliveries == 0 {
            return invalid("max_deliveries", "at least 1", 0);
        }
        if c.visibility_ms == 0 {
            return invalid("visibility_timeout", "at least 1 ms", 0);
        }
        if c.retention_age_ms == Some(0) {
            return invalid("retention_age", "at least 1 ms", 0);
        }
        if c.write_buffer > (1 << 30) {
            return invalid("write_buffer bytes", "at most 1 GiB", c.write_buffer as u64);
        }
        if c.write_buffer > 0 && c.write_delay < Duration::from_micros(100) {
            let micros = u64::try_from(c.write_delay.as_micros()).unwrap_or(u64::MAX);
            return invalid("write_buffer delay (us)", "at least 100 us", micros);
        }
        if let Durability::Interval(d) = c.durability
            && d < MIN_SYNC_INTERVAL
        {
            let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
            return invalid("durability interval (us)", "at least 1 ms", micros);
        }
        Ok(())
    }

    /// Opens (recovering) or creates the queue in the directory `path`.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`], [`Error::AlreadyOpen`] if another handle holds the directory,
    /// [`Error::Corrupt`] / [`Error::IncompatibleVersion`] for damaged files, [`Error::Io`].
    pub fn build(self, path: impl AsRef<Path>) -> Result<Queue> {
        self.validate()?;
        let dir = if self.cfg.read_only {
            StdDir::read_only(path).map_err(Error::io("open queue directory"))?
        } else {
            StdDir::new(path).map_err(Error::io("create queue directory"))?
        };
        Queue::open(Arc::new(dir), self.cfg)
    }

    /// Opens the queue over any [`StorageDir`] (for example a `SimDir`, feature `sim`).
    ///
    /// # Errors
    /// As [`QueueBuilder::build`].
    pub fn build_with(self, dir: Arc<dyn StorageDir>) -> Result<Queue> {
        self.validate()?;
        Queue::open(dir, self.cfg)
    }

    /// A queue held in memory: the same API, nothing survives the process.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`].
    pub fn build_in_memory(self) -> Result<Queue> {
        self.build_with(SimDir::new().handle())
    }
}
