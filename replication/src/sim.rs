//! An in-memory replicated key-value store: a primary with a write log and replicas that apply
//! it with configurable, changeable lag, and that can be paused, killed and restarted. It makes
//! the router's behaviour demonstrable and testable without a real database.
//!
//! ```
//! use tierkit_replication::Position;
//! use tierkit_replication::sim::SimCluster;
//!
//! let cluster = SimCluster::new(3); // node 0 is the primary
//! let (primary, replica) = (cluster.node(0), cluster.node(1));
//! let at = primary.write("user:1", "Ada").expect("primary is up");
//! assert_eq!(at, Position(1));
//! assert_eq!(replica.read("user:1").expect("up"), None); // not replicated yet
//! cluster.catch_up();
//! assert_eq!(replica.read("user:1").expect("up").as_deref(), Some("Ada"));
//! ```

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::Position;

/// Why a simulated node refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// The node is killed.
    #[error("node {0} is down")]
    Down(usize),
    /// A write reached a node that is not the primary (a fenced old primary, or a replica).
    #[error("node {0} is not the primary")]
    NotPrimary(usize),
    /// No such node.
    #[error("no node {0}")]
    NoSuchNode(usize),
}

#[derive(Debug, Clone)]
struct Entry {
    key: String,
    value: String,
}

#[derive(Debug, Clone)]
struct NodeData {
    data: BTreeMap<String, String>,
    /// Log entries applied (its position).
    applied: usize,
    alive: bool,
    paused: bool,
    /// Entries applied per replication step.
    rate: usize,
}

#[derive(Debug)]
struct State {
    /// The current primary's history; position `p` is `log[p - 1]`.
    log: Vec<Entry>,
    primary: usize,
    nodes: Vec<NodeData>,
}

/// A simulated replicated database. Cheap to clone (a shared handle).
#[derive(Debug, Clone)]
pub struct SimCluster {
    state: Arc<Mutex<State>>,
}

/// One node of a [`SimCluster`]: the handle type to put in a
/// [`ReplicaSet`](crate::ReplicaSet).
#[derive(Debug, Clone)]
pub struct SimNode {
    cluster: SimCluster,
    index: usize,
}

impl SimCluster {
    /// `nodes` nodes, node 0 the primary, every replica applying everything at each step.
    #[must_use]
    pub fn new(nodes: usize) -> Self {
        let node = NodeData {
            data: BTreeMap::new(),
            applied: 0,
            alive: true,
            paused: false,
            rate: usize::MAX,
        };
        SimCluster {
            state: Arc::new(Mutex::new(State {
                log: Vec::new(),
                primary: 0,
                nodes: vec![node; nodes.max(1)],
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The handle of node `index`.
    #[must_use]
    pub fn node(&self, index: usize) -> SimNode {
        SimNode {
            cluster: self.clone(),
            index,
        }
    }

    /// One replication step: every live, unpaused replica applies up to its rate of entries.
    pub fn replicate(&self) {
        let mut s = self.lock();
        let State {
            log,
            primary,
            nodes,
        } = &mut *s;
        for (i, n) in nodes.iter_mut().enumerate() {
            if i == *primary || !n.alive || n.paused {
                continue;
            }
            let end = n.applied.saturating_add(n.rate).min(log.len());
            for e in &log[n.applied.min(end)..end] {
                n.data.insert(e.key.clone(), e.value.clone());
            }
            n.applied = n.applied.max(end);
        }
    }

    /// Replicates until every live, unpaused replica has applied the whole log.
    pub fn catch_up(&self) {
        let mut s = self.lock();
        let len = s.log.len();
        let State {
            log,
            primary,
            nodes,
        } = &mut *s;
        for (i, n) in nodes.iter_mut().enumerate() {
            if i != *primary && n.alive && !n.paused {
                for e in &log[n.applied.min(len)..] {
                    n.data.insert(e.key.clone(), e.value.clone());
                }
                n.applied = len;
            }
        }
    }

    fn with_node<T>(
        &self,
        index: usize,
        f: impl FnOnce(&mut NodeData) -> T,
    ) -> Result<T, SimError> {
        let mut s = self.lock();
        s.nodes
            .get_mut(index)
            .map(f)
            .ok_or(SimError::NoSuchNode(index))
    }

    /// Entries replica `index` applies per step (`usize::MAX`: no lag; 0: stalled).
    ///
    /// # Errors
    /// [`SimError::NoSuchNode`].
    pub fn set_rate(&self, index: usize, rate: usize) -> Result<(), SimError> {
        self.with_node(index, |n| n.rate = rate)
    }

    /// Stops or resumes replica `index` applying the log.
    ///
    /// # Errors
    /// [`SimError::NoSuchNode`].
    pub fn set_paused(&self, index: usize, paused: bool) -> Result<(), SimError> {
        self.with_node(index, |n| n.paused = paused)
    }

    /// Kills node `index`: it answers nothing (its data survives, as on a disk).
    ///
    /// # Errors
    /// [`SimError::NoSuchNode`].
    pub fn kill(&self, index: usize) -> Result<(), SimError> {
        self.with_node(index, |n| n.alive = false)
    }

    /// Restarts node `index` with the data it had.
    ///
    /// # Errors
    /// [`SimError::NoSuchNode`].
    pub fn restart(&self, index: usize) -> Result<(), SimError> {
        self.with_node(index, |n| n.alive = true)
    }

    /// Makes node `index` the primary: its history becomes the log (entries it never applied are
    /// gone), and nodes that had applied past it are rewound to a copy of it (as `pg_rewind`
    /// does). Returns the new primary's position.
    ///
    /// # Errors
    /// [`SimError::NoSuchNode`]; [`SimError::Down`] if it is killed.
    pub fn promote(&self, index: usize) -> Result<Position, SimError> {
        let mut s = self.lock();
        let node = s
            .nodes
            .get(index)
            .ok_or(SimError::NoSuchNode(index))?
            .clone();
        if !node.alive {
            return Err(SimError::Down(index));
        }
        s.log.truncate(node.applied);
        s.primary = index;
        for n in &mut s.nodes {
            if n.applied > node.applied {
                n.data = node.data.clone();
                n.applied = node.applied;
            }
        }
        Ok(position(node.applied))
    }

    /// The position of every node.
    #[must_use]
    pub fn positions(&self) -> Vec<Position> {
        self.lock()
            .nodes
            .iter()
            .map(|n| position(n.applied))
            .collect()
    }

    /// The current primary's index.
    #[must_use]
    pub fn primary(&self) -> usize {
        self.lock().primary
    }

    /// The write at `position` in the current history, as `(key, value)`.
    #[must_use]
    pub fn entry(&self, position: Position) -> Option<(String, String)> {
        let s = self.lock();
        let i = usize::try_from(position.0).ok()?.checked_sub(1)?;
        s.log.get(i).map(|e| (e.key.clone(), e.value.clone()))
    }

    /// The current primary's data.
    #[must_use]
    pub fn primary_data(&self) -> BTreeMap<String, String> {
        let s = self.lock();
        s.nodes[s.primary].data.clone()
    }
}

fn position(applied: usize) -> Position {
    Position(applied as u64)
}

impl SimNode {
    /// Makes this node the primary ([`SimCluster::promote`]).
    ///
    /// # Errors
    /// As [`SimCluster::promote`].
    pub fn promote(&self) -> Result<Position, SimError> {
        self.cluster.promote(self.index)
    }

    /// The node's index.
    #[must_use]
    pub fn index(&self) -> usize {
        self.index
    }

    /// Writes `key = value` on this node, which must be the live primary; returns the position
    /// of the write.
    ///
    /// # Errors
    /// [`SimError::Down`], [`SimError::NotPrimary`], [`SimError::NoSuchNode`].
    pub fn write(&self, key: &str, value: &str) -> Result<Position, SimError> {
        let mut s = self.cluster.lock();
        let n = s
            .nodes
            .get(self.index)
            .ok_or(SimError::NoSuchNode(self.index))?;
        if !n.alive {
            return Err(SimError::Down(self.index));
        }
        if s.primary != self.index {
            return Err(SimError::NotPrimary(self.index));
        }
        s.log.push(Entry {
            key: key.to_string(),
            value: value.to_string(),
        });
        let applied = s.log.len();
        let p = s.primary;
        s.nodes[p].data.insert(key.to_string(), value.to_string());
        s.nodes[p].applied = applied;
        Ok(position(applied))
    }

    /// Reads `key` on this node.
    ///
    /// # Errors
    /// [`SimError::Down`], [`SimError::NoSuchNode`].
    pub fn read(&self, key: &str) -> Result<Option<String>, SimError> {
        let s = self.cluster.lock();
        let n = s
            .nodes
            .get(self.index)
            .ok_or(SimError::NoSuchNode(self.index))?;
        if !n.alive {
            return Err(SimError::Down(self.index));
        }
        Ok(n.data.get(key).cloned())
    }

    /// The node's replication position (`pg_last_wal_replay_lsn()` of the simulation).
    ///
    /// # Errors
    /// [`SimError::Down`], [`SimError::NoSuchNode`].
    pub fn position(&self) -> Result<Position, SimError> {
        let s = self.cluster.lock();
        let n = s
            .nodes
            .get(self.index)
            .ok_or(SimError::NoSuchNode(self.index))?;
        if !n.alive {
            return Err(SimError::Down(self.index));
        }
        Ok(position(n.applied))
    }
}

/// The promotion hook of the simulation: [`SimNode::promote`], reporting the new primary's
/// position as where its history ended.
#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
#[derive(Debug, Clone, Copy, Default)]
pub struct SimPromote;

#[cfg(feature = "tokio")]
impl crate::PromotionHook<SimNode> for SimPromote {
    type Error = SimError;

    async fn promote(&self, node: &SimNode) -> Result<Option<Position>, SimError> {
        node.promote().map(Some)
    }
}

#[cfg(feature = "tokio")]
impl crate::PositionProbe<SimNode> for SimPromote {
    type Error = SimError;

    async fn observe(&self, node: &SimNode) -> Result<crate::Observation, SimError> {
        node.position().map(crate::Observation::from)
    }
}
