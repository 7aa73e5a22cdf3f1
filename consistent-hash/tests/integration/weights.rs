//! Weighted nodes receive keys in proportion to their weight.

use tierkit_consistent_hash::{HashRing, Maglev, Placement, Rendezvous, analysis};

/// Node 0 has weight 2, nodes 1..10 weight 1: node 0 gets 2x (+-10%) the mean of the others.
fn check<P: Placement<u32>>(name: &str, p: &P) {
    let b = analysis::balance(p, 0..400_000u64);
    let others = b.loads[1..].iter().sum::<usize>() as f64 / (b.loads.len() - 1) as f64;
    let ratio = b.loads[0] as f64 / others;
    assert!(
        (1.8..=2.2).contains(&ratio),
        "{name}: weight-2 node got {ratio:.3}x"
    );
}

#[test]
fn weight_two_gets_twice_the_keys() {
    let mut ring = HashRing::new();
    let mut hrw = Rendezvous::new();
    let mut mag = Maglev::new();
    ring.add_weighted(0u32, 2).unwrap();
    hrw.add_weighted(0u32, 2).unwrap();
    mag.add_weighted(0u32, 2).unwrap();
    for n in 1..10u32 {
        ring.add(n).unwrap();
        hrw.add(n).unwrap();
        mag.add(n).unwrap();
    }
    check("ring", &ring);
    check("rendezvous", &hrw);
    check("maglev", &mag);
}

#[test]
fn weight_changes_move_keys_only_to_or_from_that_node() {
    let mut ring = HashRing::from_nodes(0..10u32).unwrap();
    let mut hrw = Rendezvous::from_nodes(0..10u32).unwrap();
    let (ring0, hrw0) = (ring.clone(), hrw.clone());
    assert!(ring.set_weight(&3, 3).unwrap());
    assert!(hrw.set_weight(&3, 3).unwrap());
    let m = analysis::movement(&ring0, &ring, 0..50_000u64);
    let h = analysis::movement(&hrw0, &hrw, 0..50_000u64);
    for (name, before, after, moved) in [
        ("ring", &ring0 as &dyn Owner, &ring as &dyn Owner, m),
        ("rendezvous", &hrw0, &hrw, h),
    ] {
        assert!(moved.moved > 0, "{name}: nothing moved");
        for k in 0..50_000u64 {
            let (o, n) = (before.owner(k), after.owner(k));
            assert!(o == n || n == 3, "{name}: key {k} moved {o} -> {n}");
        }
    }
}

trait Owner {
    fn owner(&self, key: u64) -> u32;
}
impl<P: Placement<u32>> Owner for P {
    fn owner(&self, key: u64) -> u32 {
        *self.locate(&key).unwrap()
    }
}
