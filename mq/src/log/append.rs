//! Appends: encoding into the segment (or the write buffer), rolls, background pre-syncs.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::{Inner, Log};
use crate::record::{self, HEADER_LEN};
use crate::storage::StorageFile;
use crate::{Error, Message, Result};

/// Without per-append fsyncs, the active segment is fsynced in the background after every
/// this many written bytes, so the fsync that a segment roll must wait for (only the last
/// segment may ever be torn) finds little left to write. It only adds durability.
const PRESYNC_BYTES: u64 = 8 << 20;

impl Log {
    /// Appends `msgs` and returns the offset of the first; makes them durable if configured.
    pub(crate) fn append(&self, msgs: &[Message]) -> Result<u64> {
        self.check_writable("append")?;
        let mut inner = self.inner.lock();
        let first = inner.next_offset;
        // Sizes of validated records (checked here, recomputed below without allocating).
        let size_of = |m: &Message| (HEADER_LEN + record::body_len(m)) as u64;
        let mut batch = 0u64;
        for m in msgs {
            record::check_size(m, self.cfg.max_record).map_err(|(what, size, max)| {
                Error::Oversize {
                    what,
                    size,
                    max,
                    message: Box::new(m.clone()),
                }
            })?;
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
        let single = |e: Error| match e {
            Error::DiskFull { op, message: None } if msgs.len() == 1 => Error::DiskFull {
                op,
                message: msgs.first().map(|m| Box::new(m.clone())),
            },
            e => e,
        };
        let buffered = self.cfg.write_buffer > 0;
        let mut i = 0;
        while i < msgs.len() {
            let (seg_size, seg_records) = {
                let seg = inner.active();
                (seg.size, seg.positions.len())
            };
            if seg_records > 0 && seg_size + size_of(&msgs[i]) > self.cfg.segment_size {
                self.roll(&mut inner).map_err(single)?;
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
            // Fill this segment with as many records as fit. The first always goes in (it
            // fits, or the segment is empty: an oversized record gets a segment of its own,
            // which then holds nothing else, as no record fits after it).
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
            }
            if !buffered || buf.len() >= self.cfg.write_buffer {
                if let Err(e) = seg.file.append(buf) {
                    // Cut any partial write so the file stays a sequence of whole records; the
                    // records of earlier appends still waiting in the buffer stay there (their
                    // sends returned), this append's are dropped (its send fails).
                    seg.positions.truncate(seg_records);
                    buf.truncate(keep);
                    if let Err(t) = seg.file.truncate(seg_size - keep as u64) {
                        return Err(self.poison(t, "cutting a partial write"));
                    }
                    return Err(single(Error::io("append")(e)));
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
    pub(super) fn write_pending(&self, inner: &mut Inner) -> Result<()> {
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
                return Err(self.poison(t, "cutting a partial write"));
            }
            return Err(Error::io("write of the write buffer")(e));
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
        let (running, poison) = (Arc::clone(&self.presyncing), Arc::clone(&self.poison));
        let topic = self.topic.clone();
        let spawned = std::thread::Builder::new()
            .name("tierkit-mq-presync".into())
            .spawn(move || {
                if let Err(e) = file.sync() {
                    poison.set("a background fsync of the log");
                    tracing::error!(%topic, error = %e, "background fsync failed; queue handle poisoned");
                }
                running.store(false, Ordering::Release);
            });
        match spawned {
            // The previous pre-sync thread finished (`presyncing` was clear): reap it.
            Ok(t) => drop(self.presync_thread.lock().replace(t)),
            // No thread: the roll's own fsync will do the work.
            Err(_) => self.presyncing.store(false, Ordering::Release),
        }
    }

    /// Writes the write buffer out now (no fsync).
    pub(crate) fn flush_buffer(&self) -> Result<()> {
        self.check_writable("flush")?;
        self.write_pending(&mut self.inner.lock())
    }

    /// Closes the active segment and starts the next one. The old segment is fsynced before
    /// the new one exists, so only the last segment can ever have a torn tail.
    fn roll(&self, inner: &mut Inner) -> Result<()> {
        self.write_pending(inner)?;
        inner
            .active()
            .file
            .sync()
            .map_err(|e| self.poison(e, "the fsync of a full segment before a roll"))?;
        let base = inner.next_offset;
        self.create_segment(inner, base)?;
        inner.unsynced = 0;
        self.rolled.store(true, Ordering::Relaxed);
        tracing::debug!(topic = %self.topic, base, "rolled segment");
        Ok(())
    }
}
