//! Membership changes: errors, draining, state surviving rebuilds, and churn under load.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use tierkit_lb::{
    Backend, BackendId, Balancer, Context, Error, LeastLatency, NoBackend, PowerOfTwoChoices,
    RoundRobin, WeightedRoundRobin,
};

#[test]
fn errors_are_clear() {
    let dup = Balancer::builder(RoundRobin::new())
        .backend(Backend::new(1u64, "a"))
        .backend(Backend::new(1u64, "b"))
        .build();
    assert_eq!(dup.unwrap_err(), Error::DuplicateId(BackendId(1)));
    let lb = Balancer::builder(RoundRobin::new()).build().unwrap();
    assert_eq!(lb.pick(&Context::new()).unwrap_err(), NoBackend::Empty);
    lb.add(Backend::new(1u64, "a")).unwrap();
    // Finding 6: the refused backend comes back, with the reason.
    let refused = lb.add(Backend::new(1u64, "again")).unwrap_err();
    assert_eq!(refused.error(), &Error::DuplicateId(BackendId(1)));
    let back = refused.into_inner();
    assert_eq!((back.id(), *back.value()), (BackendId(1), "again"));
    assert_eq!(
        lb.remove(BackendId(9)).unwrap_err(),
        Error::UnknownBackend(BackendId(9))
    );
    assert_eq!(
        lb.set_weight(BackendId(9), 1).unwrap_err(),
        Error::UnknownBackend(BackendId(9))
    );
    assert!(lb.drain(BackendId(9)).is_err());
    // Zero weight drains; it is not a panic and not an error.
    lb.set_weight(BackendId(1), 0).unwrap();
    assert_eq!(
        lb.pick(&Context::new()).unwrap_err(),
        NoBackend::AllDraining
    );
    lb.set_weight(BackendId(1), 2).unwrap();
    assert_eq!(*lb.pick(&Context::new()).unwrap(), "a");
    assert!(
        Balancer::builder(RoundRobin::new())
            .panic_threshold(101)
            .backend(Backend::new(1u64, 1))
            .build()
            .is_err()
    );
    assert_eq!(
        NoBackend::AllDraining.to_string(),
        "no backend: all draining"
    );
}

#[test]
fn drain_completes_only_after_the_last_lease_drops() {
    let lb = Balancer::builder(RoundRobin::new())
        .backends((0..2u64).map(|i| Backend::new(i, i)))
        .build()
        .unwrap();
    let held: Vec<_> = (0..4).map(|_| lb.pick(&Context::new()).unwrap()).collect();
    let drain = lb.drain(BackendId(0)).unwrap();
    assert_eq!(drain.in_flight(), 2);
    assert!((0..10).all(|_| *lb.pick(&Context::new()).unwrap() == 1));
    assert!(!drain.wait_timeout(Duration::from_millis(20)));
    let mut held = held;
    let zero: Vec<_> = held
        .iter()
        .enumerate()
        .filter(|(_, l)| ***l == 0)
        .map(|(i, _)| i)
        .collect();
    drop(held.remove(zero[1]));
    assert!(!drain.is_complete());
    // The last lease drops on another thread while this one waits.
    let last = held.remove(zero[0]);
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        drop(last);
    });
    assert!(drain.wait_timeout(Duration::from_secs(5)));
    t.join().unwrap();
    assert!(lb.stats().backends[0].draining);
    lb.undrain(BackendId(0)).unwrap();
    assert!((0..4).any(|_| *lb.pick(&Context::new()).unwrap() == 0));
}

#[test]
fn backend_state_survives_rebuilds() {
    let lb = Balancer::builder(LeastLatency::new())
        .backends((0..3u64).map(|i| Backend::new(i, i)))
        .build()
        .unwrap();
    let held = lb.pick(&Context::new()).unwrap();
    let id = held.id();
    for _ in 0..10 {
        lb.pick(&Context::new())
            .unwrap()
            .success(Duration::from_millis(5));
    }
    let before = lb.stats();
    lb.add(Backend::new(7u64, 7)).unwrap();
    lb.set_weight(BackendId(1), 3).unwrap();
    lb.remove(BackendId(7)).unwrap();
    let after = lb.stats();
    for (b, a) in before.backends.iter().zip(&after.backends) {
        assert_eq!(b.id, a.id);
        assert_eq!(b.picks, a.picks);
        assert_eq!(b.in_flight, a.in_flight);
        assert_eq!(b.successes, a.successes);
        assert_eq!(b.latency, a.latency);
    }
    assert!(after.version > before.version);
    assert_eq!(
        after
            .backends
            .iter()
            .find(|b| b.id == id)
            .unwrap()
            .in_flight,
        1
    );
    drop(held);
    // A lease outlives its backend's removal and still counts correctly.
    let l = lb.pick(&Context::new()).unwrap();
    let gone = l.id();
    lb.remove(gone).unwrap();
    assert_eq!(l.id(), gone);
    l.success(Duration::from_millis(1));
}

#[test]
fn round_robin_position_survives_rebuilds() {
    let lb = Balancer::builder(RoundRobin::new())
        .backends((0..4u64).map(|i| Backend::new(i, i)))
        .build()
        .unwrap();
    assert_eq!(*lb.pick(&Context::new()).unwrap(), 0);
    assert_eq!(*lb.pick(&Context::new()).unwrap(), 1);
    lb.set_weight(BackendId(3), 2).unwrap();
    assert_eq!(*lb.pick(&Context::new()).unwrap(), 2);
}

/// 8 threads pick while membership churns; once `remove` has returned, no pick that starts
/// afterwards may return the removed backend.
#[test]
fn concurrent_picks_never_return_a_removed_backend() {
    fn run<P: tierkit_lb::Policy<u64>>(policy: P) {
        let lb = Arc::new(
            Balancer::builder(policy)
                .backends((0..16u64).map(|i| Backend::new(i, i)))
                .build()
                .unwrap(),
        );
        // removed_at[id] = generation after which `id` is gone (u64::MAX = present).
        let removed: Arc<Vec<AtomicU64>> =
            Arc::new((0..64).map(|_| AtomicU64::new(u64::MAX)).collect());
        let generation = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicU64::new(0));
        let barrier = Arc::new(Barrier::new(9));
        let pickers: Vec<_> = (0..8)
            .map(|_| {
                let (lb, removed, generation, stop, barrier) =
                    (lb.clone(), removed.clone(), generation.clone(), stop.clone(), barrier.clone());
                let done = done.clone();
                std::thread::spawn(move || {
                    barrier.wait();
                    let mut picks = 0u64;
                    while !stop.load(Ordering::Acquire) {
                        let gen_before = generation.load(Ordering::Acquire);
                        if let Ok(l) = lb.pick(&Context::new().with_hash(picks)) {
                            let gone_at = removed[*l as usize].load(Ordering::Acquire);
                            assert!(gone_at > gen_before,
                                "picked {} removed at generation {gone_at}, pick started at {gen_before}", *l);
                        }
                        picks += 1;
                        if picks.is_multiple_of(64) {
                            done.fetch_add(64, Ordering::Relaxed);
                        }
                    }
                    picks
                })
            })
            .collect();
        barrier.wait();
        let mut next = 16u64;
        // At least 300 membership changes, and enough picks interleaved with them however the
        // scheduler treats the picker threads (a loaded CI machine may starve them).
        let mut round = 0u64;
        while round < 300 || (done.load(Ordering::Relaxed) < 20_000 && round < 1_000_000) {
            // Remove the oldest member, add a fresh id; ids are never reused.
            let victim = round;
            lb.remove(BackendId(victim)).unwrap();
            // Publish "removed as of generation g+1" only after remove returned.
            let g = generation.load(Ordering::Acquire) + 1;
            removed[(victim % 64) as usize].store(g, Ordering::Release);
            generation.store(g, Ordering::Release);
            removed[(next % 64) as usize].store(u64::MAX, Ordering::Release);
            lb.add(Backend::new(next, next % 64)).unwrap();
            next += 1;
            if round.is_multiple_of(3) {
                lb.set_weight(BackendId(next - 1), 2).unwrap();
            }
            round += 1;
            if round >= 300 {
                std::thread::yield_now();
            }
        }
        stop.store(true, Ordering::Release);
        let total: u64 = pickers.into_iter().map(|p| p.join().unwrap()).sum();
        assert!(total > 1_000);
    }
    run(RoundRobin::new());
    run(WeightedRoundRobin::new());
    run(PowerOfTwoChoices::new());
    run(tierkit_lb::ConsistentHash::ring());
}

/// Stress for the lease/handle reference counting (`shared.rs`): leases are taken on several
/// threads, moved to other threads and dropped there, held across their backend's removal and
/// across drains, while membership churns. Every backend value must be dropped exactly once,
/// and never while a lease or handle can still read it (each value carries a canary that its
/// drop destroys; holders check it).
#[test]
fn leases_and_handles_free_each_backend_exactly_once_under_churn() {
    use std::sync::atomic::AtomicU32;
    use std::sync::mpsc;

    const MAGIC: u64 = 0x5eed_cafe_f00d_d00d;
    const IDS: usize = 1 << 16;

    struct Tracked {
        id: u64,
        canary: u64,
        drops: Arc<Vec<AtomicU32>>,
    }
    impl Tracked {
        fn check(&self) {
            assert_eq!(
                self.canary,
                MAGIC ^ self.id,
                "backend {} used after free",
                self.id
            );
        }
    }
    impl Drop for Tracked {
        fn drop(&mut self) {
            self.check();
            self.canary = 0;
            self.drops[self.id as usize].fetch_add(1, Ordering::SeqCst);
        }
    }

    fn run<P: tierkit_lb::Policy<Tracked>>(policy: P) {
        let drops: Arc<Vec<AtomicU32>> = Arc::new((0..IDS).map(|_| AtomicU32::new(0)).collect());
        let tracked = |id: u64| Tracked {
            id,
            canary: MAGIC ^ id,
            drops: drops.clone(),
        };
        let lb = Arc::new(
            Balancer::builder(policy)
                .backends((0..8u64).map(|i| Backend::new(i, tracked(i))))
                .build()
                .unwrap(),
        );
        let stop = Arc::new(AtomicBool::new(false));
        let picked = Arc::new(AtomicU64::new(0));
        let (tx, rx) = mpsc::channel::<tierkit_lb::Lease<Tracked>>();
        let rx = Arc::new(parking_lot::Mutex::new(rx));
        // Droppers: receive leases from the pickers and drop them (in batches, so some live a
        // while), reporting outcomes on some.
        let droppers: Vec<_> = (0..2)
            .map(|_| {
                let rx = rx.clone();
                std::thread::spawn(move || {
                    let mut held = Vec::new();
                    let mut n = 0u64;
                    loop {
                        let next = rx.lock().recv_timeout(Duration::from_millis(1));
                        match next {
                            Ok(l) => {
                                l.check();
                                held.push(l);
                            }
                            Err(mpsc::RecvTimeoutError::Timeout) => {}
                            Err(mpsc::RecvTimeoutError::Disconnected) => break,
                        }
                        if held.len() >= 16 {
                            for l in held.drain(..) {
                                n += 1;
                                match n % 3 {
                                    0 => l.success(Duration::from_micros(n % 500)),
                                    1 => l.failure(),
                                    _ => drop(l),
                                }
                            }
                        }
                    }
                    drop(held);
                })
            })
            .collect();
        // Pickers: keep some leases locally, send the others away.
        let pickers: Vec<_> = (0..3)
            .map(|t| {
                let (lb, stop, tx) = (lb.clone(), stop.clone(), tx.clone());
                let picked = picked.clone();
                std::thread::spawn(move || {
                    let mut local = Vec::new();
                    let mut k = 0u64;
                    while !stop.load(Ordering::Acquire) {
                        k += 1;
                        if let Ok(l) = lb.pick(&Context::new().with_hash(k)) {
                            l.check();
                            picked.fetch_add(1, Ordering::Relaxed);
                            if (k + t).is_multiple_of(4) {
                                local.push(l);
                            } else {
                                let _ = tx.send(l);
                            }
                        }
                        if local.len() > 32 {
                            local.drain(..16);
                        }
                        if k.is_multiple_of(97) {
                            for m in lb.members() {
                                m.value().check();
                            }
                        }
                    }
                })
            })
            .collect();
        drop(tx);
        // Churn: remove the oldest member, add a fresh id, sometimes drain one first; at least
        // 2,000 rounds and 50,000 picks interleaved with them (however the scheduler treats the
        // threads), within the id budget.
        let mut next = 8u64;
        let mut round = 0u64;
        while next < IDS as u64 && (round < 2_000 || picked.load(Ordering::Relaxed) < 50_000) {
            round += 1;
            let victim = round - 1;
            if round.is_multiple_of(5) {
                let drain = lb.drain(BackendId(victim)).unwrap();
                if drain.wait_timeout(Duration::from_millis(1)) {
                    assert_eq!(drain.in_flight(), 0);
                }
                if round.is_multiple_of(10) {
                    lb.undrain(BackendId(victim)).unwrap();
                }
            }
            lb.remove(BackendId(victim)).unwrap();
            lb.add(Backend::new(next, tracked(next))).unwrap();
            next += 1;
            if round.is_multiple_of(8) {
                std::thread::yield_now();
            }
        }
        assert!(picked.load(Ordering::Relaxed) > 1_000);
        stop.store(true, Ordering::Release);
        for p in pickers {
            p.join().unwrap();
        }
        for d in droppers {
            d.join().unwrap();
        }
        // Every lease is gone, the pickers' caches too; the removed backends are freed (by the
        // refresher, or at once by the next mutating call or `refresh`), the members still
        // hold theirs.
        lb.refresh();
        let members: Vec<u64> = lb.members().iter().map(|m| m.value().id).collect();
        assert_eq!(members.len(), 8);
        for id in 0..next {
            let expect = u32::from(!members.contains(&id));
            assert_eq!(
                drops[id as usize].load(Ordering::SeqCst),
                expect,
                "backend {id}"
            );
        }
        drop(lb);
        for id in 0..next {
            assert_eq!(drops[id as usize].load(Ordering::SeqCst), 1, "backend {id}");
        }
    }
    run(RoundRobin::new());
    run(PowerOfTwoChoices::new());
    run(LeastLatency::new());
}
