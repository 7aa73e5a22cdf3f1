//! Movement and preference-list properties, plus a model test of membership, for every algorithm.

use proptest::prelude::*;
use tierkit_consistent_hash::{BoundedLoad, Error, Placement, analysis};

use crate::{jump, maglev, owners, rendezvous, ring};

const KEYS: std::ops::Range<u64> = 0..2_000;

/// Adding node `n` to nodes `0..n` moves keys only to the new node (Maglev: almost only).
fn check_add<P: Placement<u32> + Clone>(
    before: P,
    max_disruption: f64,
) -> Result<(), TestCaseError> {
    let new = before.nodes().iter().max().map_or(0, |m| m + 1);
    let mut after = before.clone();
    after.add(new).unwrap();
    let old = owners(&before, KEYS);
    let now = owners(&after, KEYS);
    let mut between = 0;
    for (o, n) in old.iter().zip(&now) {
        if o != n && *n != Some(new) {
            between += 1;
        }
    }
    let disruption = f64::from(between) / KEYS.end as f64;
    prop_assert!(
        disruption <= max_disruption,
        "{between} keys moved between old nodes (limit {max_disruption})"
    );
    Ok(())
}

/// Removing a node moves only the keys it owned.
fn check_remove<P: Placement<u32> + Clone>(before: P, victim: u32) -> Result<(), TestCaseError> {
    let mut after = before.clone();
    prop_assert_eq!(after.remove(&victim), Some(victim));
    for (o, n) in owners(&before, KEYS).iter().zip(&owners(&after, KEYS)) {
        if *o != Some(victim) {
            prop_assert_eq!(o, n);
        } else {
            prop_assert!(n.is_some() && *n != Some(victim));
        }
    }
    Ok(())
}

/// `locate_n` returns distinct members, as many as asked (or all), the first being `locate`.
fn check_locate_n<P: Placement<u32>>(p: &P, n: usize) -> Result<(), TestCaseError> {
    for key in 0..200u64 {
        let list = p.locate_n(&key, n);
        prop_assert_eq!(list.len(), n.min(p.len()));
        if n > 0 {
            prop_assert_eq!(list.first().copied(), p.locate(&key));
        }
        for (i, a) in list.iter().enumerate() {
            prop_assert!(p.nodes().contains(a));
            prop_assert!(!list[..i].contains(a), "duplicate {} in {:?}", a, list);
        }
    }
    Ok(())
}

fn nodes(n: usize) -> Vec<u32> {
    (0..n as u32).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn adding_moves_keys_only_to_the_new_node(n in 1usize..40) {
        check_add(ring(&nodes(n)), 0.0)?;
        check_add(rendezvous(&nodes(n)), 0.0)?;
        check_add(jump(&nodes(n)), 0.0)?;
        // Maglev's documented small disruption.
        check_add(maglev(&nodes(n)), 0.03)?;
    }

    #[test]
    fn removing_moves_only_the_removed_nodes_keys(n in 2usize..40, pick in any::<prop::sample::Index>()) {
        let victim = pick.index(n) as u32;
        check_remove(ring(&nodes(n)), victim)?;
        check_remove(rendezvous(&nodes(n)), victim)?;
    }

    #[test]
    fn removing_the_last_jump_bucket_is_minimal(n in 2usize..40) {
        check_remove(jump(&nodes(n)), n as u32 - 1)?;
    }

    #[test]
    fn locate_n_is_distinct_and_starts_with_locate(n in 1usize..30, want in 0usize..35) {
        check_locate_n(&ring(&nodes(n)), want)?;
        check_locate_n(&jump(&nodes(n)), want)?;
        check_locate_n(&rendezvous(&nodes(n)), want)?;
        check_locate_n(&maglev(&nodes(n)), want)?;
        check_locate_n(&BoundedLoad::new(ring(&nodes(n)), 1.25).unwrap(), want)?;
    }

    /// Random membership changes against a model (a `Vec` of members): same members, same
    /// errors, and lookups always answer a member (or `None` exactly when empty).
    #[test]
    fn membership_matches_a_model(ops in prop::collection::vec((any::<bool>(), 0u32..12, 1u32..4), 1..40)) {
        let mut ring = ring(&[]);
        let mut hrw = rendezvous(&[]);
        let mut mag = maglev(&[]);
        let mut model: Vec<u32> = Vec::new();
        for (add, node, weight) in ops {
            if add {
                let expected = match model.iter().position(|&m| m == node) {
                    Some(index) => Err(Error::DuplicateNode { index }),
                    None => Ok(()),
                };
                prop_assert_eq!(ring.add_weighted(node, weight), expected.clone());
                prop_assert_eq!(hrw.add_weighted(node, weight), expected.clone());
                prop_assert_eq!(mag.add_weighted(node, weight), expected.clone());
                if expected.is_ok() {
                    model.push(node);
                }
            } else {
                let expected = model.iter().position(|&m| m == node).map(|i| model.remove(i));
                prop_assert_eq!(ring.remove(&node), expected);
                prop_assert_eq!(hrw.remove(&node), expected);
                prop_assert_eq!(mag.remove(&node), expected);
            }
            for p in [&ring as &dyn MembersOf, &hrw, &mag] {
                let mut members = p.members();
                members.sort_unstable();
                let mut want = model.clone();
                want.sort_unstable();
                prop_assert_eq!(members, want);
                for key in 0..50u64 {
                    match p.owner(key) {
                        None => prop_assert!(model.is_empty()),
                        Some(o) => prop_assert!(model.contains(&o)),
                    }
                }
            }
        }
    }
}

/// Object-safe view for the model test (`Placement` itself has generic methods).
trait MembersOf {
    fn members(&self) -> Vec<u32>;
    fn owner(&self, key: u64) -> Option<u32>;
}

impl<P: Placement<u32>> MembersOf for P {
    fn members(&self) -> Vec<u32> {
        self.nodes().to_vec()
    }
    fn owner(&self, key: u64) -> Option<u32> {
        self.locate(&key).copied()
    }
}

/// Over 100k keys, growing from n to n + 1 nodes moves within 20% of the ideal 1/(n+1) to the new
/// node. Only Maglev also moves keys between old nodes; that part is bounded separately.
#[test]
fn moved_fraction_is_close_to_ideal() {
    for n in [4u32, 10, 50] {
        let ideal = 1.0 / f64::from(n + 1);
        let before: Vec<u32> = (0..n).collect();
        let after: Vec<u32> = (0..=n).collect();
        let fractions = [
            (
                "ring",
                analysis::movement(&ring(&before), &ring(&after), 0..100_000u64),
            ),
            (
                "jump",
                analysis::movement(&jump(&before), &jump(&after), 0..100_000u64),
            ),
            (
                "rendezvous",
                analysis::movement(&rendezvous(&before), &rendezvous(&after), 0..100_000u64),
            ),
            (
                "maglev",
                analysis::movement(&maglev(&before), &maglev(&after), 0..100_000u64),
            ),
        ];
        for (name, m) in fractions {
            let f = m.to_new as f64 / m.keys as f64;
            let limit = if name == "maglev" { 0.01 } else { 0.0 };
            assert!(
                m.disruption() <= limit,
                "{name}: disruption {:.4}",
                m.disruption()
            );
            assert!(
                (f - ideal).abs() <= 0.2 * ideal,
                "{name} at {n} -> {}: moved {f:.4}, ideal {ideal:.4}",
                n + 1
            );
        }
    }
}
