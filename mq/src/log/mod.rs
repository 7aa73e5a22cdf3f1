//! The segmented append-only log of one topic.
//!
//! - `segment.rs`: segment files, their names and headers, atomic creation (rolls);
//! - `append.rs`: appends, the write buffer, rolls and background pre-syncs;
//! - `sync.rs`: group commit;
//! - `read.rs`: reading a record back;
//! - `retention.rs`: deleting old segments;
//! - recovery of a segment at open lives in `crate::recovery`.

mod append;
mod read;
mod retention;
mod segment;
mod sync;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;

use bytes::BytesMut;
use parking_lot::{Condvar, Mutex};

use crate::recovery::{Recovered, recover_segment};
use crate::report::{RecoveryReport, Repair};
use crate::storage::{StorageDir, StorageFile};
use crate::{Error, Result};

pub(crate) use segment::{FORMAT_VERSION, MAGIC, SEG_HEADER, segment_files};

#[derive(Debug, Clone, Copy)]
pub(crate) struct LogConfig {
    pub(crate) segment_size: u64,
    pub(crate) max_record: usize,
    pub(crate) quota: Option<u64>,
    pub(crate) sync_each_append: bool,
    /// Cut the last segment even at damage followed by intact records.
    pub(crate) repair_damaged_tail: bool,
    /// Gather appends in memory up to this many bytes before writing (0: write each append).
    pub(crate) write_buffer: usize,
    /// Inspect only: never write, truncate or create anything.
    pub(crate) read_only: bool,
}

pub(crate) struct Segment {
    pub(crate) name: String,
    pub(crate) base: u64,
    pub(crate) file: Arc<dyn StorageFile>,
    /// Byte position of each record, indexed by `offset - base`.
    pub(crate) positions: Vec<u64>,
    pub(crate) size: u64,
}

struct Inner {
    segments: BTreeMap<u64, Segment>,
    next_offset: u64,
    total_bytes: u64,
    buf: BytesMut,
    /// Bytes written to the active segment since its last fsync was started.
    unsynced: u64,
    /// Encoded records at the end of the last segment not yet handed to the OS (write buffer).
    /// The segment's `size` and `positions` already count them.
    pending: BytesMut,
}

impl Inner {
    fn active(&self) -> &Segment {
        self.segments
            .values()
            .next_back()
            .expect("invariant: a log has a segment")
    }
}

/// Why the log refuses writes, once something that cannot be retried failed.
#[derive(Debug, Default)]
pub(crate) struct Poison {
    set: AtomicBool,
    op: OnceLock<&'static str>,
}

impl Poison {
    pub(crate) fn set(&self, op: &'static str) {
        let _ = self.op.set(op);
        self.set.store(true, Ordering::SeqCst);
    }

    pub(crate) fn check(&self) -> Result<()> {
        if self.set.load(Ordering::SeqCst) {
            Err(Error::Poisoned {
                op: self.op.get().copied().unwrap_or("an fsync"),
            })
        } else {
            Ok(())
        }
    }
}

pub(crate) struct Log {
    dir: Arc<dyn StorageDir>,
    topic: String,
    cfg: LogConfig,
    inner: Mutex<Inner>,
    /// Whether a group-commit leader is fsyncing now.
    sync_lock: Mutex<bool>,
    sync_cv: Condvar,
    durable_end: AtomicU64,
    poison: Arc<Poison>,
    syncs: AtomicU64,
    /// Whether a background write-back fsync (see `append::PRESYNC_BYTES`) is running.
    presyncing: Arc<AtomicBool>,
    /// The last background pre-sync thread, joined on shutdown.
    presync_thread: Mutex<Option<JoinHandle<()>>>,
    /// Set by a segment roll, taken by the producer (which then runs retention).
    rolled: AtomicBool,
}

impl fmt::Debug for Log {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Log")
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

impl Log {
    /// Opens (recovering) or creates the log of `topic`; repairs go to `report`.
    pub(crate) fn open(
        dir: Arc<dyn StorageDir>,
        topic: &str,
        cfg: LogConfig,
        names: &[String],
        report: &mut RecoveryReport,
    ) -> Result<Self> {
        let files = segment_files(topic, names);
        let last_base = files.keys().next_back().copied();
        let mut segments = BTreeMap::new();
        let mut next: Option<u64> = None;
        let mut headerless = None;
        for (&base, name) in &files {
            if let Some(expected) = next
                && expected != base
            {
                return Err(Error::Corrupt {
                    file: name.clone(),
                    position: 0,
                    offset: expected,
                    reason: "segment does not start where the previous one ends",
                });
            }
            let file = dir.open(name, false).map_err(Error::io("open segment"))?;
            let is_last = Some(base) == last_base;
            match recover_segment(name, base, file, &cfg, is_last)? {
                Recovered::Segment {
                    segment,
                    end,
                    damage,
                } => {
                    if let Some(damage) = damage {
                        report.push(Repair::SegmentTail {
                            topic: topic.to_owned(),
                            file: name.clone(),
                            damage,
                        });
                    }
                    next = Some(end);
                    segments.insert(base, segment);
                }
                // Only the last segment gets here (earlier ones are `Corrupt`).
                Recovered::Headerless { bytes } => headerless = Some((base, name.clone(), bytes)),
            }
        }
        let next_offset = next.or(headerless.as_ref().map(|h| h.0)).unwrap_or(0);
        if let Some((_, name, bytes)) = headerless {
            if !cfg.read_only {
                dir.remove(&name)
                    .map_err(Error::io("remove headerless segment"))?;
                dir.sync_dir()
                    .map_err(Error::io("fsync directory after removing a segment"))?;
            }
            report.push(Repair::HeaderlessSegment {
                topic: topic.to_owned(),
                file: name,
                bytes,
            });
        }
        let total_bytes = segments.values().map(|s| s.size).sum();
        let log = Self {
            dir,
            topic: topic.to_owned(),
            cfg,
            inner: Mutex::new(Inner {
                segments,
                next_offset,
                total_bytes,
                buf: BytesMut::new(),
                unsynced: 0,
                pending: BytesMut::new(),
            }),
            sync_lock: Mutex::new(false),
            sync_cv: Condvar::new(),
            durable_end: AtomicU64::new(next_offset),
            poison: Arc::new(Poison::default()),
            presyncing: Arc::new(AtomicBool::new(false)),
            presync_thread: Mutex::new(None),
            rolled: AtomicBool::new(false),
            syncs: AtomicU64::new(0),
        };
        {
            let mut inner = log.inner.lock();
            if inner.segments.is_empty() {
                if cfg.read_only {
                    return Err(Error::ReadOnly {
                        op: "creating a topic",
                    });
                }
                log.create_segment(&mut inner, next_offset)?;
            }
        }
        Ok(log)
    }

    fn poison(&self, e: std::io::Error, op: &'static str) -> Error {
        self.poison.set(op);
        tracing::error!(topic = %self.topic, error = %e, op, "queue handle poisoned");
        Error::Io { op, source: e }
    }

    pub(crate) fn mark_poisoned(&self, op: &'static str) {
        self.poison.set(op);
    }

    pub(crate) fn check_poison(&self) -> Result<()> {
        self.poison.check()
    }

    /// Refuses writes to a read-only queue or a poisoned handle.
    pub(crate) fn check_writable(&self, op: &'static str) -> Result<()> {
        if self.cfg.read_only {
            return Err(Error::ReadOnly { op });
        }
        self.check_poison()
    }

    /// Offset of the next append.
    pub(crate) fn end(&self) -> u64 {
        self.inner.lock().next_offset
    }

    /// Offset up to which records are known durable.
    pub(crate) fn durable_end(&self) -> u64 {
        self.durable_end.load(Ordering::Acquire)
    }

    /// Lowest offset still stored.
    pub(crate) fn start(&self) -> u64 {
        self.inner
            .lock()
            .segments
            .keys()
            .next()
            .copied()
            .unwrap_or(0)
    }

    pub(crate) fn fsyncs(&self) -> u64 {
        self.syncs.load(Ordering::Relaxed)
    }

    pub(crate) fn bytes(&self) -> u64 {
        self.inner.lock().total_bytes
    }

    /// Whether a segment rolled since the last call.
    pub(crate) fn take_rolled(&self) -> bool {
        // A plain load first: every send asks, and a swap would be an atomic write per send.
        self.rolled.load(Ordering::Relaxed) && self.rolled.swap(false, Ordering::Relaxed)
    }

    /// Waits for a running background pre-sync to finish (the queue is closing).
    pub(crate) fn join_background(&self) {
        if let Some(t) = self.presync_thread.lock().take() {
            let _ = t.join();
        }
    }
}
