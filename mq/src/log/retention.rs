//! Deleting the oldest segments: by acknowledgement, size or age.

use super::{Log, Segment};
use crate::record::HEADER_LEN;
use crate::{Error, Result};

impl Log {
    /// Deletes whole segments whose records all lie below `offset` (never the active one).
    pub(crate) fn delete_before(&self, offset: u64) -> Result<u64> {
        if self.cfg.read_only {
            return Ok(0);
        }
        let mut inner = self.inner.lock();
        let mut deleted = 0;
        loop {
            let mut it = inner.segments.keys();
            let (Some(&b0), Some(&b1)) = (it.next(), it.next()) else {
                break;
            };
            if b1 > offset {
                break;
            }
            let seg = inner
                .segments
                .remove(&b0)
                .expect("invariant: key just seen");
            if let Err(e) = self.dir.remove(&seg.name) {
                inner.segments.insert(b0, seg);
                return Err(Error::io("delete segment")(e));
            }
            inner.total_bytes -= seg.size;
            deleted += 1;
        }
        drop(inner);
        if deleted > 0 {
            // Not poisoning: if the deletions do not survive a power loss, the segments come
            // back, holding only records every group is past (or that retention dropped).
            self.dir
                .sync_dir()
                .map_err(Error::io("fsync of the directory after retention"))?;
            tracing::debug!(topic = %self.topic, segments = deleted, "retention deleted segments");
        }
        Ok(deleted)
    }

    /// Where the log would start after size and age retention: the base of the oldest segment
    /// that stays (the active one always does) while the log holds more than `max_bytes`, or
    /// while a segment's newest record is older than `max_age_ms` at `now_ms`. `None` when
    /// nothing would be deleted. Deletes nothing: the caller records the new start first.
    pub(crate) fn retention_start(
        &self,
        max_bytes: Option<u64>,
        max_age_ms: Option<u64>,
        now_ms: u64,
    ) -> Result<Option<u64>> {
        let inner = self.inner.lock();
        let mut total = inner.total_bytes;
        let mut start = None;
        let segs: Vec<&Segment> = inner.segments.values().collect();
        for pair in segs.windows(2) {
            let (seg, next) = (pair[0], pair[1]);
            let doomed = max_bytes.is_some_and(|max| total > max)
                || match (max_age_ms, seg.positions.last()) {
                    (None, _) => false,
                    (Some(_), None) => true,
                    (Some(max_age), Some(&last)) => {
                        // The newest record's send time: the first 8 bytes of its body.
                        let mut ts = [0u8; 8];
                        seg.file
                            .read_exact_at(&mut ts, last + HEADER_LEN as u64)
                            .map_err(Error::io("read record time"))?;
                        now_ms.saturating_sub(u64::from_le_bytes(ts)) > max_age
                    }
                };
            if !doomed {
                break;
            }
            total -= seg.size;
            start = Some(next.base);
        }
        Ok(start)
    }
}
