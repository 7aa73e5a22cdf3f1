//! The few things every tierkit crate shares.
//!
//! - [`Clock`]: the one time source of every crate (cache TTLs, lb ejection and slow start,
//!   replication lag, mq timestamps and redelivery). [`SystemClock`] in production,
//!   [`ManualClock`] in tests and simulations, where time moves only when told to.
//! - [`deadline_after`]: `Instant + Duration` that cannot overflow; `Duration::MAX` (or any
//!   duration past the end of `Instant`'s range) means "no deadline".
//! - [`SplitMix64`] and [`process_seed`]: a small seeded generator for decisions and
//!   simulations, seeded per process from OS entropy unless the user asks for a fixed seed.
//!
//! ```
//! use std::time::Duration;
//! use tierkit_core::{Clock, ManualClock};
//!
//! let clock = ManualClock::new();
//! let start = clock.now_nanos();
//! clock.advance(Duration::from_millis(5));
//! assert_eq!(clock.now_nanos() - start, 5_000_000);
//! ```

#![deny(missing_docs)]

mod clock;
mod deadline;
mod rng;

pub use clock::{Clock, ManualClock, SystemClock};
pub use deadline::{deadline_after, nanos_after};
pub use rng::{SplitMix64, process_seed};
