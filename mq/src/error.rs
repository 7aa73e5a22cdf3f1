//! The crate's error type.

use crate::Message;

/// Everything that can go wrong when opening, writing or reading a queue.
///
/// Errors that concern data on disk name the file and the position; a refused message comes back
/// inside the error ([`Error::into_message`]) so nothing the caller handed over is lost.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O operation failed.
    #[error("i/o error during {op}: {source}")]
    Io {
        /// What the queue was doing.
        op: &'static str,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A record before the tail of the last segment failed its checksum or is malformed.
    ///
    /// Everything before `position` in `file` is intact; nothing is skipped silently.
    #[error("corrupt record in {file} at byte {position} (expected offset {offset}): {reason}")]
    Corrupt {
        /// The segment or state file.
        file: String,
        /// Byte position of the bad record.
        position: u64,
        /// The offset the record should have carried.
        offset: u64,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// A file was written by an incompatible version of the format.
    #[error("{file} has format version {found}, this build reads version {supported}")]
    IncompatibleVersion {
        /// The file.
        file: String,
        /// The version found in the file.
        found: u32,
        /// The version this build reads and writes.
        supported: u32,
    },

    /// Another process (or another handle in this one) holds the queue directory's lock.
    #[error("queue directory is already open elsewhere")]
    AlreadyOpen,

    /// An fsync failed earlier; the handle refuses all further writes (see the crate docs).
    #[error("an fsync failed earlier; the queue handle is poisoned and must be reopened")]
    Poisoned,

    /// The encoded message is larger than the configured maximum record size.
    #[error("message of {size} bytes exceeds the maximum record size of {max} bytes")]
    Oversize {
        /// Encoded size of the message.
        size: usize,
        /// The limit.
        max: usize,
        /// The refused message.
        message: Box<Message>,
    },

    /// The disk quota of the queue is reached; the message was not written.
    #[error("disk quota of {quota} bytes reached ({used} bytes used)")]
    QuotaExceeded {
        /// Bytes the queue's log occupies.
        used: u64,
        /// The configured quota.
        quota: u64,
        /// The refused message.
        message: Box<Message>,
    },

    /// The disk is full; the message was not written.
    #[error("disk full while writing the log")]
    DiskFull {
        /// The refused message, if the failure concerned exactly one.
        message: Option<Box<Message>>,
    },

    /// A topic or group name is empty, too long, or contains characters other than
    /// `[A-Za-z0-9_-]`.
    #[error("invalid name {name:?}: use 1 to 64 characters from [A-Za-z0-9_-]")]
    InvalidName {
        /// The rejected name.
        name: String,
    },

    /// A builder setting is out of range.
    #[error("invalid configuration: {what} must be {expected}, got {got}")]
    InvalidConfig {
        /// The setting.
        what: &'static str,
        /// The accepted range.
        expected: &'static str,
        /// The value given.
        got: u64,
    },

    /// The delivery is not in flight for this group any more (already acknowledged, or its
    /// visibility timeout expired and it was delivered again).
    #[error("offset {offset} is not in flight for this consumer group")]
    NotInFlight {
        /// The offset of the delivery.
        offset: u64,
    },
}

impl Error {
    /// Returns the message that was refused, if this error refused one.
    ///
    /// # Examples
    /// ```
    /// use tierkit_mq::{Message, Queue};
    /// let queue = Queue::builder().max_record_size(64).build_in_memory()?;
    /// let err = queue.producer("t")?.send(Message::new(vec![0u8; 100])).unwrap_err();
    /// assert_eq!(err.into_message().map(|m| m.payload().len()), Some(100));
    /// # Ok::<(), tierkit_mq::Error>(())
    /// ```
    #[must_use]
    pub fn into_message(self) -> Option<Message> {
        match self {
            Self::Oversize { message, .. } | Self::QuotaExceeded { message, .. } => Some(*message),
            Self::DiskFull { message } => message.map(|m| *m),
            _ => None,
        }
    }

    pub(crate) fn io(op: &'static str) -> impl FnOnce(std::io::Error) -> Self {
        move |source| Self::Io { op, source }
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
