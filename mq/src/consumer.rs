//! Receiving and acknowledging messages.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::clock::duration_ms;
use crate::journal::Entry;
use crate::queue::{Group, Sleeper, Topic};
use crate::{Delivery, Durability, Error, Message, Queue, Result};

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

/// Header naming why a message was dead-lettered.
pub const DEAD_LETTER_REASON: &str = "x-dead-letter-reason";
/// Header holding the original offset (8 bytes, little-endian) of a dead-lettered message.
pub const DEAD_LETTER_OFFSET: &str = "x-original-offset";

impl Consumer {
    /// The next ready message, or `None` if none is ready now. Never blocks on other
    /// consumers' work; reads the message from the log (nothing is buffered in memory).
    ///
    /// # Errors
    /// [`Error::Corrupt`] if the record fails its checksum, [`Error::Io`], or an error writing
    /// a dead letter.
    pub fn try_recv(&self) -> Result<Option<Delivery>> {
        let cfg = &self.queue.shared.cfg;
        let now = cfg.clock.now_ms();
        let visible_end = self.topic.visible_end(cfg.durability);
        let mut st = self.group.state.lock();
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
        loop {
            let (off, retry) = match st.waiting.first() {
                Some(&(ready, off)) if ready <= now => {
                    st.waiting.pop_first();
                    (off, true)
                }
                _ if st.cursor < visible_end => {
                    st.cursor += 1;
                    (st.cursor - 1, false)
                }
                _ => return Ok(None),
            };
            if st.is_acked(off) || st.inflight.contains_key(&off) {
                continue;
            }
            let message = match self.topic.log.read(off) {
                Ok(Some(m)) => m,
                Ok(None) => continue,
                Err(e) => {
                    // Put it back: an error must not lose the message.
                    if retry {
                        st.waiting.insert((now, off));
                    } else {
                        st.cursor = off;
                    }
                    return Err(e);
                }
            };
            if !retry && message.not_before_ms > now {
                st.waiting.insert((message.not_before_ms, off));
                continue;
            }
            let attempt = st.attempts.remove(&off).unwrap_or(0).saturating_add(1);
            if attempt > cfg.max_deliveries {
                self.dead_letter(&mut st, off, message, attempt - 1)?;
                continue;
            }
            if attempt > 1 {
                st.redeliveries += 1;
            }
            let deadline = now.saturating_add(cfg.visibility_ms);
            st.inflight.insert(off, (deadline, attempt));
            st.deadlines.insert((deadline, off));
            return Ok(Some(Delivery {
                offset: off,
                attempt,
                message,
            }));
        }
    }

    fn dead_letter(
        &self,
        st: &mut crate::group::GroupState,
        off: u64,
        message: Message,
        deliveries: u32,
    ) -> Result<()> {
        let name = format!("{}-{}-dlq", self.topic.name, self.group.name);
        let reason =
            format!("delivered {deliveries} times without an ack (max_deliveries reached)");
        let dead = message
            .with_header(DEAD_LETTER_REASON, Bytes::from(reason))
            .with_header(
                DEAD_LETTER_OFFSET,
                Bytes::copy_from_slice(&off.to_le_bytes()),
            );
        let dlq = self.queue.topic_unchecked(&name)?;
        if let Err(e) = dlq.log.append(std::slice::from_ref(&dead)) {
            st.attempts.insert(off, deliveries);
            st.waiting.insert((0, off));
            return Err(e);
        }
        dlq.notify();
        st.mark_acked(off);
        st.dead_lettered += 1;
        tracing::warn!(topic = %self.topic.name, group = %self.group.name, offset = off, deliveries, "message dead-lettered");
        self.journal(st, &[Entry::Ack(off)])
    }

    /// Waits up to `timeout` (real time) for a ready message; `None` on timeout. For code
    /// without an async runtime.
    ///
    /// # Errors
    /// As [`Consumer::try_recv`].
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Option<Delivery>> {
        let until = Instant::now() + timeout;
        let _sleeper = Sleeper::new(&self.topic);
        loop {
            let seen = *self.topic.wake.lock();
            if let Some(d) = self.try_recv()? {
                return Ok(Some(d));
            }
            let now = Instant::now();
            if now >= until {
                return Ok(None);
            }
            // Woken by producers; the short cap re-checks timers (delays, visibility).
            let wait = (until - now).min(Duration::from_millis(10));
            let mut g = self.topic.wake.lock();
            if *g == seen {
                self.topic.wake_cv.wait_for(&mut g, wait);
            }
        }
    }

    /// Acknowledges a delivery: it will not be delivered to this group again, also after a
    /// restart (the ack is appended to the group's journal before `ack` returns, fsynced unless
    /// the durability is `Never`). An `ack` that returns an I/O error may or may not have been
    /// recorded (like a send cut by a crash): the message is then delivered again at most once
    /// more.
    ///
    /// # Errors
    /// [`Error::NotInFlight`] if the delivery's visibility timeout expired (it will be, or
    /// was, delivered again) or it was already acknowledged, [`Error::Io`] / [`Error::Poisoned`] if the state cannot be saved.
    pub fn ack(&self, delivery: &Delivery) -> Result<()> {
        self.topic.log.check_poison()?;
        let now = self.queue.shared.cfg.clock.now_ms();
        let mut st = self.group.state.lock();
        take_inflight(&mut st, delivery, now)?;
        st.mark_acked(delivery.offset);
        self.journal(&mut st, &[Entry::Ack(delivery.offset)])?;
        drop(st);
        self.retention()
    }

    /// Acknowledges several deliveries with one state write (one fsync instead of one per
    /// delivery).
    ///
    /// # Errors
    /// As [`Consumer::ack`]; on [`Error::NotInFlight`] nothing is acknowledged.
    pub fn ack_batch(&self, deliveries: &[Delivery]) -> Result<()> {
        self.topic.log.check_poison()?;
        let mut st = self.group.state.lock();
        let now = self.queue.shared.cfg.clock.now_ms();
        for d in deliveries {
            match st.inflight.get(&d.offset) {
                Some(&(deadline, count)) if count == d.attempt && deadline > now => {}
                _ => return Err(Error::NotInFlight { offset: d.offset }),
            }
        }
        let mut entries = Vec::with_capacity(deliveries.len());
        for d in deliveries {
            take_inflight(&mut st, d, now)?;
            st.mark_acked(d.offset);
            entries.push(Entry::Ack(d.offset));
        }
        self.journal(&mut st, &entries)?;
        drop(st);
        self.retention()
    }

    /// Negatively acknowledges a delivery: it becomes ready again after `delay`.
    ///
    /// # Errors
    /// As [`Consumer::ack`].
    pub fn nack(&self, delivery: &Delivery, delay: Duration) -> Result<()> {
        self.topic.log.check_poison()?;
        let now = self.queue.shared.cfg.clock.now_ms();
        let mut st = self.group.state.lock();
        take_inflight(&mut st, delivery, now)?;
        st.attempts.insert(delivery.offset, delivery.attempt);
        st.waiting
            .insert((now.saturating_add(duration_ms(delay)), delivery.offset));
        self.journal(
            &mut st,
            &[Entry::Attempts(delivery.offset, delivery.attempt)],
        )
    }

    /// Journals acknowledgement-state changes (fsynced unless the durability is `Never`).
    fn journal(&self, st: &mut crate::group::GroupState, entries: &[Entry]) -> Result<()> {
        let shared = &self.queue.shared;
        let durable = !matches!(shared.cfg.durability, Durability::Never);
        st.journal(
            &shared.dir,
            &self.topic.name,
            &self.group.name,
            entries,
            durable,
        )
        .inspect_err(|_| {
            // A failed save (fsync included) may have lost state: refuse to pretend.
            self.topic.log.mark_poisoned();
        })
    }

    /// Runs the topic's retention (see `Topic::retain`).
    fn retention(&self) -> Result<()> {
        self.topic.retain(&self.queue.shared.cfg)
    }

    /// The consumer group's name.
    #[must_use]
    pub fn group(&self) -> &str {
        &self.group.name
    }
}

/// Removes `d` from the in-flight set if it is still this delivery and has not expired.
fn take_inflight(st: &mut crate::group::GroupState, d: &Delivery, now: u64) -> Result<()> {
    match st.inflight.get(&d.offset) {
        Some(&(deadline, count)) if count == d.attempt && deadline > now => {
            st.inflight.remove(&d.offset);
            st.deadlines.remove(&(deadline, d.offset));
            Ok(())
        }
        _ => Err(Error::NotInFlight { offset: d.offset }),
    }
}
