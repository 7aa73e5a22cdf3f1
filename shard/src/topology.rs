//! Following a Redis Cluster: its [`Topology`] and a [`ClusterRouter`] that keeps the slot table
//! current from MOVED redirects (one slot at a time) and rate-limited full refreshes.

use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwap;
use tierkit_core::{Clock, SystemClock};

use crate::slots::SLOTS;
use crate::{AsShardKey, ClusterRedirect, Error, HashSlots, Redirect, Result, ShardId};

/// A cluster node (a master serving slots).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Node {
    /// The node's cluster id (40 hex characters), empty if the source did not say.
    pub id: String,
    /// Its endpoint, `host:port`.
    pub addr: String,
}

impl Node {
    /// A node at `addr` with cluster id `id` (may be empty).
    pub fn new(id: impl Into<String>, addr: impl Into<String>) -> Self {
        Node {
            id: id.into(),
            addr: addr.into(),
        }
    }
}

/// Which node serves each of the 16,384 slots, as `CLUSTER SHARDS` or `CLUSTER SLOTS` report it.
/// Node `i` of [`nodes`](Self::nodes) is [`ShardId`]`(i)` in [`hash_slots`](Self::hash_slots) and
/// in a [`ClusterRouter`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    nodes: Vec<Node>,
    owners: Vec<Option<u16>>,
}

impl Default for Topology {
    fn default() -> Self {
        Topology {
            nodes: Vec::new(),
            owners: vec![None; SLOTS],
        }
    }
}

impl Topology {
    /// No nodes, no slot served.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The index of the node at `node.addr`, added if new (a known address keeps its index and
    /// learns a non-empty id).
    fn node_index(&mut self, node: Node) -> Result<u16> {
        if let Some(i) = self.nodes.iter().position(|n| n.addr == node.addr) {
            if self.nodes[i].id.is_empty() {
                self.nodes[i].id = node.id;
            }
            return u16::try_from(i).map_err(|_| Error::TooManyShards(i));
        }
        let i = self.nodes.len();
        let index = u16::try_from(i)
            .ok()
            .filter(|&i| i < u16::MAX)
            .ok_or(Error::TooManyShards(i + 1))?;
        self.nodes.push(node);
        Ok(index)
    }

    /// Gives slots `first..=last` to `node`.
    ///
    /// # Errors
    /// [`Error::SlotOutOfRange`] if `last >= 16384` or `first > last`.
    pub fn add_slots(&mut self, first: u16, last: u16, node: Node) -> Result<()> {
        if usize::from(last) >= SLOTS || first > last {
            return Err(Error::SlotOutOfRange {
                slot: usize::from(last.max(first)),
                slots: SLOTS,
            });
        }
        let index = self.node_index(node)?;
        for owner in &mut self.owners[usize::from(first)..=usize::from(last)] {
            *owner = Some(index);
        }
        Ok(())
    }

    /// The nodes, in the order they were first seen.
    #[must_use]
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// The node serving `slot`, if any.
    #[must_use]
    pub fn owner(&self, slot: u16) -> Option<&Node> {
        let i = (*self.owners.get(usize::from(slot))?)?;
        self.nodes.get(usize::from(i))
    }

    /// How many slots have a node.
    #[must_use]
    pub fn covered(&self) -> usize {
        self.owners.iter().filter(|o| o.is_some()).count()
    }

    /// The slot table as a [`HashSlots`] strategy (node `i` is `ShardId(i)`).
    ///
    /// # Errors
    /// [`Error::Protocol`] if some slot has no node (the cluster is not fully covered).
    pub fn hash_slots(&self) -> Result<HashSlots> {
        let table: Option<Vec<ShardId>> = self
            .owners
            .iter()
            .map(|o| o.map(|i| ShardId(u32::from(i))))
            .collect();
        let table = table.ok_or_else(|| {
            Error::Protocol(format!(
                "{} of {SLOTS} slots have no node",
                SLOTS - self.covered()
            ))
        })?;
        HashSlots::from_table(&table)
    }
}

/// What a client does after a redirect, as [`ClusterRouter::on_redirect`] decides it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RedirectAction {
    /// Send the request again to `node`; with `asking`, send `ASKING` first (and keep the map:
    /// the slot is migrating and this node only holds some of its keys).
    Retry {
        /// The node to send to.
        node: ShardId,
        /// Precede the request with `ASKING`.
        asking: bool,
    },
    /// Retry shortly (TRYAGAIN): a multi-key request met a migrating slot.
    RetryLater,
    /// Do not retry: the request is wrong as sent (CROSSSLOT).
    Refuse,
}

/// Counters of a [`ClusterRouter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct RouterStats {
    /// MOVED redirects applied (one slot each).
    pub moved: u64,
    /// ASK redirects followed.
    pub asks: u64,
    /// TRYAGAIN answers.
    pub try_again: u64,
    /// Full topology refreshes applied.
    pub refreshes: u64,
}

const UNKNOWN: u16 = u16::MAX;

/// A slot router that follows a real Redis Cluster the way redis-rs, Lettuce and go-redis do:
/// built from a [`Topology`] (`CLUSTER SHARDS`), it routes a key to the node serving its slot
/// (one atomic load), applies each MOVED to its one slot in O(1) (an atomic store, no new
/// version), follows ASK without touching the map, and asks for a full refresh
/// ([`refresh_due`](Self::refresh_due)) when many slots moved, at most once per interval.
///
/// It routes; the application's Redis client sends. Node `i` is [`ShardId`]`(i)`; nodes are
/// only ever added (a MOVED to an unknown address adds one), so a `ShardId` stays valid.
///
/// # Examples
///
/// ```
/// use tierkit_shard::{ClusterRouter, Node, RedirectAction, Topology, parse_redirect};
///
/// # fn main() -> Result<(), tierkit_shard::Error> {
/// let mut topology = Topology::new();
/// topology.add_slots(0, 8191, Node::new("", "127.0.0.1:7000"))?;
/// topology.add_slots(8192, 16383, Node::new("", "127.0.0.1:7001"))?;
/// let router = ClusterRouter::new(&topology);
/// let node = router.route("foo").expect("covered"); // slot 12182
/// assert_eq!(router.node(node).expect("known").addr, "127.0.0.1:7001");
///
/// // The cluster moved slot 12182: one MOVED fixes it.
/// let redirect = parse_redirect("MOVED 12182 127.0.0.1:7000")?.expect("a redirect");
/// let action = router.on_redirect(&redirect)?;
/// assert!(matches!(action, RedirectAction::Retry { asking: false, .. }));
/// assert_eq!(router.node(router.route("foo").expect("covered")).expect("known").addr, "127.0.0.1:7000");
/// # Ok(())
/// # }
/// ```
pub struct ClusterRouter {
    slots: Box<[AtomicU16]>,
    nodes: ArcSwap<Vec<Arc<Node>>>,
    /// Serialises node additions and refreshes (never taken by routing).
    writer: Mutex<()>,
    clock: Box<dyn Clock>,
    moved_since_refresh: AtomicU64,
    last_refresh_nanos: AtomicU64,
    refresh_after_moves: u64,
    min_refresh_interval: Duration,
    moved: AtomicU64,
    asks: AtomicU64,
    try_again: AtomicU64,
    refreshes: AtomicU64,
}

impl ClusterRouter {
    /// A refresh is due after this many MOVED redirects since the last one (default).
    pub const DEFAULT_REFRESH_AFTER_MOVES: u64 = 16;
    /// And at most once per this interval (default).
    pub const DEFAULT_MIN_REFRESH_INTERVAL: Duration = Duration::from_millis(100);

    /// A router over `topology`, on the system clock, with the default refresh policy.
    #[must_use]
    pub fn new(topology: &Topology) -> Self {
        let router = ClusterRouter {
            slots: (0..SLOTS).map(|_| AtomicU16::new(UNKNOWN)).collect(),
            nodes: ArcSwap::from_pointee(Vec::new()),
            writer: Mutex::new(()),
            clock: Box::new(SystemClock),
            moved_since_refresh: AtomicU64::new(0),
            last_refresh_nanos: AtomicU64::new(0),
            refresh_after_moves: Self::DEFAULT_REFRESH_AFTER_MOVES,
            min_refresh_interval: Self::DEFAULT_MIN_REFRESH_INTERVAL,
            moved: AtomicU64::new(0),
            asks: AtomicU64::new(0),
            try_again: AtomicU64::new(0),
            refreshes: AtomicU64::new(0),
        };
        router.install(topology);
        router
    }

    /// Uses `clock` for the refresh interval (a `ManualClock` in tests).
    #[must_use]
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.last_refresh_nanos = AtomicU64::new(clock.now_nanos());
        self.clock = Box::new(clock);
        self
    }

    /// A refresh becomes due after `moves` MOVED redirects (at least 1), at most once per
    /// `min_interval` (`Duration::MAX`: never on a timer, only by explicit refresh).
    #[must_use]
    pub fn refresh_policy(mut self, moves: u64, min_interval: Duration) -> Self {
        self.refresh_after_moves = moves.max(1);
        self.min_refresh_interval = min_interval;
        self
    }

    /// The slot of a key (Redis's CRC16 with the `{tag}` rule).
    #[inline]
    pub fn slot<K: AsShardKey + ?Sized>(key: &K) -> u16 {
        HashSlots::slot(key.as_shard_key())
    }

    /// The node serving `key`'s slot, or `None` if no node serves it. One atomic load.
    #[inline]
    pub fn route<K: AsShardKey + ?Sized>(&self, key: &K) -> Option<ShardId> {
        self.slot_owner(Self::slot(key))
    }

    /// The node serving `slot`.
    #[inline]
    #[must_use]
    pub fn slot_owner(&self, slot: u16) -> Option<ShardId> {
        let i = self.slots.get(usize::from(slot))?.load(Ordering::Relaxed);
        (i != UNKNOWN).then_some(ShardId(u32::from(i)))
    }

    /// Routes a multi-key command: every key must be in one slot (Redis refuses others with
    /// CROSSSLOT, even when both slots are on one node), so this is checked before anything is
    /// sent. Returns the slot and its node.
    ///
    /// # Errors
    /// [`Redirect::CrossSlot`] for keys in different slots; [`Redirect::TryAgain`] if no node
    /// serves the slot (refresh the topology).
    pub fn route_all<K, I>(&self, keys: I) -> Result<Option<(u16, ShardId)>, Redirect>
    where
        K: AsShardKey,
        I: IntoIterator<Item = K>,
    {
        let mut slot = None;
        for key in keys {
            let s = Self::slot(&key);
            match slot {
                Some(first) if first != s => return Err(Redirect::CrossSlot),
                _ => slot = Some(s),
            }
        }
        match slot {
            None => Ok(None),
            Some(s) => self
                .slot_owner(s)
                .map(|n| Some((s, n)))
                .ok_or(Redirect::TryAgain),
        }
    }

    /// The node `id`.
    #[must_use]
    pub fn node(&self, id: ShardId) -> Option<Arc<Node>> {
        let i = usize::try_from(id.0).ok()?;
        self.nodes.load().get(i).cloned()
    }

    /// Every node known so far (`ShardId(i)` is entry `i`).
    #[must_use]
    pub fn nodes(&self) -> Arc<Vec<Arc<Node>>> {
        self.nodes.load_full()
    }

    /// The index of the node at `addr`, adding it if unknown.
    fn node_for(&self, addr: &str, id: &str) -> Result<u16> {
        let find = |nodes: &[Arc<Node>]| nodes.iter().position(|n| n.addr == addr);
        if let Some(i) = find(&self.nodes.load()) {
            return u16::try_from(i).map_err(|_| Error::TooManyShards(i));
        }
        let _writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let current = self.nodes.load_full();
        if let Some(i) = find(&current) {
            return u16::try_from(i).map_err(|_| Error::TooManyShards(i));
        }
        let i = current.len();
        let index = u16::try_from(i)
            .ok()
            .filter(|&i| i < UNKNOWN)
            .ok_or(Error::TooManyShards(i + 1))?;
        let mut next = current.as_ref().clone();
        next.push(Arc::new(Node::new(id, addr)));
        self.nodes.store(Arc::new(next));
        Ok(index)
    }

    /// Sets the node serving one slot (what a MOVED does): one atomic store. The node is added
    /// if its address is new.
    ///
    /// # Errors
    /// [`Error::SlotOutOfRange`]; [`Error::TooManyShards`] past 65,535 nodes.
    pub fn set_slot_owner(&self, slot: u16, addr: &str) -> Result<ShardId> {
        let entry = self
            .slots
            .get(usize::from(slot))
            .ok_or(Error::SlotOutOfRange {
                slot: usize::from(slot),
                slots: SLOTS,
            })?;
        let i = self.node_for(addr, "")?;
        entry.store(i, Ordering::Relaxed);
        Ok(ShardId(u32::from(i)))
    }

    /// Applies a redirect and says what to do with the request: MOVED updates its slot (O(1))
    /// and counts toward the next refresh; ASK leaves the map alone; TRYAGAIN waits; CROSSSLOT
    /// refuses.
    ///
    /// # Errors
    /// [`Error::TooManyShards`] past 65,535 nodes.
    pub fn on_redirect(&self, redirect: &ClusterRedirect<'_>) -> Result<RedirectAction> {
        Ok(match *redirect {
            ClusterRedirect::Moved { slot, addr } => {
                let node = self.set_slot_owner(slot, addr)?;
                self.moved.fetch_add(1, Ordering::Relaxed);
                self.moved_since_refresh.fetch_add(1, Ordering::Relaxed);
                RedirectAction::Retry {
                    node,
                    asking: false,
                }
            }
            ClusterRedirect::Ask { addr, .. } => {
                self.asks.fetch_add(1, Ordering::Relaxed);
                RedirectAction::Retry {
                    node: ShardId(u32::from(self.node_for(addr, "")?)),
                    asking: true,
                }
            }
            ClusterRedirect::TryAgain => {
                self.try_again.fetch_add(1, Ordering::Relaxed);
                RedirectAction::RetryLater
            }
            ClusterRedirect::CrossSlot => RedirectAction::Refuse,
        })
    }

    /// Whether a full refresh is due: enough MOVED redirects since the last one, and the
    /// minimum interval has passed. Fetch a new [`Topology`] and [`refresh`](Self::refresh).
    #[must_use]
    pub fn refresh_due(&self) -> bool {
        if self.moved_since_refresh.load(Ordering::Relaxed) < self.refresh_after_moves {
            return false;
        }
        let last = self.last_refresh_nanos.load(Ordering::Relaxed);
        let since = self.clock.now_nanos().saturating_sub(last);
        u128::from(since) >= self.min_refresh_interval.as_nanos()
    }

    /// Replaces the whole slot table by `topology` (slots it does not cover become unknown).
    pub fn refresh(&self, topology: &Topology) {
        self.install(topology);
        self.refreshes.fetch_add(1, Ordering::Relaxed);
    }

    fn install(&self, topology: &Topology) {
        // Map the topology's node indices to ours (adding new nodes), then store every slot.
        let map: Vec<u16> = topology
            .nodes()
            .iter()
            .map(|n| self.node_for(&n.addr, &n.id).unwrap_or(UNKNOWN))
            .collect();
        for (entry, owner) in self.slots.iter().zip(&topology.owners) {
            let i = owner
                .and_then(|o| map.get(usize::from(o)).copied())
                .unwrap_or(UNKNOWN);
            entry.store(i, Ordering::Relaxed);
        }
        self.moved_since_refresh.store(0, Ordering::Relaxed);
        self.last_refresh_nanos
            .store(self.clock.now_nanos(), Ordering::Relaxed);
    }

    /// The slot table as a [`HashSlots`] strategy (node `i` is `ShardId(i)`).
    ///
    /// # Errors
    /// [`Error::Protocol`] if some slot has no node.
    pub fn hash_slots(&self) -> Result<HashSlots> {
        let table: Option<Vec<ShardId>> = (0..SLOTS)
            .map(|s| self.slot_owner(u16::try_from(s).unwrap_or(0)))
            .collect();
        HashSlots::from_table(&table.ok_or_else(|| Error::Protocol("uncovered slots".into()))?)
    }

    /// Counters so far.
    #[must_use]
    pub fn stats(&self) -> RouterStats {
        RouterStats {
            moved: self.moved.load(Ordering::Relaxed),
            asks: self.asks.load(Ordering::Relaxed),
            try_again: self.try_again.load(Ordering::Relaxed),
            refreshes: self.refreshes.load(Ordering::Relaxed),
        }
    }
}

impl std::fmt::Debug for ClusterRouter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterRouter")
            .field("nodes", &self.nodes.load().len())
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}
