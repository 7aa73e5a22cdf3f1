//! The async (tokio) API: `recv` woken by sends, with dead-lettering, acknowledgements and
//! sends on tokio's blocking pool so an fsync never stalls a runtime thread.

use std::time::Duration;

use crate::consumer::{Step, Take};
use crate::topic::Sleeper;
use crate::{Consumer, Delivery, Error, Message, Producer, Result};

impl Consumer {
    /// Waits for the next ready message.
    ///
    /// Woken by the send that makes a message visible (no polling), or when the group's next
    /// timer (a nack delay, a visibility timeout, a not-before time) comes due.
    ///
    /// A message that reached [`max_deliveries`](crate::QueueBuilder::max_deliveries) is moved
    /// to the dead-letter topic on tokio's blocking pool (its append and the fsync of its
    /// acknowledgement never run on a runtime thread), before anything is delivered; a
    /// message ready for delivery is read from the log on the runtime thread.
    ///
    /// Cancellation-safe: if the future is dropped, no message was taken (a delivery exists
    /// only once this returns it); dead-lettering that had started completes.
    ///
    /// # Examples
    /// ```
    /// use tierkit_mq::{Message, Queue};
    /// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
    /// let queue = Queue::builder().build_in_memory()?;
    /// let consumer = queue.consumer("jobs", "workers")?;
    /// queue.producer("jobs")?.send_async(Message::new("job")).await?;
    /// let job = consumer.recv().await?;
    /// consumer.ack_async(&job).await?;
    /// # Ok::<(), tierkit_mq::Error>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    /// As [`Consumer::try_recv`] (an error takes no delivery); [`Error::Io`] if the blocking
    /// task could not run.
    ///
    /// # Panics
    /// When a timer is pending and the runtime was built without its time driver
    /// (`enable_time`), as every `tokio::time` function does.
    #[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
    pub async fn recv(&self) -> Result<Delivery> {
        let _sleeper = Sleeper::new(&self.topic);
        loop {
            let notified = self.topic.async_wake.notified();
            tokio::pin!(notified);
            // Registered before looking, so a send between the look and the wait wakes us.
            notified.as_mut().enable();
            // The fast path, on this thread: a look at the group's state and a read of the
            // message from the log. Dead-lettering (an append to the dead-letter topic, a
            // journal write and fsyncs) goes to the blocking pool, then we look again.
            match self.take(Take::DeliverOnly)? {
                Step::Delivered(d) => return Ok(d),
                Step::DeadLetterDue => {
                    let c = self.clone();
                    blocking(move || c.dead_letter_due()).await?;
                    continue;
                }
                Step::Idle | Step::Journaled(_) => {}
            }
            match self.next_timer() {
                Some(due) => {
                    let _ = tokio::time::timeout(due, notified).await;
                }
                None => notified.await,
            }
        }
    }

    /// [`Consumer::ack`] on tokio's blocking pool: the journal's fsync never blocks a runtime
    /// thread, and concurrent `ack_async` calls of a group share one fsync.
    ///
    /// If the future is dropped after it started, the ack may still be recorded.
    ///
    /// # Errors
    /// As [`Consumer::ack`]; [`Error::Io`] if the blocking task could not run.
    #[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
    pub async fn ack_async(&self, delivery: &Delivery) -> Result<()> {
        let (c, d) = (self.clone(), delivery.clone());
        blocking(move || c.ack(&d)).await
    }

    /// [`Consumer::ack_batch`] on tokio's blocking pool.
    ///
    /// # Errors
    /// As [`Consumer::ack_batch`].
    #[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
    pub async fn ack_batch_async(&self, deliveries: Vec<Delivery>) -> Result<()> {
        let c = self.clone();
        blocking(move || c.ack_batch(&deliveries)).await
    }

    /// [`Consumer::nack`] on tokio's blocking pool.
    ///
    /// # Errors
    /// As [`Consumer::nack`].
    #[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
    pub async fn nack_async(&self, delivery: &Delivery, delay: Duration) -> Result<()> {
        let (c, d) = (self.clone(), delivery.clone());
        blocking(move || c.nack(&d, delay)).await
    }
}

impl Producer {
    /// [`Producer::send`] on tokio's blocking pool, so an fsync never stalls the runtime.
    ///
    /// If the future is dropped after it started, the message may still be appended.
    ///
    /// # Errors
    /// As [`Producer::send`]; [`Error::Io`] if the blocking task could not run.
    #[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
    pub async fn send_async(&self, message: Message) -> Result<u64> {
        let p = self.clone();
        blocking(move || p.send(message)).await
    }

    /// [`Producer::send_batch`] on tokio's blocking pool.
    ///
    /// # Errors
    /// As [`Producer::send_batch`].
    #[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
    pub async fn send_batch_async(&self, messages: Vec<Message>) -> Result<u64> {
        let p = self.clone();
        blocking(move || p.send_batch(&messages)).await
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Io {
            op: "blocking task",
            source: std::io::Error::other(e.to_string()),
        })?
}
