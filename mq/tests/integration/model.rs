//! Model-based property test: the queue against a naive model of its semantics.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use proptest::prelude::*;
use tierkit_mq::{Delivery, ManualClock, Message, Queue, SimDir};

const VIS_MS: u64 = 10_000;

#[derive(Debug, Clone)]
enum Op {
    Send { delay_ms: u64 },
    Recv,
    Ack(usize),
    Nack(usize, u64),
    Advance(u64),
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => prop_oneof![Just(0u64), Just(0), 1..20_000u64].prop_map(|delay_ms| Op::Send { delay_ms }),
        4 => Just(Op::Recv),
        3 => any::<usize>().prop_map(Op::Ack),
        1 => (any::<usize>(), 0..15_000u64).prop_map(|(i, d)| Op::Nack(i, d)),
        2 => (1..12_000u64).prop_map(Op::Advance),
        1 => Just(Op::Restart),
    ]
}

/// What the queue must do, written as plainly as possible.
#[derive(Default)]
struct Model {
    not_before: Vec<u64>,
    acked: BTreeSet<u64>,
    /// offset -> (deadline, count)
    inflight: BTreeMap<u64, (u64, u32)>,
    /// offset -> ready time after a nack or expiry
    ready_at: BTreeMap<u64, u64>,
    counts: BTreeMap<u64, u32>,
    /// Delivery counts are persisted at ack/nack time only; after a restart they are checked
    /// to be at least 1 and at most the model's count.
    uncertain: BTreeSet<u64>,
}

impl Model {
    fn available(&self, now: u64) -> BTreeSet<u64> {
        (0..self.not_before.len() as u64)
            .filter(|o| !self.acked.contains(o))
            .filter(|o| self.inflight.get(o).is_none_or(|(d, _)| *d <= now))
            .filter(|o| self.not_before[*o as usize] <= now || self.counts.contains_key(o))
            .filter(|o| self.ready_at.get(o).is_none_or(|r| *r <= now))
            .collect()
    }
}

fn open(dir: &SimDir, clock: &ManualClock) -> Queue {
    Queue::builder()
        .clock(clock.clone())
        .visibility_timeout(Duration::from_millis(VIS_MS))
        .max_deliveries(1_000)
        .build_with(dir.handle())
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]
    #[test]
    fn queue_matches_model(ops in proptest::collection::vec(op(), 1..60)) {
        let dir = SimDir::new();
        let clock = ManualClock::starting_at_unix_millis(1_000_000);
        let mut q = open(&dir, &clock);
        let mut m = Model::default();
        let mut held: Vec<Delivery> = Vec::new();
        for op in ops {
            let now = clock.now_ms_for_test();
            match op {
                Op::Send { delay_ms } => {
                    let off = q.producer("t").unwrap()
                        .send(Message::new("x").deliver_not_before(if delay_ms == 0 { 0 } else { now + delay_ms }))
                        .unwrap();
                    prop_assert_eq!(off, m.not_before.len() as u64);
                    m.not_before.push(if delay_ms == 0 { 0 } else { now + delay_ms });
                }
                Op::Recv => {
                    let avail = m.available(now);
                    let got = q.consumer("t", "g").unwrap().try_recv().unwrap();
                    match got {
                        None => prop_assert!(avail.is_empty(), "nothing delivered but {:?} available", avail),
                        Some(d) => {
                            prop_assert!(avail.contains(&d.offset()), "delivered {} not in {:?}", d.offset(), avail);
                            let expected = m.counts.get(&d.offset()).copied().unwrap_or(0) + 1;
                            if m.uncertain.contains(&d.offset()) {
                                prop_assert!(d.delivery_count() >= 1 && d.delivery_count() <= expected);
                            } else {
                                prop_assert_eq!(d.delivery_count(), expected);
                            }
                            m.counts.insert(d.offset(), expected);
                            m.inflight.insert(d.offset(), (now + VIS_MS, d.delivery_count()));
                            m.ready_at.remove(&d.offset());
                            held.push(d);
                        }
                    }
                }
                Op::Ack(i) | Op::Nack(i, _) if !held.is_empty() => {
                    let d = held.remove(i % held.len());
                    let valid = m.inflight.get(&d.offset())
                        .is_some_and(|(dl, c)| *c == d.delivery_count() && *dl > now);
                    let c = q.consumer("t", "g").unwrap();
                    let res = match op {
                        Op::Nack(_, delay) => c.nack(&d, Duration::from_millis(delay)).map(|()| Some(delay)),
                        _ => c.ack(&d).map(|()| None),
                    };
                    prop_assert_eq!(res.is_ok(), valid, "ack/nack validity of {}", d.offset());
                    if valid {
                        m.inflight.remove(&d.offset());
                        match res.unwrap() {
                            Some(delay) => { m.ready_at.insert(d.offset(), now + delay); }
                            None => { m.acked.insert(d.offset()); }
                        }
                    }
                }
                Op::Ack(_) | Op::Nack(..) => {}
                Op::Advance(ms) => clock.advance(Duration::from_millis(ms)),
                Op::Restart => {
                    drop(q);
                    dir.kill_process();
                    q = open(&dir, &clock);
                    // In-flight deliveries and nack delays are not persisted: ready at once.
                    m.inflight.clear();
                    m.ready_at.clear();
                    m.uncertain.extend(m.counts.keys().copied());
                    held.clear();
                }
            }
            let s = q.stats("t").unwrap();
            if let Some(g) = s.groups.first() {
                prop_assert_eq!(g.depth, m.not_before.len() as u64 - m.acked.len() as u64);
            }
        }
    }
}

trait NowForTest {
    fn now_ms_for_test(&self) -> u64;
}

impl NowForTest for ManualClock {
    fn now_ms_for_test(&self) -> u64 {
        tierkit_mq::Clock::unix_millis(self)
    }
}
