//! The async (tokio) API.

use std::time::Duration;

use crate::queue::Sleeper;
use crate::{Consumer, Delivery, Error, Message, Producer, Result};

/// How often a waiting `recv` re-checks timers (delays, visibility timeouts) without a send.
const TIMER_POLL: Duration = Duration::from_millis(10);

impl Consumer {
    /// Waits for the next ready message.
    ///
    /// Cancellation-safe: if the future is dropped, no message was taken (a delivery exists
    /// only once this returns it).
    ///
    /// # Examples
    /// ```
    /// use tierkit_mq::{Message, Queue};
    /// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
    /// let queue = Queue::builder().build_in_memory()?;
    /// let consumer = queue.consumer("jobs", "workers")?;
    /// queue.producer("jobs")?.send_async(Message::new("job")).await?;
    /// let job = consumer.recv().await?;
    /// consumer.ack(&job)?;
    /// # Ok::<(), tierkit_mq::Error>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    /// As [`Consumer::try_recv`].
    pub async fn recv(&self) -> Result<Delivery> {
        let _sleeper = Sleeper::new(&self.topic);
        loop {
            let notified = self.topic.async_wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(d) = self.try_recv()? {
                return Ok(d);
            }
            // Woken by a send, or after the poll interval to re-check timers.
            let _ = tokio::time::timeout(TIMER_POLL, notified).await;
        }
    }
}

impl Producer {
    /// [`Producer::send`] on tokio's blocking pool, so an fsync never stalls the runtime.
    ///
    /// If the future is dropped after it started, the message may still be appended.
    ///
    /// # Errors
    /// As [`Producer::send`]; [`Error::Io`] if the blocking task could not run.
    pub async fn send_async(&self, message: Message) -> Result<u64> {
        let p = self.clone();
        tokio::task::spawn_blocking(move || p.send(message))
            .await
            .map_err(join_error)?
    }

    /// [`Producer::send_batch`] on tokio's blocking pool.
    ///
    /// # Errors
    /// As [`Producer::send_batch`].
    pub async fn send_batch_async(&self, messages: Vec<Message>) -> Result<u64> {
        let p = self.clone();
        tokio::task::spawn_blocking(move || p.send_batch(&messages))
            .await
            .map_err(join_error)?
    }
}

fn join_error(e: tokio::task::JoinError) -> Error {
    Error::Io {
        op: "blocking send task",
        source: std::io::Error::other(e.to_string()),
    }
}
