//! The segmented append-only log of one topic: recovery, appends, group commit, retention.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use bytes::{Bytes, BytesMut};
use parking_lot::{Condvar, Mutex};

use crate::record::{self, HEADER_LEN};
use crate::recovery::recover_segment;
use crate::storage::{StorageDir, StorageFile};
use crate::{Error, Message, Result};

pub(crate) const MAGIC: &[u8; 4] = b"TKMQ";
/// The segment format version this build reads and writes.
pub(crate) const FORMAT_VERSION: u32 = 2;
pub(crate) const SEG_HEADER: u64 = 16;

/// What recovery cut off the tail of the last segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct TailDamage {
    /// The offset the first discarded record would have had.
    pub offset: u64,
    /// How many bytes were cut.
    pub bytes: u64,
    /// Why the first cut record was rejected.
    pub reason: &'static str,
    /// `true` when an intact record followed the damaged one: the damage is probably not a
    /// torn write (bit rot, or an unsynced write whose pages reached the disk out of order).
    /// The records after it were cut with it; with `Durability::Always` a torn write never
    /// sets this for records whose send returned.
    pub intact_records_after: bool,
}

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

pub(crate) struct Log {
    dir: Arc<dyn StorageDir>,
    topic: String,
    cfg: LogConfig,
    inner: Mutex<Inner>,
    /// Whether a group-commit leader is fsyncing now.
    sync_lock: Mutex<bool>,
    sync_cv: Condvar,
    durable_end: AtomicU64,
    poisoned: Arc<AtomicBool>,
    syncs: AtomicU64,
    /// Whether a background write-back fsync (see `PRESYNC_BYTES`) is running.
    presyncing: Arc<AtomicBool>,
    /// Set by a segment roll, taken by the producer (which then runs retention).
    rolled: AtomicBool,
}

/// Without per-append fsyncs, the active segment is fsynced in the background after every
/// this many written bytes, so the fsync that a segment roll must wait for (only the last
/// segment may ever be torn) finds little left to write. It only adds durability.
const PRESYNC_BYTES: u64 = 8 << 20;

impl fmt::Debug for Log {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Log")
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

fn seg_name(topic: &str, base: u64) -> String {
    format!("{topic}.{base:020}.seg")
}

pub(crate) fn seg_header(base: u64) -> [u8; 16] {
    let mut h = [0u8; 16];
    h[..4].copy_from_slice(MAGIC);
    h[4..8].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h[8..].copy_from_slice(&base.to_le_bytes());
    h
}

/// Segment files of `topic` among `names`, by base offset.
pub(crate) fn segment_files(topic: &str, names: &[String]) -> BTreeMap<u64, String> {
    let prefix = format!("{topic}.");
    names
        .iter()
        .filter_map(|n| {
            let mid = n.strip_prefix(&prefix)?.strip_suffix(".seg")?;
            (mid.len() == 20).then(|| mid.parse::<u64>().ok().map(|b| (b, n.clone())))?
        })
        .collect()
}

impl Log {
    /// Opens (recovering) or creates the log of `topic`.
    pub(crate) fn open(
        dir: Arc<dyn StorageDir>,
        topic: &str,
        cfg: LogConfig,
        names: &[String],
    ) -> Result<(Self, Option<TailDamage>)> {
        let files = segment_files(topic, names);
        let last_base = files.keys().next_back().copied();
        let mut segments = BTreeMap::new();
        let mut next: Option<u64> = None;
        let mut damage = None;
        for (&base, name) in &files {
            let file = dir.open(name, false).map_err(Error::io("open segment"))?;
            let is_last = Some(base) == last_base;
            let (seg, end, dmg) = recover_segment(name, base, file, &cfg, is_last)?;
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
            damage = damage.or(dmg);
            next = Some(end);
            segments.insert(base, seg);
        }
        let next_offset = next.unwrap_or(0);
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
            poisoned: Arc::new(AtomicBool::new(false)),
            presyncing: Arc::new(AtomicBool::new(false)),
            rolled: AtomicBool::new(false),
            syncs: AtomicU64::new(0),
        };
        if log.inner.lock().segments.is_empty() {
            let mut inner = log.inner.lock();
            log.create_segment(&mut inner, next_offset)?;
        }
        if let Some(d) = damage {
            tracing::warn!(
                topic,
                offset = d.offset,
                bytes = d.bytes,
                "truncated torn log tail"
            );
        }
        Ok((log, damage))
    }

    fn poison(&self, e: std::io::Error, op: &'static str) -> Error {
        self.poisoned.store(true, Ordering::SeqCst);
        tracing::error!(topic = %self.topic, error = %e, op, "fsync failed; queue handle poisoned");
        Error::Io { op, source: e }
    }

    pub(crate) fn mark_poisoned(&self) {
        self.poisoned.store(true, Ordering::SeqCst);
    }

    pub(crate) fn check_poison(&self) -> Result<()> {
        if self.poisoned.load(Ordering::SeqCst) {
            Err(Error::Poisoned)
        } else {
            Ok(())
        }
    }

    fn create_segment(&self, inner: &mut Inner, base: u64) -> Result<()> {
        let name = seg_name(&self.topic, base);
        let file = self
            .dir
            .open(&name, true)
            .map_err(Error::io("create segment"))?;
        file.truncate(0).map_err(Error::io("create segment"))?;
        file.append(&seg_header(base))
            .map_err(Error::io("create segment"))?;
        file.sync()
            .map_err(|e| self.poison(e, "fsync new segment"))?;
        self.dir
            .sync_dir()
            .map_err(|e| self.poison(e, "fsync directory"))?;
        inner.total_bytes += SEG_HEADER;
        inner.segments.insert(
            base,
            Segment {
                name,
                base,
                file,
                positions: Vec::new(),
                size: SEG_HEADER,
            },
        );
        Ok(())
    }

    /// Appends `msgs` and returns the offset of the first; makes them durable if configured.
    pub(crate) fn append(&self, msgs: &[Message]) -> Result<u64> {
        self.check_poison()?;
        let mut inner = self.inner.lock();
        let first = inner.next_offset;
        // Sizes of validated records (checked here, recomputed below without allocating).
        let size_of = |m: &Message| (HEADER_LEN + record::body_len(m)) as u64;
        let mut batch = 0u64;
        for m in msgs {
            record::encoded_len(m)
                .filter(|s| *s <= self.cfg.max_record)
                .ok_or_else(|| oversize(m, self.cfg.max_record))?;
            batch += size_of(m);
        }
        if let Some(quota) = self.cfg.quota
            && inner.total_bytes + batch > quota
        {
            return Err(Error::QuotaExceeded {
                used: inner.total_bytes,
                quota,
                message: Box::new(msgs.first().cloned().unwrap_or_default()),
            });
        }
        let buffered = self.cfg.write_buffer > 0;
        let mut i = 0;
        while i < msgs.len() {
            let (seg_size, seg_records) = {
                let seg = inner
                    .segments
                    .values()
                    .next_back()
                    .expect("invariant: a log has a segment");
                (seg.size, seg.positions.len())
            };
            if seg_records > 0 && seg_size + size_of(&msgs[i]) > self.cfg.segment_size {
                self.roll(&mut inner)?;
                continue;
            }
            let Inner {
                segments,
                next_offset,
                total_bytes,
                buf: scratch,
                unsynced,
                pending,
            } = &mut *inner;
            // Encode into the write buffer (after the records already waiting there) or into
            // the scratch buffer, which is written at once.
            let buf = if buffered {
                pending
            } else {
                scratch.clear();
                scratch
            };
            let keep = buf.len();
            let seg = segments
                .values_mut()
                .next_back()
                .expect("invariant: a log has a segment");
            // Fill this segment with as many records as fit.
            let mut pos = seg_size;
            while i < msgs.len()
                && (seg.positions.len() == seg_records
                    || pos + size_of(&msgs[i]) <= self.cfg.segment_size)
            {
                let offset = *next_offset + (seg.positions.len() - seg_records) as u64;
                seg.positions.push(pos);
                record::encode(offset, &msgs[i], buf);
                pos += size_of(&msgs[i]);
                i += 1;
                if seg_records == 0 && pos > self.cfg.segment_size {
                    break;
                }
            }
            if !buffered || buf.len() >= self.cfg.write_buffer {
                if let Err(e) = seg.file.append(buf) {
                    // Cut any partial write so the file stays a sequence of whole records; the
                    // records of earlier appends still waiting in the buffer stay there (their
                    // sends returned), this append's are dropped (its send fails).
                    seg.positions.truncate(seg_records);
                    buf.truncate(keep);
                    if let Err(t) = seg.file.truncate(seg_size - keep as u64) {
                        return Err(self.poison(t, "truncate after failed write"));
                    }
                    return Err(write_error(e, msgs.len() == 1, msgs.first()));
                }
                self.wrote(unsynced, buf.len(), &seg.file);
                buf.clear();
            }
            *next_offset += (seg.positions.len() - seg_records) as u64;
            seg.size = pos;
            *total_bytes += pos - seg_size;
        }
        let end = inner.next_offset;
        drop(inner);
        if self.cfg.sync_each_append {
            self.sync_to(end)?;
        }
        Ok(first)
    }

    /// Hands the write buffer's records to the OS (one write). A failed write leaves them
    /// buffered (nothing is lost while the process lives) and cuts any partial write.
    fn write_pending(&self, inner: &mut Inner) -> Result<()> {
        let Inner {
            segments,
            pending,
            unsynced,
            ..
        } = inner;
        if pending.is_empty() {
            return Ok(());
        }
        let seg = segments
            .values_mut()
            .next_back()
            .expect("invariant: a log has a segment");
        if let Err(e) = seg.file.append(pending) {
            let written = seg.size - pending.len() as u64;
            if let Err(t) = seg.file.truncate(written) {
                return Err(self.poison(t, "truncate after failed write"));
            }
            return Err(write_error(e, false, None));
        }
        self.wrote(unsynced, pending.len(), &seg.file);
        pending.clear();
        Ok(())
    }

    /// Counts `n` bytes written to the active segment `file`; starts a background fsync of it
    /// every `PRESYNC_BYTES` when appends are not fsynced anyway. A failed background fsync
    /// poisons the log like any other.
    fn wrote(&self, unsynced: &mut u64, n: usize, file: &Arc<dyn StorageFile>) {
        *unsynced += n as u64;
        if self.cfg.sync_each_append
            || *unsynced < PRESYNC_BYTES
            || self.presyncing.swap(true, Ordering::AcqRel)
        {
            return;
        }
        *unsynced = 0;
        let file = Arc::clone(file);
        let (running, poisoned) = (Arc::clone(&self.presyncing), Arc::clone(&self.poisoned));
        let topic = self.topic.clone();
        let spawned = std::thread::Builder::new()
            .name("tierkit-mq-presync".into())
            .spawn(move || {
                if let Err(e) = file.sync() {
                    poisoned.store(true, Ordering::SeqCst);
                    tracing::error!(%topic, error = %e, "background fsync failed; queue handle poisoned");
                }
                running.store(false, Ordering::Release);
            });
        if spawned.is_err() {
            // No thread: the roll's own fsync will do the work.
            self.presyncing.store(false, Ordering::Release);
        }
    }

    /// Writes the write buffer out now (no fsync).
    pub(crate) fn flush_buffer(&self) -> Result<()> {
        self.check_poison()?;
        self.write_pending(&mut self.inner.lock())
    }

    fn roll(&self, inner: &mut Inner) -> Result<()> {
        self.write_pending(inner)?;
        let seg = inner
            .segments
            .values()
            .next_back()
            .expect("invariant: a log has a segment");
        // The old segment is synced before the new one exists, so only the last segment can
        // ever have a torn tail.
        seg.file
            .sync()
            .map_err(|e| self.poison(e, "fsync rolled segment"))?;
        let base = inner.next_offset;
        self.create_segment(inner, base)?;
        inner.unsynced = 0;
        self.rolled.store(true, Ordering::Relaxed);
        tracing::debug!(topic = %self.topic, base, "rolled segment");
        Ok(())
    }

    /// Group commit: one caller (the leader) fsyncs on behalf of every record appended before
    /// it started; callers that arrive meanwhile wait on a condition variable, not behind the
    /// fsync, and the first of them to wake leads the next round for all of them.
    pub(crate) fn sync_to(&self, end: u64) -> Result<()> {
        let mut leading = self.sync_lock.lock();
        loop {
            self.check_poison()?;
            if self.durable_end.load(Ordering::Acquire) >= end {
                return Ok(());
            }
            if !*leading {
                *leading = true;
                break;
            }
            self.sync_cv.wait(&mut leading);
        }
        drop(leading);
        let prepared = {
            let mut inner = self.inner.lock();
            self.write_pending(&mut inner).map(|()| {
                let seg = inner
                    .segments
                    .values()
                    .next_back()
                    .expect("invariant: a log has a segment");
                (Arc::clone(&seg.file), inner.next_offset)
            })
        };
        let (file, target) = match prepared {
            Ok(p) => p,
            Err(e) => {
                *self.sync_lock.lock() = false;
                self.sync_cv.notify_all();
                return Err(e);
            }
        };
        let result = file.sync();
        let mut leading = self.sync_lock.lock();
        *leading = false;
        let result = match result {
            Ok(()) => {
                self.syncs.fetch_add(1, Ordering::Relaxed);
                self.durable_end.fetch_max(target, Ordering::AcqRel);
                Ok(())
            }
            Err(e) => Err(self.poison(e, "fsync log")),
        };
        drop(leading);
        self.sync_cv.notify_all();
        result
    }

    /// Fsyncs everything appended so far.
    pub(crate) fn sync_all(&self) -> Result<()> {
        let end = self.inner.lock().next_offset;
        self.sync_to(end)
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

    /// Reads the record at `offset`, or `None` if it is not (or no longer) stored.
    pub(crate) fn read(&self, offset: u64) -> Result<Option<Message>> {
        let (file, buffered, name, pos, end) = {
            let inner = self.inner.lock();
            let Some((_, seg)) = inner.segments.range(..=offset).next_back() else {
                return Ok(None);
            };
            let Ok(idx) = usize::try_from(offset - seg.base) else {
                return Ok(None);
            };
            let Some(&pos) = seg.positions.get(idx) else {
                return Ok(None);
            };
            let end = seg.positions.get(idx + 1).copied().unwrap_or(seg.size);
            let written = seg.size - inner.pending.len() as u64;
            let last = inner.segments.keys().next_back() == Some(&seg.base);
            if last && pos >= written {
                // Still in the write buffer: decode from memory.
                let from = usize::try_from(pos - written).ok();
                let to = usize::try_from(end - written).ok();
                let data = from
                    .zip(to)
                    .and_then(|(f, t)| inner.pending.get(f..t))
                    .map(<[u8]>::to_vec);
                (None, data, seg.name.clone(), pos, end)
            } else {
                (
                    Some(Arc::clone(&seg.file)),
                    None,
                    seg.name.clone(),
                    pos,
                    end,
                )
            }
        };
        let corrupt = |reason| Error::Corrupt {
            file: name.clone(),
            position: pos,
            offset,
            reason,
        };
        let len = usize::try_from(end - pos).map_err(|_| corrupt("record too large"))?;
        let data = match (file, buffered) {
            (_, Some(data)) => data,
            (Some(file), None) => {
                let mut data = vec![0u8; len];
                file.read_exact_at(&mut data, pos)
                    .map_err(Error::io("read record"))?;
                data
            }
            (None, None) => return Err(corrupt("record outside the write buffer")),
        };
        let h: [u8; HEADER_LEN] = data
            .get(..HEADER_LEN)
            .and_then(|h| h.try_into().ok())
            .ok_or_else(|| corrupt("short record"))?;
        let header = record::decode_header(&h, (len - HEADER_LEN) as u64, self.cfg.max_record)
            .map_err(|e| corrupt(e.reason()))?;
        let body = Bytes::from(data).slice(HEADER_LEN..HEADER_LEN + header.len);
        let m = record::decode_body(&header, body).map_err(|e| corrupt(e.reason()))?;
        if header.offset != offset {
            return Err(corrupt("offset mismatch"));
        }
        Ok(Some(m))
    }

    /// Whether a segment rolled since the last call.
    pub(crate) fn take_rolled(&self) -> bool {
        // A plain load first: every send asks, and a swap would be an atomic write per send.
        self.rolled.load(Ordering::Relaxed) && self.rolled.swap(false, Ordering::Relaxed)
    }

    /// Deletes whole segments whose records all lie below `offset` (never the active one).
    pub(crate) fn delete_before(&self, offset: u64) -> Result<u64> {
        self.delete_oldest_while(|_, _, next_base| Ok(next_base <= offset))
    }

    /// Deletes the oldest segments (never the active one) while the log holds more than
    /// `max_bytes`, or while a segment's newest record is older than `max_age_ms` at `now_ms`.
    pub(crate) fn delete_beyond(
        &self,
        max_bytes: Option<u64>,
        max_age_ms: Option<u64>,
        now_ms: u64,
    ) -> Result<u64> {
        self.delete_oldest_while(|total, seg, _| {
            if max_bytes.is_some_and(|max| total > max) {
                return Ok(true);
            }
            let Some(max_age) = max_age_ms else {
                return Ok(false);
            };
            let Some(&last) = seg.positions.last() else {
                return Ok(true);
            };
            // The newest record's send time: the first 8 bytes of its body.
            let mut ts = [0u8; 8];
            seg.file
                .read_exact_at(&mut ts, last + HEADER_LEN as u64)
                .map_err(Error::io("read record time"))?;
            Ok(now_ms.saturating_sub(u64::from_le_bytes(ts)) > max_age)
        })
    }

    /// Deletes the oldest segment while `doomed(total bytes, segment, next segment's base)`
    /// says so; the active segment always stays. Returns how many were deleted.
    fn delete_oldest_while(
        &self,
        mut doomed: impl FnMut(u64, &Segment, u64) -> Result<bool>,
    ) -> Result<u64> {
        let mut inner = self.inner.lock();
        let mut deleted = 0;
        loop {
            let mut it = inner.segments.iter();
            let (Some((&b0, seg)), Some((&b1, _))) = (it.next(), it.next()) else {
                break;
            };
            if !doomed(inner.total_bytes, seg, b1)? {
                break;
            }
            let seg = inner
                .segments
                .remove(&b0)
                .expect("invariant: key just seen");
            self.dir
                .remove(&seg.name)
                .map_err(Error::io("delete segment"))?;
            inner.total_bytes -= seg.size;
            deleted += 1;
        }
        drop(inner);
        if deleted > 0 {
            self.dir
                .sync_dir()
                .map_err(|e| self.poison(e, "fsync directory"))?;
            tracing::debug!(topic = %self.topic, segments = deleted, "retention deleted segments");
        }
        Ok(deleted)
    }
}

fn oversize(m: &Message, max: usize) -> Error {
    Error::Oversize {
        size: record::HEADER_LEN + record::body_len(m),
        max,
        message: Box::new(m.clone()),
    }
}

fn write_error(e: std::io::Error, single: bool, m: Option<&Message>) -> Error {
    if e.kind() == std::io::ErrorKind::StorageFull {
        Error::DiskFull {
            message: m.filter(|_| single).map(|m| Box::new(m.clone())),
        }
    } else {
        Error::Io {
            op: "append",
            source: e,
        }
    }
}
