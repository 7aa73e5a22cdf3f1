//! Messages as sent and as delivered.

use bytes::Bytes;

/// A message to send: payload, optional key, headers and a not-before time.
///
/// # Examples
/// ```
/// use tierkit_mq::Message;
/// let m = Message::new("photo-42.jpg").with_key("user-7").with_header("size", "1024");
/// assert_eq!(m.header("size").map(|v| &v[..]), Some(&b"1024"[..]));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Message {
    pub(crate) payload: Bytes,
    pub(crate) key: Option<Bytes>,
    pub(crate) headers: Vec<(String, Bytes)>,
    pub(crate) not_before_ms: u64,
    pub(crate) timestamp_ms: u64,
}

impl Message {
    /// A message carrying `payload`.
    #[must_use]
    pub fn new(payload: impl Into<Bytes>) -> Self {
        Self {
            payload: payload.into(),
            ..Self::default()
        }
    }

    /// Sets the key (opaque to the queue; carried for the consumer).
    #[must_use]
    pub fn with_key(mut self, key: impl Into<Bytes>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Adds a header.
    #[must_use]
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<Bytes>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Do not deliver before `at_ms` (milliseconds since the Unix epoch, as read by the queue's
    /// [`Clock`](crate::Clock)).
    #[must_use]
    pub fn deliver_not_before(mut self, at_ms: u64) -> Self {
        self.not_before_ms = at_ms;
        self
    }

    /// The payload.
    #[must_use]
    pub fn payload(&self) -> &Bytes {
        &self.payload
    }

    /// The key, if any.
    #[must_use]
    pub fn key(&self) -> Option<&Bytes> {
        self.key.as_ref()
    }

    /// All headers in insertion order.
    #[must_use]
    pub fn headers(&self) -> &[(String, Bytes)] {
        &self.headers
    }

    /// The first header called `name`.
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&Bytes> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// When the queue accepted the message (milliseconds since the epoch; 0 before sending).
    #[must_use]
    pub fn timestamp_ms(&self) -> u64 {
        self.timestamp_ms
    }

    /// The not-before time in milliseconds since the epoch (0: deliver at once).
    #[must_use]
    pub fn not_before_ms(&self) -> u64 {
        self.not_before_ms
    }
}

/// A message handed to a consumer; acknowledge it with
/// [`Consumer::ack`](crate::Consumer::ack) or [`Consumer::nack`](crate::Consumer::nack).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub(crate) offset: u64,
    pub(crate) attempt: u32,
    pub(crate) message: Message,
}

impl Delivery {
    /// The message's offset in its topic (unique and stable: use it to deduplicate).
    #[must_use]
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// How many times this message has been delivered to the group, this time included (1 on
    /// the first delivery).
    #[must_use]
    pub fn delivery_count(&self) -> u32 {
        self.attempt
    }

    /// The message.
    #[must_use]
    pub fn message(&self) -> &Message {
        &self.message
    }

    /// The payload.
    #[must_use]
    pub fn payload(&self) -> &Bytes {
        &self.message.payload
    }
}
