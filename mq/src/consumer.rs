//! Receiving and acknowledging messages.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::builder::duration_ms;
use crate::group::GroupState;
use crate::journal::Entry;
use crate::topic::{Group, Sleeper, Topic};
use crate::{Delivery, Error, Message, Queue, Result};

/// One consumer of a consumer group. Consumers of the same group compete for its messages;
/// each delivery must be acknowledged ([`Consumer::ack`]), negatively acknowledged
/// ([`Consumer::nack`]) or left to its visibility timeout, after which it is delivered again.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use tierkit_mq::{Message, Queue};
/// let queue = Queue::builder().build_in_memory()?;
/// queue.producer("jobs")?.send(Message::new("work"))?;
/// let consumer = queue.consumer("jobs", "workers")?;
/// let first = consumer.try_recv()?.expect("ready");
/// consumer.nack(&first, Duration::ZERO)?;
/// let again = consumer.try_recv()?.expect("redelivered");
/// assert_eq!(again.delivery_count(), 2);
/// consumer.ack(&again)?;
/// # Ok::<(), tierkit_mq::Error>(())
/// ```
#[derive(Clone)]
pub struct Consumer {
    pub(crate) queue: Queue,
    pub(crate) topic: Arc<Topic>,
    pub(crate) group: Arc<Group>,
}

impl fmt::Debug for Consumer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Consumer")
            .field("topic", &self.topic.name)
            .field("group", &self.group.name)
            .finish_non_exhaustive()
    }
}

/// Header naming why a message was dead-lettered (see [`Queue::dead_letter_topic`]).
pub const DEAD_LETTER_REASON: &str = "x-dead-letter-reason";
/// Header holding the original offset (8 bytes, little-endian) of a dead-lettered message.
pub const DEAD_LETTER_OFFSET: &str = "x-original-offset";

/// What [`Consumer::take`] may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Take {
    /// Dead-letter the messages due for it, then deliver the next ready message if nothing
    /// was dead-lettered (the synchronous API).
    Any,
    /// Deliver only: stop at a message due for dead-lettering and leave it in place. Does no
    /// I/O but reading the message from the log (the async API's fast path, on a runtime
    /// thread).
    DeliverOnly,
    /// Dead-letter only: never deliver (the async API, on tokio's blocking pool).
    DeadLetterOnly,
}

/// What one [`Consumer::take`] did.
#[derive(Debug)]
pub(crate) enum Step {
    /// Delivered this message: it is in flight now.
    Delivered(Delivery),
    /// Nothing to do: no message is ready (or, for `DeadLetterOnly`, none is due for
    /// dead-lettering).
    Idle,
    /// Dead-lettered one or more messages and delivered nothing: their acknowledgements are
    /// journaled up to this sequence number, not yet fsynced.
    Journaled(u64),
    /// `DeliverOnly` found a message due for dead-lettering and left it in place.
    DeadLetterDue,
}

impl Consumer {
    /// The next ready message, or `None` if none is ready now. Never blocks on other
    /// consumers' work; reads the message from the log (nothing is buffered in memory).
    ///
    /// Messages that reached [`max_deliveries`](crate::QueueBuilder::max_deliveries) on the
    /// way are moved to the dead-letter topic first, and their acknowledgement is fsynced
    /// (unless the durability is `Never`) before a message is delivered.
    ///
    /// # Errors
    /// [`Error::Corrupt`] if the record fails its checksum, [`Error::Io`], or an error writing
    /// a dead letter. An error takes no delivery: nothing is left in flight by it.
    pub fn try_recv(&self) -> Result<Option<Delivery>> {
        loop {
            match self.take(Take::Any)? {
                Step::Delivered(d) => return Ok(Some(d)),
                // Dead letters were journaled under the lock; their fsync waits outside it,
                // before anything is delivered (a failed fsync then strands no delivery).
                Step::Journaled(seq) => {
                    self.topic
                        .sync_journal(&self.queue.shared.cfg, &self.group, seq)?;
                }
                Step::Idle | Step::DeadLetterDue => return Ok(None),
            }
        }
    }

    /// Dead-letters the messages due for it and fsyncs their acknowledgements, delivering
    /// nothing (blocking I/O: for tokio's blocking pool).
    #[cfg(feature = "tokio")]
    pub(crate) fn dead_letter_due(&self) -> Result<()> {
        if let Step::Journaled(seq) = self.take(Take::DeadLetterOnly)? {
            self.topic
                .sync_journal(&self.queue.shared.cfg, &self.group, seq)?;
        }
        Ok(())
    }

    /// One look at the group's state under its lock (see [`Take`]). Journals but never
    /// fsyncs: a [`Step::Journaled`] sequence is for the caller to sync.
    pub(crate) fn take(&self, mode: Take) -> Result<Step> {
        let cfg = &self.queue.shared.cfg;
        let now = cfg.clock.unix_millis();
        let visible_end = self.topic.visible_end(cfg.durability);
        let mut st = self.group.state.lock();
        self.next_ready(&mut st, now, visible_end, mode)
    }

    fn next_ready(
        &self,
        st: &mut GroupState,
        now: u64,
        visible_end: u64,
        mode: Take,
    ) -> Result<Step> {
        let cfg = &self.queue.shared.cfg;
        while let Some(&(deadline, off)) = st.deadlines.first() {
            if deadline > now {
                break;
            }
            st.deadlines.pop_first();
            if let Some(&(d, count)) = st.inflight.get(&off)
                && d == deadline
            {
                st.inflight.remove(&off);
                st.attempts.insert(off, count);
                st.waiting.insert((deadline, off));
                tracing::debug!(topic = %self.topic.name, group = %self.group.name, offset = off, "visibility timeout expired");
            }
        }
        let mut journaled = None;
        loop {
            // `ready`: the time it waited for, or `None` if it came from the cursor.
            let (off, ready) = match st.waiting.first() {
                Some(&(ready, off)) if ready <= now => {
                    st.waiting.pop_first();
                    (off, Some(ready))
                }
                _ if st.cursor < visible_end => {
                    st.cursor += 1;
                    (st.cursor - 1, None)
                }
                _ => break,
            };
            // Puts `off` back where it was taken from (its attempts are restored apart).
            let put_back = |st: &mut GroupState| match ready {
                Some(ready) => {
                    st.waiting.insert((ready, off));
                }
                None => st.cursor = off,
            };
            if st.is_acked(off) || st.inflight.contains_key(&off) {
                continue;
            }
            let message = match self.topic.log.read(off) {
                Ok(Some(m)) => m,
                Ok(None) => continue,
                Err(e) => {
                    // Put it back: an error must not lose the message. Dead letters already
                    // journaled are returned for their fsync; the error comes back next time.
                    put_back(st);
                    return journaled.map(Step::Journaled).ok_or(e);
                }
            };
            if ready.is_none() && message.not_before_ms > now {
                st.waiting.insert((message.not_before_ms, off));
                continue;
            }
            let before = st.attempts.remove(&off).unwrap_or(0);
            let attempt = before.saturating_add(1);
            let due = attempt > cfg.max_deliveries;
            // Left in place: a dead letter the mode does not write, or a message the mode
            // does not deliver (nothing is delivered before journaled dead letters are synced).
            let leave = if due {
                mode == Take::DeliverOnly
            } else {
                mode == Take::DeadLetterOnly || journaled.is_some()
            };
            if leave {
                if before > 0 {
                    st.attempts.insert(off, before);
                }
                put_back(st);
                if due {
                    return Ok(Step::DeadLetterDue);
                }
                break;
            }
            if due {
                match self.dead_letter(st, off, message, before) {
                    Ok(seq) => journaled = Some(seq),
                    // It was put back; the error comes back next time.
                    Err(e) => return journaled.map(Step::Journaled).ok_or(e),
                }
                continue;
            }
            if attempt > 1 {
                st.redeliveries += 1;
            }
            let deadline = now.saturating_add(cfg.visibility_ms);
            st.inflight.insert(off, (deadline, attempt));
            st.deadlines.insert((deadline, off));
            return Ok(Step::Delivered(Delivery {
                offset: off,
                attempt,
                message,
            }));
        }
        Ok(journaled.map_or(Step::Idle, Step::Journaled))
    }

    /// Moves `off` to the dead-letter topic and journals its acknowledgement (not yet
    /// fsynced: returns the journal sequence number to sync once the lock is released).
    fn dead_letter(
        &self,
        st: &mut GroupState,
        off: u64,
        message: Message,
        deliveries: u32,
    ) -> Result<u64> {
        let restore = |st: &mut GroupState| {
            st.attempts.insert(off, deliveries);
            st.waiting.insert((0, off));
        };
        if self.queue.shared.cfg.read_only {
            restore(st);
            return Err(Error::ReadOnly {
                op: "dead-lettering",
            });
        }
        let name = Queue::dead_letter_topic(&self.topic.name, &self.group.name);
        let reason =
            format!("delivered {deliveries} times without an ack (max_deliveries reached)");
        let dead = message
            .with_header(DEAD_LETTER_REASON, Bytes::from(reason))
            .with_header(
                DEAD_LETTER_OFFSET,
                Bytes::copy_from_slice(&off.to_le_bytes()),
            );
        let appended = self.queue.topic(&name).and_then(|dlq| {
            dlq.log.append(std::slice::from_ref(&dead))?;
            dlq.notify();
            Ok(())
        });
        if let Err(e) = appended {
            restore(st);
            return Err(e);
        }
        let seq = match self.journal_append(st, &[Entry::Ack(off)]) {
            Ok(seq) => seq,
            Err(e) => {
                // The dead letter exists; the message comes back here too (at-least-once).
                restore(st);
                return Err(e);
            }
        };
        st.mark_acked(off);
        st.dead_lettered += 1;
        st.maybe_compact(
            &self.topic.dir,
            &self.topic.name,
            &self.group.name,
            &self.group.commit,
        );
        tracing::warn!(topic = %self.topic.name, group = %self.group.name, offset = off, deliveries, "message dead-lettered");
        Ok(seq)
    }

    /// Waits up to `timeout` (real time) for a ready message; `None` on timeout
    /// (`Duration::MAX`: no timeout). Woken by sends, and by the group's next timer (a nack
    /// delay, a visibility timeout, a not-before time) when one is due. For code without an
    /// async runtime.
    ///
    /// # Errors
    /// As [`Consumer::try_recv`].
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Option<Delivery>> {
        let until = tierkit_core::deadline_after(Instant::now(), timeout);
        let _sleeper = Sleeper::new(&self.topic);
        loop {
            let seen = *self.topic.wake.lock();
            if let Some(d) = self.try_recv()? {
                return Ok(Some(d));
            }
            let now = Instant::now();
            if until.is_some_and(|u| now >= u) {
                return Ok(None);
            }
            let mut wait = until.map_or(Duration::MAX, |u| u - now);
            if let Some(timer) = self.next_timer() {
                wait = wait.min(timer);
            }
            let mut g = self.topic.wake.lock();
            if *g == seen {
                match tierkit_core::deadline_after(now, wait) {
                    Some(at) => {
                        self.topic.wake_cv.wait_until(&mut g, at);
                    }
                    None => self.topic.wake_cv.wait(&mut g),
                }
            }
        }
    }

    /// Real time until the group's next timer (nack delay, visibility timeout, not-before
    /// time) by the queue's clock, if any is set. At least 1 ms.
    pub(crate) fn next_timer(&self) -> Option<Duration> {
        let next = {
            let st = self.group.state.lock();
            let a = st.deadlines.first().map(|d| d.0);
            let b = st.waiting.first().map(|w| w.0);
            a.into_iter().chain(b).min()?
        };
        let now = self.queue.shared.cfg.clock.unix_millis();
        Some(Duration::from_millis(next.saturating_sub(now).max(1)))
    }

    /// Acknowledges a delivery: it will not be delivered to this group again, also after a
    /// restart (the ack is appended to the group's journal before `ack` returns, fsynced unless
    /// the durability is `Never`; concurrent acks of a group share one fsync). An `ack` that
    /// returns an I/O error may or may not have been recorded (like a send cut by a crash): the
    /// message is then delivered again at most once more. A full disk fails the ack with
    /// [`Error::DiskFull`] and records nothing: the delivery stays in flight, and the ack can
    /// be retried once space is freed.
    ///
    /// # Errors
    /// [`Error::NotInFlight`] if the delivery's visibility timeout expired (it will be, or
    /// was, delivered again) or it was already acknowledged, [`Error::DiskFull`],
    /// [`Error::Io`] / [`Error::Poisoned`] if the state cannot be saved, [`Error::ReadOnly`].
    pub fn ack(&self, delivery: &Delivery) -> Result<()> {
        self.settle(std::slice::from_ref(delivery), None)
    }

    /// Acknowledges several deliveries with one journal write (one fsync instead of one per
    /// delivery).
    ///
    /// # Errors
    /// As [`Consumer::ack`]; on any error nothing is acknowledged.
    pub fn ack_batch(&self, deliveries: &[Delivery]) -> Result<()> {
        self.settle(deliveries, None)
    }

    /// Negatively acknowledges a delivery: it becomes ready again after `delay`
    /// (`Duration::MAX`: never again before a restart).
    ///
    /// # Errors
    /// As [`Consumer::ack`].
    pub fn nack(&self, delivery: &Delivery, delay: Duration) -> Result<()> {
        self.settle(std::slice::from_ref(delivery), Some(delay))
    }

    /// Acks (`nack: None`) or nacks `deliveries`: checks them all, journals them, applies them
    /// to the group's state, then waits for the journal's (shared) fsync.
    pub(crate) fn settle(&self, deliveries: &[Delivery], nack: Option<Duration>) -> Result<()> {
        self.topic.log.check_writable("acknowledging")?;
        let cfg = &self.queue.shared.cfg;
        let now = cfg.clock.unix_millis();
        let seq = {
            let mut st = self.group.state.lock();
            let mut seen = std::collections::HashSet::with_capacity(deliveries.len());
            for d in deliveries {
                let live = matches!(st.inflight.get(&d.offset),
                    Some(&(deadline, count)) if count == d.attempt && deadline > now);
                if !live || !seen.insert(d.offset) {
                    return Err(Error::NotInFlight { offset: d.offset });
                }
            }
            let entries: Vec<Entry> = deliveries
                .iter()
                .map(|d| match nack {
                    Some(_) => Entry::Attempts(d.offset, d.attempt),
                    None => Entry::Ack(d.offset),
                })
                .collect();
            let seq = self.journal_append(&mut st, &entries)?;
            for d in deliveries {
                if let Some((deadline, _)) = st.inflight.remove(&d.offset) {
                    st.deadlines.remove(&(deadline, d.offset));
                }
                match nack {
                    Some(delay) => {
                        st.attempts.insert(d.offset, d.attempt);
                        st.waiting
                            .insert((now.saturating_add(duration_ms(delay)), d.offset));
                    }
                    None => st.mark_acked(d.offset),
                }
            }
            st.maybe_compact(
                &self.topic.dir,
                &self.topic.name,
                &self.group.name,
                &self.group.commit,
            );
            seq
        };
        self.topic.sync_journal(cfg, &self.group, seq)?;
        // The acks are recorded: a retention error is logged, not returned (the next run
        // retries), so an error from `ack` always means the ack itself may have failed.
        if nack.is_none()
            && let Err(e) = self.topic.retain(cfg)
        {
            tracing::warn!(topic = %self.topic.name, error = %e, "retention after an ack failed");
        }
        Ok(())
    }

    /// Appends to the group's journal; an error that leaves the journal in an unknown state
    /// poisons the handle.
    fn journal_append(&self, st: &mut GroupState, entries: &[Entry]) -> Result<u64> {
        st.append(&self.topic.dir, &self.topic.name, &self.group.name, entries)
            .inspect_err(|e| {
                if let Error::Poisoned { op } = e {
                    self.topic.log.mark_poisoned(op);
                }
            })
    }

    /// The consumer group's name.
    #[must_use]
    pub fn group(&self) -> &str {
        &self.group.name
    }
}
