//! Group commit: one fsync for every record appended before it started.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::Log;
use crate::Result;

impl Log {
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
            self.write_pending(&mut inner)
                .map(|()| (Arc::clone(&inner.active().file), inner.next_offset))
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
            Err(e) => Err(self.poison(e, "an fsync of the log")),
        };
        drop(leading);
        self.sync_cv.notify_all();
        result
    }

    /// Fsyncs everything appended so far.
    pub(crate) fn sync_all(&self) -> Result<()> {
        if self.cfg.read_only {
            return Ok(());
        }
        let end = self.inner.lock().next_offset;
        self.sync_to(end)
    }
}
