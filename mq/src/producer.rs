//! Sending messages.

use std::fmt;
use std::sync::Arc;

use crate::topic::Topic;
use crate::{Message, Queue, Result};

/// Appends messages to one topic. Cheap to clone; clones share the topic (and its group
/// commit).
///
/// # Examples
/// ```
/// use tierkit_mq::{Message, Queue};
/// let queue = Queue::builder().build_in_memory()?;
/// let producer = queue.producer("jobs")?;
/// let first = producer.send_batch(&[Message::new("a"), Message::new("b")])?;
/// assert_eq!(producer.send(Message::new("c"))?, first + 2);
/// # Ok::<(), tierkit_mq::Error>(())
/// ```
#[derive(Clone)]
pub struct Producer {
    pub(crate) queue: Queue,
    pub(crate) topic: Arc<Topic>,
}

impl fmt::Debug for Producer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Producer")
            .field("topic", &self.topic.name)
            .finish_non_exhaustive()
    }
}

impl Producer {
    /// Appends one message and returns its offset once it is as durable as the queue's
    /// [`Durability`](crate::Durability) promises.
    ///
    /// # Errors
    /// [`Error::Oversize`](crate::Error::Oversize),
    /// [`Error::QuotaExceeded`](crate::Error::QuotaExceeded),
    /// [`Error::DiskFull`](crate::Error::DiskFull) (each returns the message, see
    /// [`Error::into_message`](crate::Error::into_message)), [`Error::Poisoned`](crate::Error::Poisoned)
    /// after a failed fsync, [`Error::Io`](crate::Error::Io). When an error comes back the
    /// message is not acknowledged; it may still be in the log (at-least-once). With
    /// [`QueueBuilder::disk_quota_wait`](crate::QueueBuilder::disk_quota_wait), a send at the
    /// quota blocks up to that long before `QuotaExceeded`.
    pub fn send(&self, mut message: Message) -> Result<u64> {
        message.timestamp_ms = self.queue.shared.cfg.clock.unix_millis();
        let cfg = &self.queue.shared.cfg;
        let offset = self.topic.append(cfg, std::slice::from_ref(&message))?;
        self.topic.notify();
        self.after_roll();
        Ok(offset)
    }

    /// Appends `messages` (one write, one fsync) and returns the offset of the first; the
    /// others follow contiguously. The caller keeps the messages, so a refused batch loses
    /// nothing.
    ///
    /// # Errors
    /// As [`Producer::send`]; size and quota checks happen before anything is written.
    pub fn send_batch(&self, messages: &[Message]) -> Result<u64> {
        let now = self.queue.shared.cfg.clock.unix_millis();
        let stamped: Vec<Message> = messages
            .iter()
            .map(|m| Message {
                timestamp_ms: now,
                ..m.clone()
            })
            .collect();
        let offset = self.topic.append(&self.queue.shared.cfg, &stamped)?;
        self.topic.notify();
        self.after_roll();
        Ok(offset)
    }

    /// Runs retention when the append rolled a segment. The send itself succeeded, so a
    /// retention error is logged, not returned (the next run retries).
    fn after_roll(&self) {
        if self.topic.log.take_rolled()
            && let Err(e) = self.topic.retain(&self.queue.shared.cfg)
        {
            tracing::warn!(topic = %self.topic.name, error = %e, "retention after a roll failed");
        }
    }

    /// The topic's name.
    #[must_use]
    pub fn topic(&self) -> &str {
        &self.topic.name
    }
}
