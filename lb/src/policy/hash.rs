//! [`ConsistentHash`]: requests with the same key go to the same backend, with bounded load.

use std::cell::RefCell;
use std::collections::HashMap;

use tierkit_consistent_hash::bounded::{capacity, first_with_room};
use tierkit_consistent_hash::{HashRing, KeyHasher, Maglev, Placement};

use crate::error::{Error, Result};
use crate::policy::{below, gcd, rng};
use crate::{Context, Policy, View};

/// Which placement [`ConsistentHash`] builds over the backends (from `tierkit-consistent-hash`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HashAlgorithm {
    /// A ring with this many virtual nodes per unit of weight (Karger et al.; 160 is typical).
    Ring {
        /// Virtual nodes per unit of weight.
        vnodes: u32,
    },
    /// A Maglev table of this prime size (Eisenbud et al., NSDI 2016): a lookup is one table
    /// read; 65,537 is the paper's small size.
    Maglev {
        /// Table size; must be prime.
        table_size: usize,
    },
}

/// Sends requests with the same key (see [`Context::with_hash`]) to the same backend, moving few keys
/// when membership changes. With a load bound (consistent hashing with bounded loads, Mirrokni,
/// Thorup and Zadimoghaddam, 2018) a backend above `factor x` the mean in-flight load passes the
/// request on to the next backend in the key's preference list, so one hot key cannot melt one
/// backend.
///
/// Backends are placed by their [`BackendId`](crate::BackendId), with their configured weights
/// (slow start does not apply: a ramp would move keys at every step); the placement is rebuilt
/// per snapshot, off the pick path. A request without a key goes to a random backend.
///
/// # Examples
///
/// ```
/// use tierkit_lb::{Backend, Balancer, ConsistentHash, Context};
///
/// let lb = Balancer::builder(ConsistentHash::maglev().bounded(1.25)?)
///     .backends((0..5).map(|i| Backend::new(i, format!("cache-{i}"))))
///     .build()?;
/// let ctx = Context::new().with_hash(lb.hash_key("user:42"));
/// let a = lb.pick(&ctx)?.id();
/// let b = lb.pick(&ctx)?.id();
/// assert_eq!(a, b);
/// # Ok::<(), tierkit_lb::Error>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct ConsistentHash {
    algorithm: HashAlgorithm,
    bound: Option<f64>,
}

impl ConsistentHash {
    /// A ring with 160 virtual nodes per unit of weight, unbounded.
    #[must_use]
    pub fn ring() -> Self {
        Self {
            algorithm: HashAlgorithm::Ring { vnodes: 160 },
            bound: None,
        }
    }

    /// A Maglev table of 65,537 slots, unbounded.
    #[must_use]
    pub fn maglev() -> Self {
        Self {
            algorithm: HashAlgorithm::Maglev { table_size: 65_537 },
            bound: None,
        }
    }

    /// The given placement algorithm, unbounded.
    #[must_use]
    pub fn with_algorithm(algorithm: HashAlgorithm) -> Self {
        Self {
            algorithm,
            bound: None,
        }
    }

    /// Caps each backend at `factor` times the mean in-flight load (rounded up; `1.25` is the
    /// paper's suggestion).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] unless `factor` is finite and at least 1.
    pub fn bounded(mut self, factor: f64) -> Result<Self> {
        if !factor.is_finite() || factor < 1.0 {
            return Err(Error::invalid("bounded", factor, "factor must be >= 1"));
        }
        self.bound = Some(factor);
        Ok(self)
    }
}

/// The placement built for one snapshot.
#[derive(Debug)]
pub struct HashTable {
    placement: Option<Built>,
    /// Placement node index -> view index.
    to_view: Vec<usize>,
}

#[derive(Debug)]
enum Built {
    Ring(HashRing<u64>),
    Maglev(Maglev<u64>),
}

impl Built {
    fn as_placement(&self) -> &dyn PlacementIndex {
        match self {
            Self::Ring(r) => r,
            Self::Maglev(m) => m,
        }
    }
}

/// The object-safe part of `Placement` this policy uses.
trait PlacementIndex {
    fn first(&self, hash: u64) -> Option<usize>;
    fn with_room(&self, hash: u64, cap: usize, load: &dyn Fn(usize) -> usize) -> Option<usize>;
    fn preference(&self, hash: u64, out: &mut Vec<usize>);
}

impl<P: Placement<u64>> PlacementIndex for P {
    fn first(&self, hash: u64) -> Option<usize> {
        self.locate_index(hash)
    }
    fn with_room(&self, hash: u64, cap: usize, load: &dyn Fn(usize) -> usize) -> Option<usize> {
        SCRATCH.with(|s| first_with_room(self, hash, cap, load, &mut s.borrow_mut()))
    }
    fn preference(&self, hash: u64, out: &mut Vec<usize>) {
        self.preference_indices(hash, self.len(), out);
    }
}

thread_local! {
    // Reused preference-list buffer: a pick allocates only the first time a thread needs one.
    static SCRATCH: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

impl<B> Policy<B> for ConsistentHash {
    type Prepared = HashTable;

    fn prepare(&self, view: &View<'_, B>) -> HashTable {
        // Configured weights, not slow start's ramp: a ramp would move keys at every step, and
        // its weights break the common divisor, multiplying the ring's points (up to 100x).
        let g = view
            .configured_weights()
            .iter()
            .copied()
            .fold(0, gcd)
            .max(1);
        let nodes = (0..view.len()).map(|i| (view.id(i).0, view.configured_weight(i) / g));
        let built = match self.algorithm {
            HashAlgorithm::Ring { vnodes } => {
                let mut b = HashRing::builder()
                    .vnodes(vnodes)
                    .hasher(KeyHasher::DEFAULT);
                for (id, w) in nodes {
                    b = b.weighted_node(id, w);
                }
                b.build().ok().map(Built::Ring)
            }
            HashAlgorithm::Maglev { table_size } => {
                let mut b = Maglev::builder()
                    .table_size(table_size)
                    .hasher(KeyHasher::DEFAULT);
                for (id, w) in nodes {
                    b = b.weighted_node(id, w);
                }
                b.build().ok().map(Built::Maglev)
            }
        };
        if built.is_none() {
            tracing::error!("consistent-hash placement could not be built; picking at random");
        }
        let index: HashMap<u64, usize> = (0..view.len()).map(|i| (view.id(i).0, i)).collect();
        let to_view = match &built {
            Some(Built::Ring(r)) => r.nodes().iter().map(|n| index[n]).collect(),
            Some(Built::Maglev(m)) => m.nodes().iter().map(|n| index[n]).collect(),
            None => Vec::new(),
        };
        HashTable {
            placement: built,
            to_view,
        }
    }

    fn pick(&self, table: &HashTable, view: &View<'_, B>, ctx: &Context<'_>) -> Option<usize> {
        let (Some(hash), Some(built)) = (ctx.key_hash(), table.placement.as_ref()) else {
            return view.first_allowed_from(below(rng::next_u64(), view.len()), ctx);
        };
        let p = built.as_placement();
        let load = |node: usize| {
            usize::try_from(view.in_flight(table.to_view[node])).unwrap_or(usize::MAX)
        };
        if ctx.is_unrestricted() {
            let first = p.first(hash)?;
            let Some(factor) = self.bound else {
                return Some(table.to_view[first]);
            };
            if load(first) == 0 {
                return Some(table.to_view[first]);
            }
            let total: usize = (0..view.len())
                .map(|i| usize::try_from(view.in_flight(i)).unwrap_or(usize::MAX))
                .fold(0, usize::saturating_add);
            let cap = capacity(factor, total.saturating_add(1), view.len());
            return p.with_room(hash, cap, &load).map(|n| table.to_view[n]);
        }
        // Restricted: the first allowed backend in the key's preference order (load bound not
        // applied: the request already has fewer choices).
        SCRATCH.with(|s| {
            let mut s = s.borrow_mut();
            p.preference(hash, &mut s);
            s.iter()
                .map(|&n| table.to_view[n])
                .find(|&i| ctx.allows(view.id(i)))
        })
    }

    fn name(&self) -> &'static str {
        "consistent_hash"
    }
}
