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
//! - **Recovery**: opening a directory validates every record (length, CRC-32C, offset). A torn
//!   or corrupt record at the tail of the last segment is cut off and reported in
//!   [`Queue::recovery_report`]; damage anywhere else is [`Error::Corrupt`], never skipped.
//!   A failed fsync poisons the handle ([`Error::Poisoned`]): it is never retried.
//! - **Delivery**: at-least-once. Every group sees every message; within a group consumers
//!   compete. A delivery is acknowledged, negatively acknowledged (redelivered after a delay) or
//!   redelivered after the visibility timeout; after `max_deliveries` it moves to the topic
//!   `<topic>-<group>-dlq` with the reason in a header. Every delivery carries its offset and
//!   delivery count for deduplication.
//! - **One owner**: a lock file stops a second handle from opening the directory
//!   ([`Error::AlreadyOpen`]).
//!
//! ## Testing with power losses
//! The log is written through the [`StorageDir`] / [`StorageFile`] traits. [`SimDir`] keeps
//! files in memory and on [`SimDir::crash`] forgets everything not fsynced, tearing the last
//! write; it also backs [`QueueBuilder::build_in_memory`]. Time comes from a [`Clock`]
//! ([`ManualClock`] in tests).

#![deny(missing_docs)]

mod asynchronous;
mod builder;
mod clock;
mod consumer;
mod durability;
mod error;
mod fuzzing;
mod group;
mod journal;
mod log;
mod message;
mod producer;
mod queue;
mod record;
mod recovery;
mod sim;
mod stats;
mod storage;

pub use builder::QueueBuilder;
/// The payload type, re-exported so users need no direct `bytes` dependency.
pub use bytes::Bytes;
pub use clock::{Clock, ManualClock, SystemClock};
pub use consumer::{Consumer, DEAD_LETTER_OFFSET, DEAD_LETTER_REASON};
pub use durability::Durability;
pub use error::{Error, Result};
pub use fuzzing::fuzz_decode_and_recover;
pub use log::TailDamage;
pub use message::{Delivery, Message};
pub use producer::Producer;
pub use queue::Queue;
pub use record::decode_record;
pub use sim::SimDir;
pub use stats::{GroupStats, Stats};
pub use storage::{StdDir, StorageDir, StorageFile};

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
