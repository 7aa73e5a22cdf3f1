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

    /// An operation that cannot be retried safely failed earlier (an fsync of the log or of an
    /// ack journal, a directory fsync after a segment roll, or cutting a partial write): whether
    /// its bytes are on disk is unknown, so the handle refuses all further writes. Reopen the
    /// queue to continue from what is on disk.
    #[error("the queue handle is poisoned: {op} failed earlier; reopen the queue")]
    Poisoned {
        /// What failed.
        op: &'static str,
    },

    /// A part of the message is larger than its limit: the whole encoded record (limit: the
    /// configured [maximum record size](crate::QueueBuilder::max_record_size)), or a field whose
    /// length has a fixed width in the format (a header name: 65,535 bytes; 65,535 headers; a
    /// key or header value: 4 GiB).
    #[error("{what} of {size} bytes exceeds its limit of {max} bytes")]
    Oversize {
        /// What is too large: `"record"`, `"key"`, `"header name"`, `"header value"` or
        /// `"header count"` (then `size` and `max` count headers, not bytes).
        what: &'static str,
        /// Its size (for a record: header, fixed fields, key, headers and payload).
        size: usize,
        /// The limit it exceeds.
        max: usize,
        /// The refused message.
        message: Box<Message>,
    },

    /// The queue was opened read-only ([`QueueBuilder::read_only`](crate::QueueBuilder::read_only)):
    /// sends, acknowledgements and other writes are refused.
    #[error("the queue was opened read-only; {op} is refused")]
    ReadOnly {
        /// The refused operation.
        op: &'static str,
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

    /// The disk is full. Nothing was recorded by the failed operation (a partial write is cut
    /// off again) and the handle stays usable: retry once space is freed.
    #[error("disk full during {op}")]
    DiskFull {
        /// What the queue was doing: `"append"`, `"segment roll"`, `"ack journal append"`, ...
        op: &'static str,
        /// The refused message, if the failure concerned exactly one send.
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
            Self::DiskFull { message, .. } => message.map(|m| *m),
            _ => None,
        }
    }

    /// An I/O error of `op`; a full disk becomes [`Error::DiskFull`].
    pub(crate) fn io(op: &'static str) -> impl FnOnce(std::io::Error) -> Self {
        move |source| {
            if source.kind() == std::io::ErrorKind::StorageFull {
                Self::DiskFull { op, message: None }
            } else {
                Self::Io { op, source }
            }
        }
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
