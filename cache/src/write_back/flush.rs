//! The flusher: batches dirty entries to the store, retries, and signals waiters.

use super::*;

impl<K, V, P, St, S> Shared<K, V, P, St, S>
where
    K: Hash + Eq + Clone + 'static,
    V: Clone + Send + Sync + 'static,
    S: BuildHasher + Clone,
    P: CachePolicy<K, V, S>,
    St: Store<K, V>,
{
    /// Records a write (`None`: delete) in the dirty set and the cache, atomically per key: the
    /// cache is changed while the key's dirty entry is locked, so two racing writers leave the
    /// cache and the dirty set agreeing.
    pub(super) fn write(&self, key: K, value: Option<V>) {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let entry = self.dirty.entry(key.clone());
        let fresh = matches!(entry, Entry::Vacant(_));
        let guard = entry.insert(Dirty {
            value: value.clone(),
            seq,
        });
        let len = if fresh {
            self.dirty_len.fetch_add(1, Ordering::AcqRel) + 1
        } else {
            0
        };
        match value {
            Some(v) => drop(self.cache.insert(key, v)),
            None => self.cache.invalidate(&key),
        }
        drop(guard);
        if len >= self.config.max_batch && self.flusher_running.load(Ordering::Acquire) {
            self.signal.lock().wake = true;
            self.wakeup.notify_all();
        }
    }

    /// `Some(answer)` if `key` is dirty (`answer` is `None` for a pending delete).
    pub(super) fn dirty_value(&self, key: &K) -> Option<Option<V>> {
        if self.dirty_len.load(Ordering::Acquire) == 0 {
            return None;
        }
        self.dirty.get(key).map(|d| d.value.clone())
    }

    pub(super) fn flush_due(&self, state: &FlushState) -> bool {
        let len = self.dirty_len.load(Ordering::Acquire);
        if len == 0 {
            return false;
        }
        let elapsed = self
            .config
            .clock
            .now_nanos()
            .saturating_sub(state.last_flush);
        let elapsed = Duration::from_nanos(elapsed);
        match state.backoff {
            // After a failure, retry once the backoff has passed (and not before).
            Some(backoff) => elapsed >= backoff,
            None => len >= self.config.max_batch || elapsed >= self.config.interval,
        }
    }

    pub(super) fn tick(&self) -> std::result::Result<usize, St::Error> {
        let mut state = self.flush.lock();
        if !self.flush_due(&state) {
            return Ok(0);
        }
        self.flush_locked(&mut state)
    }

    pub(super) fn flush(&self) -> std::result::Result<usize, St::Error> {
        self.flush_locked(&mut self.flush.lock())
    }

    pub(super) fn flush_locked(
        &self,
        state: &mut FlushState,
    ) -> std::result::Result<usize, St::Error> {
        state.last_flush = self.config.clock.now_nanos();
        let pending: Vec<(K, Option<V>, u64)> = self
            .dirty
            .iter()
            .map(|e| (e.key().clone(), e.value.clone(), e.seq))
            .collect();
        let mut written = 0;
        let mut batch = Vec::with_capacity(self.config.max_batch.min(pending.len()));
        let mut pending = pending.into_iter().peekable();
        while pending.peek().is_some() {
            batch.clear();
            batch.extend(pending.by_ref().take(self.config.max_batch));
            if let Err(e) = self.write_batch(&batch, state) {
                state.stats.failures += 1;
                state.stats.consecutive_failures =
                    state.stats.consecutive_failures.saturating_add(1);
                state.backoff = Some(self.backoff(state.stats.consecutive_failures));
                *self.stats.lock() = state.stats;
                return Err(e);
            }
            written += batch.len();
        }
        state.stats.flushes += 1;
        state.stats.consecutive_failures = 0;
        state.backoff = None;
        *self.stats.lock() = state.stats;
        Ok(written)
    }

    /// Writes one batch, then marks its entries clean unless they were written again meanwhile.
    pub(super) fn write_batch(
        &self,
        batch: &[(K, Option<V>, u64)],
        state: &mut FlushState,
    ) -> std::result::Result<(), St::Error> {
        let mut puts = Vec::new();
        let mut deletes = Vec::new();
        for (key, value, _) in batch {
            match value {
                Some(v) => puts.push((key.clone(), v.clone())),
                None => deletes.push(key.clone()),
            }
        }
        if !puts.is_empty() {
            self.store.store_all(&puts)?;
        }
        if !deletes.is_empty() {
            self.store.delete_all(&deletes)?;
        }
        for (key, _, seq) in batch {
            if self.dirty.remove_if(key, |_, d| d.seq == *seq).is_some() {
                self.dirty_len.fetch_sub(1, Ordering::AcqRel);
            }
        }
        state.stats.batches += 1;
        state.stats.written += puts.len() as u64;
        state.stats.deleted += deletes.len() as u64;
        *self.stats.lock() = state.stats;
        Ok(())
    }

    /// The wait after the `failures`-th consecutive failure.
    pub(super) fn backoff(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(31);
        self.config
            .initial_backoff
            .saturating_mul(1 << doublings)
            .min(self.config.max_backoff)
    }

    /// How long the flusher may sleep before a tick could be due.
    pub(super) fn next_wait(&self) -> Duration {
        let state = self.flush.lock();
        let elapsed = self
            .config
            .clock
            .now_nanos()
            .saturating_sub(state.last_flush);
        let elapsed = Duration::from_nanos(elapsed);
        let wait = state.backoff.unwrap_or(self.config.interval);
        wait.saturating_sub(elapsed).max(Duration::from_millis(1))
    }

    /// The background flusher's loop.
    pub(super) fn run_flusher(&self) {
        loop {
            let wait = self.next_wait();
            {
                let mut signal = self.signal.lock();
                if !signal.stop && !signal.wake {
                    let _ = self.wakeup.wait_for(&mut signal, wait);
                }
                if signal.stop {
                    return;
                }
                signal.wake = false;
            }
            // Errors stay dirty and are retried after the backoff; `stats` counts them.
            let _ = self.tick();
        }
    }
}
