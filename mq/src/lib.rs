//! # tierkit-mq: a durable in-process message queue
//!
//! Web servers publish jobs, workers consume them, and the two tiers scale independently.
//! Messages live in an append-only log of checksummed segment files in a directory you name;
//! consumer groups track what they acknowledged in small state files next to it.
//!
//! ```
//! use std::time::Duration;
//! use tierkit_mq::{Durability, Message, Queue};
//!
//! # fn main() -> Result<(), tierkit_mq::Error> {
//! # let dir = std::env::temp_dir().join(format!("tierkit-mq-doc-{}", std::process::id()));
//! let queue = Queue::builder()
//!     .durability(Durability::Always) // send returns once the bytes are fsynced
//!     .visibility_timeout(Duration::from_secs(60))
//!     .build(&dir)?;
//! let offset = queue.producer("photos")?.send(Message::new("cat.jpg").with_key("user-7"))?;
//!
//! let worker = queue.consumer("photos", "thumbnailers")?;
//! let job = worker.recv_timeout(Duration::from_secs(1))?.expect("the job is ready");
//! assert_eq!(job.offset(), offset);
//! worker.ack(&job)?; // never delivered to "thumbnailers" again, also after a restart
//! # drop((worker, queue));
//! # std::fs::remove_dir_all(&dir).ok();
//! # Ok(())
//! # }
//! ```
//!
//! ## Guarantees
//! - **Durability**: see [`Durability`] for exactly what survives a process crash and a power
//!   loss under each policy. With `Always`, concurrent producers share fsyncs (group commit).
//! - **Recovery**: opening a directory validates every record (length, CRC-32C, offset), the
//!   ack journals and the group state files. A torn or corrupt record at the tail of the last
//!   segment is cut off; a headerless last segment (an interrupted roll) is removed; damaged
//!   or missing journal and state files and missing segment files are detected. Everything
//!   repaired is listed in one typed [`RecoveryReport`] ([`Queue::recovery_report`]); damage
//!   that cannot be repaired without losing acknowledged data is [`Error::Corrupt`].
//! - **Failures**: a full disk fails the send or ack with [`Error::DiskFull`] (the message
//!   comes back) and leaves nothing half-written; the queue works again once space is freed.
//!   Only what cannot be retried safely (a failed fsync) poisons the handle
//!   ([`Error::Poisoned`] names what failed).
//! - **Delivery**: at-least-once. Every group sees every message; within a group consumers
//!   compete. A delivery is acknowledged, negatively acknowledged (redelivered after a delay) or
//!   redelivered after the visibility timeout; after `max_deliveries` it moves to the group's
//!   dead-letter topic ([`Queue::dead_letter_topic`]) with the reason in a header. Every
//!   delivery carries its offset and delivery count for deduplication.
//! - **One owner**: an `flock` on the directory itself stops a second handle, in this process
//!   or another, from opening it ([`Error::AlreadyOpen`]); deleting files cannot undo it.
//!   Dropping the last handle joins the queue's threads and releases the lock before `drop`
//!   returns.
//!
//! ## Crate features
//! - `tokio`: the async API (`Consumer::recv` woken by sends, `Consumer::ack_async` whose
//!   fsyncs concurrent acks share, `Producer::send_async`). Off by default.
//! - `sim`: test and fuzzing helpers: `SimDir` (a simulated disk that forgets unsynced bytes
//!   on a power loss), `decode_record` and `fuzz_decode_and_recover`. Off by default.
//!
//! Time comes from a [`Clock`] ([`ManualClock`] in tests, shared with every tierkit crate).

#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "tokio")]
mod asynchronous;
mod background;
mod builder;
mod consumer;
mod durability;
mod error;
#[cfg(feature = "sim")]
mod fuzzing;
mod group;
mod journal;
mod log;
mod message;
mod producer;
mod queue;
mod record;
mod recovery;
mod report;
// Always built: it is also the in-memory backend of `QueueBuilder::build_in_memory`.
#[cfg_attr(not(feature = "sim"), allow(dead_code, unreachable_pub))]
mod sim;
mod stats;
mod storage;
mod topic;

pub use builder::QueueBuilder;
/// The payload type, re-exported so users need no direct `bytes` dependency.
pub use bytes::Bytes;
pub use consumer::{Consumer, DEAD_LETTER_OFFSET, DEAD_LETTER_REASON};
pub use durability::Durability;
pub use error::{Error, Result};
#[cfg(feature = "sim")]
pub use fuzzing::fuzz_decode_and_recover;
pub use message::{Delivery, Message};
pub use producer::Producer;
pub use queue::Queue;
#[cfg(feature = "sim")]
pub use record::decode_record;
pub use report::{RecoveryReport, Repair, TailDamage};
#[cfg(feature = "sim")]
pub use sim::SimDir;
pub use stats::{GroupStats, Stats};
pub use storage::{StdDir, StorageDir, StorageFile};
pub use tierkit_core::{Clock, ManualClock, SystemClock};

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
