//! The queue's background threads: periodic fsync (`Interval`), write-buffer flushes and
//! retention. They sleep on a condition variable, so closing the queue wakes them at once, and
//! the queue joins them before it releases the directory lock.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::queue::Shared;
use crate::topic::Topic;
use crate::{Durability, Error, Result};

#[derive(Default)]
struct Stop {
    stopped: Mutex<bool>,
    cv: Condvar,
}

pub(crate) struct Background {
    stop: Arc<Stop>,
    threads: Vec<JoinHandle<()>>,
}

impl Background {
    /// Starts the threads the configuration needs.
    pub(crate) fn start(shared: &Arc<Shared>) -> Result<Self> {
        let mut bg = Self {
            stop: Arc::new(Stop::default()),
            threads: Vec::new(),
        };
        let cfg = &shared.cfg;
        if cfg.read_only {
            return Ok(bg);
        }
        if let Durability::Interval(every) = cfg.durability {
            // An error poisons the log; producers see it on their next send.
            bg.spawn(shared, "tierkit-mq-fsync", every, |t| {
                let _ = t.log.sync_all();
            })?;
        }
        if cfg.retention_bytes.is_some() || cfg.retention_age_ms.is_some() {
            let rcfg = cfg.clone();
            bg.spawn(
                shared,
                "tierkit-mq-retention",
                Duration::from_secs(1),
                move |t| {
                    if let Err(e) = t.retain(&rcfg) {
                        tracing::warn!(topic = %t.name, error = %e, "retention failed");
                    }
                },
            )?;
        }
        if cfg.write_buffer > 0 {
            // A failed write keeps the records buffered; the next send reports the error.
            bg.spawn(shared, "tierkit-mq-write", cfg.write_delay, |t| {
                let _ = t.log.flush_buffer();
            })?;
        }
        Ok(bg)
    }

    /// Runs `work` on every topic each `every` until stopped.
    fn spawn(
        &mut self,
        shared: &Arc<Shared>,
        name: &str,
        every: Duration,
        work: impl Fn(&Topic) + Send + 'static,
    ) -> Result<()> {
        let shared = Arc::clone(shared);
        let stop = Arc::clone(&self.stop);
        let spawned = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                loop {
                    {
                        let mut stopped = stop.stopped.lock();
                        // `None`: `every` reaches past the end of time; sleep until stopped.
                        let until = tierkit_core::deadline_after(Instant::now(), every);
                        while !*stopped {
                            match until {
                                Some(u) => {
                                    if stop.cv.wait_until(&mut stopped, u).timed_out() {
                                        break;
                                    }
                                }
                                None => stop.cv.wait(&mut stopped),
                            }
                        }
                        if *stopped {
                            return;
                        }
                    }
                    for t in shared.topics() {
                        work(&t);
                    }
                }
            });
        match spawned {
            Ok(t) => {
                self.threads.push(t);
                Ok(())
            }
            Err(e) => {
                self.stop_and_join();
                Err(Error::io("spawn background thread")(e))
            }
        }
    }

    /// Wakes every thread and waits for it to finish its current round.
    pub(crate) fn stop_and_join(&mut self) {
        *self.stop.stopped.lock() = true;
        self.stop.cv.notify_all();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
