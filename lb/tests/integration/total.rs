//! The running total of leases in flight (`View::total_in_flight`) that bounded-load consistent
//! hashing reads instead of summing over every backend: exact under add, remove, drain and
//! lease drops on any order, against an independent model (the leases the test holds).

use std::sync::Mutex;

use proptest::prelude::*;
use tierkit_lb::{Backend, BackendId, Balancer, Context, Lease, Policy, View};

/// Records what every pick sees as the total, and picks the first backend.
#[derive(Debug, Default)]
struct Probe {
    seen: Mutex<Vec<u64>>,
}

impl Policy<u64> for Probe {
    type Prepared = ();
    fn prepare(&self, _: &View<'_, u64>) {}
    fn pick(&self, (): &(), view: &View<'_, u64>, _: &Context<'_>) -> Option<usize> {
        self.seen.lock().unwrap().push(view.total_in_flight());
        Some(0)
    }
    fn name(&self) -> &'static str {
        "probe"
    }
    fn counts_total_in_flight(&self) -> bool {
        true
    }
}

#[derive(Debug, Clone)]
enum Op {
    Pick,
    DropLease(usize),
    Add,
    Remove(usize),
    Drain(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => Just(Op::Pick),
        3 => any::<usize>().prop_map(Op::DropLease),
        1 => Just(Op::Add),
        1 => any::<usize>().prop_map(Op::Remove),
        1 => any::<usize>().prop_map(Op::Drain),
    ]
}

proptest! {
    #[test]
    fn total_in_flight_is_exact_under_membership_changes(ops in prop::collection::vec(op(), 1..120)) {
        let lb = Balancer::builder().policy(Probe::default()).backend(Backend::new(0, 0)).build().unwrap();
        let mut next_id = 1_u64;
        let mut leases: Vec<Lease<u64>> = Vec::new(); // the model: the total is its length
        let mut drains = Vec::new();
        for op in ops {
            match op {
                Op::Pick => {
                    let before = lb.policy().seen.lock().unwrap().len();
                    let held = leases.len() as u64; // read before this pick's own lease exists
                    if let Ok(lease) = lb.pick(&Context::new()) {
                        leases.push(lease);
                    }
                    let seen = lb.policy().seen.lock().unwrap();
                    if seen.len() > before {
                        prop_assert_eq!(seen[before], held);
                    }
                }
                Op::DropLease(i) if !leases.is_empty() => {
                    drop(leases.swap_remove(i % leases.len()));
                }
                Op::Add => {
                    lb.add(Backend::new(next_id, next_id)).unwrap();
                    next_id += 1;
                }
                Op::Remove(i) => {
                    let members = lb.members();
                    if !members.is_empty() {
                        lb.remove(members[i % members.len()].id()).unwrap();
                    }
                }
                Op::Drain(i) => {
                    let members = lb.members();
                    if !members.is_empty() {
                        let id: BackendId = members[i % members.len()].id();
                        if let Ok(d) = lb.drain(id) {
                            drains.push(d);
                        }
                    }
                }
                Op::DropLease(_) => {}
            }
        }
        drop(leases);
        let seen_before = lb.policy().seen.lock().unwrap().len();
        lb.add(Backend::new(next_id, next_id)).unwrap();
        let _probe = lb.pick(&Context::new()).unwrap();
        prop_assert_eq!(lb.policy().seen.lock().unwrap()[seen_before], 0, "every lease dropped: total 0");
    }
}
