//! Bounded loads: the bound holds under concurrent acquisition, and guards release what they took.

use std::sync::Barrier;

use tierkit_consistent_hash::bounded::capacity;
use tierkit_consistent_hash::{BoundedLoad, HashRing, Placement};

const FACTOR: f64 = 1.25;

fn bounded(n: u32) -> BoundedLoad<HashRing<u32>> {
    BoundedLoad::new(HashRing::from_nodes(0..n).unwrap(), FACTOR).unwrap()
}

/// Keys skewed so a few nodes would be overloaded without the bound.
fn hot_key(i: usize) -> u64 {
    if i.is_multiple_of(3) {
        (i % 10) as u64
    } else {
        7
    }
}

#[test]
fn sequential_acquisitions_respect_the_bound_each_time() {
    let b = bounded(10);
    let mut guards = Vec::new();
    for i in 0..1_000 {
        let g = b.acquire(&hot_key(i)).unwrap();
        let cap = capacity(FACTOR, b.active(), b.len());
        assert!(b.load(g.index()).unwrap() <= cap, "acquisition {i}");
        guards.push(g);
    }
    let loads: Vec<usize> = (0..10).map(|i| b.load(i).unwrap()).collect();
    assert_eq!(loads.iter().sum::<usize>(), 1_000);
    drop(guards);
    assert_eq!(b.active(), 0);
    assert!((0..10).all(|i| b.load(i) == Some(0)));
}

#[test]
fn concurrent_acquisitions_never_exceed_the_bound() {
    const THREADS: usize = 4;
    const PER_THREAD: usize = 2_000;
    let b = bounded(16);
    let barrier = Barrier::new(THREADS);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let (b, barrier) = (&b, &barrier);
                s.spawn(move || {
                    barrier.wait();
                    (0..PER_THREAD)
                        .map(|i| b.acquire(&hot_key(t * PER_THREAD + i)).unwrap())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let held: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        // Acquisitions only grew the total, so every grant was made under a capacity no larger
        // than the final one: no node may hold more.
        let total = THREADS * PER_THREAD;
        let cap = capacity(FACTOR, total, 16);
        let loads: Vec<usize> = (0..16).map(|i| b.load(i).unwrap()).collect();
        assert_eq!(b.active(), total);
        assert_eq!(loads.iter().sum::<usize>(), total);
        assert!(
            loads.iter().all(|&l| l <= cap),
            "loads {loads:?} over cap {cap}"
        );
        drop(held);
    });
    assert_eq!(b.active(), 0);
}

#[test]
fn churn_from_many_threads_keeps_counts_consistent() {
    const THREADS: usize = 4;
    let b = bounded(8);
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let b = &b;
            s.spawn(move || {
                let mut held = std::collections::VecDeque::new();
                for i in 0..5_000 {
                    held.push_back(b.acquire(&hot_key(i * (t + 1))).unwrap());
                    if held.len() > 50 {
                        held.pop_front();
                    }
                }
            });
        }
    });
    assert_eq!(b.active(), 0);
    assert!((0..8).all(|i| b.load(i) == Some(0)));
}

#[test]
fn a_hot_key_spills_over_in_preference_order() {
    let b = bounded(4);
    let prefs = b
        .inner()
        .locate_n(&"hot", 4)
        .into_iter()
        .copied()
        .collect::<Vec<_>>();
    let guards: Vec<_> = (0..8).map(|_| b.acquire("hot").unwrap()).collect();
    // The cap after k acquisitions is ceil(1.25 k / 4): 1, 1, 1, 2, 2, 2, 3, 3. Each grant goes to
    // the first node of the key's preference list under the cap, so the home node fills first
    // and the spill follows the preference order: loads end at [3, 3, 2, 0] in that order.
    let by_preference: Vec<usize> = prefs
        .iter()
        .map(|n| b.load(b.index_of(n).unwrap()).unwrap())
        .collect();
    assert_eq!(by_preference, [3, 3, 2, 0]);
    assert_eq!(*guards[0].node(), prefs[0]);
    assert_eq!(*guards[1].node(), prefs[1]);
    // A peek (cap for a 9th grant: ceil(1.25 * 9 / 4) = 3) skips the two full nodes and agrees
    // with the load-aware preference list.
    assert_eq!(b.locate("hot"), Some(&prefs[2]));
    assert_eq!(b.locate("hot"), b.locate_n("hot", 1).first().copied());
}

#[test]
fn empty_bounded_placement_grants_nothing() {
    let b = BoundedLoad::new(HashRing::<u32>::new(), 2.0).unwrap();
    assert!(b.acquire(&1u64).is_none());
    assert_eq!(b.active(), 0);
}
