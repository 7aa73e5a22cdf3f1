//! When an accepted message reaches stable storage.

use std::time::Duration;

/// When `send` returns relative to the fsync of the message's bytes.
///
/// | policy | after a process crash (kill -9, panic) | after a power loss / kernel crash |
/// |---|---|---|
/// | `Always` | nothing whose `send` returned is lost | nothing whose `send` returned is lost |
/// | `Interval(d)` | nothing whose `send` returned is lost | messages sent in the last `d` (plus one fsync) may be lost |
/// | `Never` | nothing whose `send` returned is lost | anything not yet written back by the OS may be lost |
///
/// A process crash never loses a returned send under any policy because the bytes are in the
/// operating system's page cache once `send` returns, unless the queue has a write buffer
/// ([`QueueBuilder::write_buffer`](crate::QueueBuilder::write_buffer)): then, under `Interval`
/// and `Never`, a process crash loses what the buffer held (at most its size, at most its
/// delay's worth of sends), exactly as a power loss would. Under every policy the log is
/// recovered to a prefix: a lost message also loses every later message, never an earlier one,
/// and a torn last record is cut off and reported. With `Always`, concurrent producers share one
/// fsync (group commit), and consumers only see messages that are already durable, so a consumer
/// never processes a message that a power loss could take back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Durability {
    /// `send` returns only after its bytes are fsynced (shared with concurrent sends).
    #[default]
    Always,
    /// A background thread fsyncs every interval; `send` returns after the write.
    Interval(Duration),
    /// `send` never waits for an fsync: the OS writes records back in its own time (segment
    /// rolls and state files are still fsynced, and the active segment is fsynced in the
    /// background after every 8 MiB written to it, so that a roll finds little left to write).
    Never,
}
