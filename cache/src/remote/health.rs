//! The rise/fall rules that mark a node down and bring it back, as in `tierkit-lb`'s active
//! health checks (HAProxy's `rise` and `fall`).
//!
//! - A node that is up goes down after `fall` consecutive failures. Failures are requests or
//!   probes that timed out or lost their connection; a success of either resets the count.
//! - A node that is down receives no requests; only the background probe talks to it, and it
//!   comes back after `rise` consecutive passing probes (and, in the tier, a flush).

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

/// One node's health counters. All methods are lock-free.
#[derive(Debug)]
pub(crate) struct Health {
    up: AtomicBool,
    fails: AtomicU32,
    passes: AtomicU32,
    downs: AtomicU64,
    rise: u32,
    fall: u32,
}

impl Health {
    /// `rise` and `fall` are at least 1 (the builder rejects 0).
    pub(crate) fn new(rise: u32, fall: u32, up: bool) -> Self {
        Self {
            up: AtomicBool::new(up),
            fails: AtomicU32::new(0),
            passes: AtomicU32::new(0),
            downs: AtomicU64::new(0),
            rise: rise.max(1),
            fall: fall.max(1),
        }
    }

    #[inline]
    pub(crate) fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }

    /// How many times the node went down.
    pub(crate) fn downs(&self) -> u64 {
        self.downs.load(Ordering::Relaxed)
    }

    /// A request or probe to an up node succeeded. Reads before writing, so the common case
    /// (no failures pending) writes nothing.
    #[inline]
    pub(crate) fn success(&self) {
        if self.fails.load(Ordering::Relaxed) != 0 {
            self.fails.store(0, Ordering::Relaxed);
        }
    }

    /// A request or probe failed. Returns `true` if this failure marked the node down (exactly
    /// one caller sees `true` per transition).
    pub(crate) fn failure(&self) -> bool {
        self.passes.store(0, Ordering::Relaxed);
        let fails = self.fails.fetch_add(1, Ordering::AcqRel).saturating_add(1);
        if fails >= self.fall && self.up.swap(false, Ordering::AcqRel) {
            self.downs.fetch_add(1, Ordering::Relaxed);
            return true;
        }
        false
    }

    /// A probe of a down node passed. Returns `true` once `rise` probes in a row have passed:
    /// the caller then prepares the node (flush) and calls [`mark_up`](Self::mark_up).
    pub(crate) fn probe_passed(&self) -> bool {
        self.fails.store(0, Ordering::Relaxed);
        self.passes.fetch_add(1, Ordering::AcqRel).saturating_add(1) >= self.rise
    }

    /// A probe of a down node failed: the run of passes starts over.
    pub(crate) fn probe_failed(&self) {
        self.passes.store(0, Ordering::Relaxed);
    }

    /// Marks the node up with clean counters.
    pub(crate) fn mark_up(&self) {
        self.passes.store(0, Ordering::Relaxed);
        self.fails.store(0, Ordering::Relaxed);
        self.up.store(true, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[derive(Debug, Clone, Copy)]
    enum Event {
        /// A request or a probe while up succeeded.
        Ok,
        /// A request or a probe while up failed.
        Fail,
        /// A probe while down passed.
        ProbeOk,
        /// A probe while down failed.
        ProbeFail,
    }

    /// The model: replays the whole history from the start, deciding the state from the runs of
    /// events since the last transition (no counters shared with the implementation).
    fn model_up(history: &[Event], rise: usize, fall: usize) -> bool {
        let mut up = true;
        let mut since = 0; // index of the last transition
        for i in 0..history.len() {
            let window = &history[since..=i];
            if up {
                // Down when the last `fall` applicable events are all failures.
                let applicable: Vec<_> = window
                    .iter()
                    .filter(|e| matches!(e, Event::Ok | Event::Fail))
                    .collect();
                let tail = applicable
                    .iter()
                    .rev()
                    .take_while(|e| matches!(e, Event::Fail));
                if tail.count() >= fall {
                    up = false;
                    since = i + 1;
                }
            } else {
                let applicable: Vec<_> = window
                    .iter()
                    .filter(|e| matches!(e, Event::ProbeOk | Event::ProbeFail))
                    .collect();
                let tail = applicable
                    .iter()
                    .rev()
                    .take_while(|e| matches!(e, Event::ProbeOk));
                if tail.count() >= rise {
                    up = true;
                    since = i + 1;
                }
            }
        }
        up
    }

    fn event() -> impl Strategy<Value = Event> {
        prop_oneof![
            Just(Event::Ok),
            Just(Event::Fail),
            Just(Event::ProbeOk),
            Just(Event::ProbeFail)
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn matches_the_model(rise in 1u32..4, fall in 1u32..4, events in prop::collection::vec(event(), 0..60)) {
            let h = Health::new(rise, fall, true);
            let mut applied = Vec::new();
            for e in events {
                // Events that cannot happen in the current state (no requests to a down node, no
                // down-probes to an up node) are not applied, as in the tier.
                let applies = match e {
                    Event::Ok | Event::Fail => h.is_up(),
                    Event::ProbeOk | Event::ProbeFail => !h.is_up(),
                };
                if !applies {
                    continue;
                }
                match e {
                    Event::Ok => h.success(),
                    Event::Fail => { h.failure(); }
                    Event::ProbeOk => { if h.probe_passed() { h.mark_up(); } }
                    Event::ProbeFail => h.probe_failed(),
                }
                applied.push(e);
                prop_assert_eq!(h.is_up(), model_up(&applied, rise as usize, fall as usize), "after {:?}", applied);
            }
        }
    }

    #[test]
    fn exactly_one_failure_reports_the_transition() {
        let h = Health::new(2, 3, true);
        let reported: Vec<bool> = (0..5).map(|_| h.failure()).collect();
        assert_eq!(reported, [false, false, true, false, false]);
        assert_eq!(h.downs(), 1);
        assert!(!h.probe_passed());
        h.probe_failed();
        assert!(!h.probe_passed());
        assert!(h.probe_passed());
        h.mark_up();
        assert!(h.is_up());
    }
}
