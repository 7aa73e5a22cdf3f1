//! The crate's error type.

/// Everything that can go wrong when building or changing a placement.
///
/// Lookups never fail: an empty placement answers `None`. Errors come only from construction and
/// membership changes, and they carry the offending value and the limit it broke.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A node was given a weight of zero. Remove the node instead.
    #[error("node weight must be at least 1, got 0")]
    ZeroWeight,

    /// A node's weight times the virtual-node count would exceed [`HashRing`]'s point limit.
    ///
    /// [`HashRing`]: crate::HashRing
    #[error("node weight {weight} x {vnodes} virtual nodes exceeds the limit of {limit} points")]
    TooManyPoints {
        /// The weight asked for.
        weight: u32,
        /// The ring's virtual nodes per unit of weight.
        vnodes: u32,
        /// The most points one node may have.
        limit: u64,
    },

    /// A ring was configured with zero virtual nodes per unit of weight.
    #[error("virtual nodes per unit of weight must be at least 1, got 0")]
    ZeroVirtualNodes,

    /// The node is already a member; each node may appear once.
    #[error("node is already a member of the placement (at index {index})")]
    DuplicateNode {
        /// Where the existing copy sits in the node list.
        index: usize,
    },

    /// The algorithm gives every node the same share and cannot honour a weight other than 1.
    #[error("{algorithm} does not support weights; got weight {weight}")]
    WeightsUnsupported {
        /// Which algorithm refused.
        algorithm: &'static str,
        /// The weight asked for.
        weight: u32,
    },

    /// A [`Maglev`] table size is not a prime number.
    ///
    /// [`Maglev`]: crate::Maglev
    #[error("maglev table size must be prime, got {size}")]
    TableSizeNotPrime {
        /// The size asked for.
        size: usize,
    },

    /// A [`Maglev`] table is too small or too large.
    ///
    /// [`Maglev`]: crate::Maglev
    #[error("maglev table size must be between {min} and {max}, got {size}")]
    TableSizeOutOfRange {
        /// The size asked for.
        size: usize,
        /// Smallest accepted size.
        min: usize,
        /// Largest accepted size.
        max: usize,
    },

    /// Adding the node would exceed how many nodes the placement can hold.
    #[error("placement holds at most {limit} nodes")]
    TooManyNodes {
        /// The most nodes this placement can hold with its configuration.
        limit: usize,
    },

    /// The balance factor of [`BoundedLoad`] must be finite and at least 1.0.
    ///
    /// [`BoundedLoad`]: crate::BoundedLoad
    #[error("balance factor must be a finite number >= 1.0, got {factor}")]
    InvalidBalanceFactor {
        /// The factor asked for.
        factor: f64,
    },
}

/// `Result` with this crate's [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
