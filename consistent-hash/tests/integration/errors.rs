//! Every error variant is reachable, documented by its message, and leaves the placement unchanged.

use tierkit_consistent_hash::{
    BoundedLoad, Error, HashRing, JumpHash, Maglev, Placement, Rendezvous,
};

#[test]
fn zero_weight_and_duplicates_are_errors() {
    let mut ring = HashRing::from_nodes(["a"]).unwrap();
    assert_eq!(ring.add_weighted("b", 0), Err(Error::ZeroWeight));
    assert_eq!(ring.add("a"), Err(Error::DuplicateNode { index: 0 }));
    assert_eq!(ring.len(), 1);
    assert_eq!(ring.point_count(), 160);
    assert!(matches!(
        HashRing::from_nodes(["x", "x"]),
        Err(Error::DuplicateNode { index: 0 })
    ));
    assert!(matches!(
        Rendezvous::from_nodes([1, 1]),
        Err(Error::DuplicateNode { .. })
    ));
    assert!(matches!(
        Maglev::from_nodes([1, 1]),
        Err(Error::DuplicateNode { .. })
    ));
    assert!(matches!(
        JumpHash::from_nodes([1, 1]),
        Err(Error::DuplicateNode { .. })
    ));
}

#[test]
fn ring_limits() {
    assert_eq!(
        HashRing::<u8>::builder().vnodes(0).build().err(),
        Some(Error::ZeroVirtualNodes)
    );
    let mut ring = HashRing::<u8>::builder().vnodes(1 << 16).build().unwrap();
    let err = ring.add_weighted(1, 100).unwrap_err();
    assert!(matches!(err, Error::TooManyPoints { weight: 100, .. }));
    assert!(err.to_string().contains("exceeds the limit"), "{err}");
    assert!(ring.is_empty());
}

#[test]
fn jump_refuses_weights() {
    let mut jump = JumpHash::new();
    let err = jump.add_weighted(1u8, 3).unwrap_err();
    assert_eq!(
        err,
        Error::WeightsUnsupported {
            algorithm: "jump hash",
            weight: 3
        }
    );
    assert_eq!(
        err.to_string(),
        "jump hash does not support weights; got weight 3"
    );
    assert!(jump.add_weighted(1u8, 1).is_ok());
}

#[test]
fn maglev_sizes() {
    assert_eq!(
        Maglev::<u8>::builder().table_size(100).build().err(),
        Some(Error::TableSizeNotPrime { size: 100 })
    );
    assert!(matches!(
        Maglev::<u8>::builder().table_size(5).build(),
        Err(Error::TableSizeOutOfRange {
            size: 5,
            min: 7,
            ..
        })
    ));
    assert!(matches!(
        Maglev::<u8>::builder().table_size(1 << 25).build(),
        Err(Error::TableSizeOutOfRange { .. })
    ));
    assert!(matches!(
        Maglev::builder().table_size(11).nodes(0..12u8).build(),
        Err(Error::TooManyNodes { limit: 11 })
    ));
}

#[test]
fn balance_factor_must_be_at_least_one() {
    let err = BoundedLoad::new(HashRing::from_nodes([1u8]).unwrap(), 0.5).unwrap_err();
    assert_eq!(
        err.to_string(),
        "balance factor must be a finite number >= 1.0, got 0.5"
    );
}

#[test]
fn empty_placements_answer_none() {
    let mut out = vec![99];
    let ring: HashRing<u8> = HashRing::new();
    assert_eq!(ring.locate("k"), None);
    ring.preference_indices(5, 3, &mut out);
    assert!(out.is_empty());
    assert_eq!(JumpHash::<u8>::new().locate("k"), None);
    assert_eq!(Rendezvous::<u8>::new().locate("k"), None);
    assert_eq!(Maglev::<u8>::new().locate("k"), None);
    assert!(Maglev::<u8>::new().locate_n("k", 3).is_empty());
    assert_eq!(ring.clone().remove(&1), None);
}
