//! [`ReplicaSet`] and its builder: the state, membership changes and statistics. Routing lives
//! in `read.rs`, health and positions in `health.rs`, promotion in `promote.rs`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;
use crossbeam_utils::CachePadded;

use crate::balance::{self, ReadBalancer, ReadBalancerFactory};
use crate::events::{Event, Listeners};
use crate::node::{NodeState, READ_ONLY, WRITABLE};
use crate::topology::{Member, Topology};
use crate::{Clock, Config, Epoch, Error, NodeId, NodeStats, Position, Result, Role, SystemClock};

/// Read/write splitting over a primary and its replicas, over the user's own node handles `C`
/// (connection pools, clients).
///
/// - [`route`](Self::route)`(Intent::Write)` returns the primary of the current epoch, or fails
///   fast ([`Error::PrimaryUnavailable`], [`Error::Promoting`], [`Error::NoPrimary`]) while
///   there is no writable primary; `route(Intent::Read(consistency))` a healthy replica fresh
///   enough for the consistency (round robin among the eligible, or a `tierkit-lb` policy:
///   [`ReplicaSetBuilder::read_policy`]), or the primary with the reason
///   ([`Route::fallback`](crate::Route::fallback)).
/// - Replication positions come from the application ([`report_position`](Self::report_position),
///   [`Route::committed`](crate::Route::committed), [`Route::served`](crate::Route::served)) or
///   a probe ([`report_observation`](Self::report_observation)).
/// - Health is passive ([`Route::failure`](crate::Route::failure)) and active
///   ([`report_health`](Self::report_health), with rise/fall thresholds).
/// - [`check_failover`](Self::check_failover) starts a promotion of the most advanced healthy
///   replica; writes resume only when the engine confirms it writable
///   ([`complete_promotion`](Self::complete_promotion), or the promotion hook with the `tokio`
///   feature). Every change is an [`Event`](crate::Event).
///
/// Routing loads an immutable topology snapshot and reads per-node atomics: no lock, no
/// allocation. Topology changes are serialised by a mutex routing never touches.
///
/// # Examples
///
/// ```
/// use tierkit_replication::{Consistency, Intent, NodeId, Position, ReplicaSet};
///
/// # fn main() -> Result<(), tierkit_replication::Error> {
/// let set = ReplicaSet::builder()
///     .primary(NodeId(0), "postgres://primary")
///     .replica(NodeId(1), "postgres://replica-1")
///     .replica(NodeId(2), "postgres://replica-2")
///     .build()?;
///
/// let write = set.route(Intent::Write)?;
/// assert!(write.is_primary());
/// let token = write.committed(Position(101)); // the primary's LSN read after COMMIT
///
/// set.report_position(NodeId(1), Position(101))?; // replica 1 has applied it
/// let read = set.route(Intent::Read(Consistency::ReadYourWrites(token)))?;
/// assert_eq!(read.id(), NodeId(1)); // replica 2 has not, the primary is not needed
/// # Ok(())
/// # }
/// ```
pub struct ReplicaSet<C> {
    pub(crate) topology: ArcSwap<Topology<C>>,
    pub(crate) writer: Mutex<()>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) config: Config,
    pub(crate) next: CachePadded<AtomicUsize>,
    /// Clock nanos + 1 of the last promotion; 0 = never.
    pub(crate) last_failover: AtomicU64,
    pub(crate) cascade: AtomicBool,
    /// Samples `(position, nanos)` of the primary, both increasing: the primary was at most at
    /// `position` at clock time `nanos` (see `health.rs`).
    pub(crate) history: parking_lot::Mutex<VecDeque<(u64, u64)>>,
    pub(crate) listeners: Listeners,
    /// Woken when a position advances or a probe round ends (read waiters).
    #[cfg(feature = "tokio")]
    pub(crate) advanced: tokio::sync::Notify,
    /// Woken when the topology or a node's health changes (write waiters).
    #[cfg(feature = "tokio")]
    pub(crate) changed: tokio::sync::Notify,
    /// Asks a running monitor for a probe round now (read-your-writes waits).
    #[cfg(feature = "tokio")]
    pub(crate) probe_wanted: tokio::sync::Notify,
    /// Acts on the engine when a promotion starts.
    #[cfg(feature = "tokio")]
    pub(crate) hook: Option<Box<dyn crate::hook::DynHook<C>>>,
    /// Replica choice through a `tierkit-lb` policy; `None` = built-in round robin.
    pub(crate) read_balancer: Option<Box<dyn ReadBalancer>>,
}

/// Configures a [`ReplicaSet`].
#[must_use]
pub struct ReplicaSetBuilder<C> {
    primary: Option<(NodeId, C)>,
    replicas: Vec<(NodeId, C)>,
    clock: Option<Arc<dyn Clock>>,
    config: Config,
    read_balancer: Option<ReadBalancerFactory>,
    #[cfg(feature = "tokio")]
    pub(crate) hook: Option<Box<dyn crate::hook::DynHook<C>>>,
}

impl<C> Default for ReplicaSetBuilder<C> {
    fn default() -> Self {
        ReplicaSetBuilder {
            primary: None,
            replicas: Vec::new(),
            clock: None,
            config: Config::default(),
            read_balancer: None,
            #[cfg(feature = "tokio")]
            hook: None,
        }
    }
}

impl<C> ReplicaSetBuilder<C> {
    /// The primary (required).
    pub fn primary(mut self, id: NodeId, handle: C) -> Self {
        self.primary = Some((id, handle));
        self
    }

    /// A replica.
    pub fn replica(mut self, id: NodeId, handle: C) -> Self {
        self.replicas.push((id, handle));
        self
    }

    /// The one clock of the set: failover timers, write timestamps, time lag, and the read
    /// policy's balancer (default: [`SystemClock`]).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// Thresholds and timers.
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Chooses among the eligible replicas (healthy and fresh enough for the read's
    /// consistency) with a `tierkit-lb` policy instead of the built-in round robin: for example
    /// [`tierkit_lb::LeastLatency`] (report latencies with
    /// [`Route::success_after`](crate::Route::success_after)) or
    /// [`tierkit_lb::PowerOfTwoChoices`] (least requests in flight). The balancer's members
    /// follow the set's replicas through every change, promotion included, and it reads the
    /// set's clock.
    pub fn read_policy<P: tierkit_lb::Policy<NodeId>>(mut self, policy: P) -> Self {
        self.read_balancer = Some(balance::factory(policy));
        self
    }

    /// Builds the set; every node starts healthy at position 0.
    ///
    /// # Errors
    /// [`Error::MissingPrimary`]; [`Error::DuplicateNode`]; [`Error::Balancer`] if the read
    /// policy's balancer cannot be built.
    pub fn build(self) -> Result<ReplicaSet<C>> {
        let (pid, primary) = self.primary.ok_or(Error::MissingPrimary)?;
        let mut members = vec![Member {
            id: pid,
            handle: Arc::new(primary),
            state: Arc::new(NodeState::new(Position(0))),
            role: Role::Primary,
        }];
        for (id, handle) in self.replicas {
            if members.iter().any(|m| m.id == id) {
                return Err(Error::DuplicateNode(id));
            }
            members.push(Member {
                id,
                handle: Arc::new(handle),
                state: Arc::new(NodeState::new(Position(0))),
                role: Role::Replica,
            });
        }
        let replicas: Vec<NodeId> = members
            .iter()
            .filter(|m| m.role == Role::Replica)
            .map(|m| m.id)
            .collect();
        let clock: Arc<dyn Clock> = self.clock.unwrap_or_else(|| Arc::new(SystemClock));
        let read_balancer = match self.read_balancer {
            Some(make) => Some(make(&replicas, clock.clone()).map_err(Error::Balancer)?),
            None => None,
        };
        Ok(ReplicaSet {
            topology: ArcSwap::from_pointee(Topology {
                epoch: Epoch(1),
                primary: Some(0),
                promoting: None,
                members,
            }),
            writer: Mutex::new(()),
            clock,
            config: self.config,
            next: CachePadded::new(AtomicUsize::new(0)),
            last_failover: AtomicU64::new(0),
            cascade: AtomicBool::new(false),
            history: parking_lot::Mutex::new(VecDeque::with_capacity(crate::health::HISTORY)),
            listeners: Listeners::new(),
            #[cfg(feature = "tokio")]
            advanced: tokio::sync::Notify::new(),
            #[cfg(feature = "tokio")]
            changed: tokio::sync::Notify::new(),
            #[cfg(feature = "tokio")]
            probe_wanted: tokio::sync::Notify::new(),
            #[cfg(feature = "tokio")]
            hook: self.hook,
            read_balancer,
        })
    }
}

impl<C> ReplicaSet<C> {
    /// A builder.
    pub fn builder() -> ReplicaSetBuilder<C> {
        ReplicaSetBuilder::default()
    }

    /// The current epoch.
    #[must_use]
    pub fn epoch(&self) -> Epoch {
        self.topology.load().epoch
    }

    /// The current primary (`None` while there is none, a promotion included).
    #[must_use]
    pub fn primary(&self) -> Option<NodeId> {
        let t = self.topology.load();
        t.primary.map(|p| t.members[p].id)
    }

    /// The replica being promoted, while a promotion waits for the engine.
    #[must_use]
    pub fn promoting(&self) -> Option<NodeId> {
        let t = self.topology.load();
        t.promoting.map(|p| t.members[p].id)
    }

    /// Whether the current primary is marked healthy (`None` when there is no primary): the
    /// question an application's failover loop asks before [`check_failover`](Self::check_failover)
    /// or [`promote`](Self::promote).
    #[must_use]
    pub fn primary_healthy(&self) -> Option<bool> {
        let t = self.topology.load();
        t.primary.map(|p| t.members[p].state.is_healthy())
    }

    /// The set's clock.
    #[must_use]
    pub fn clock(&self) -> &dyn Clock {
        &*self.clock
    }

    /// Calls `listener` with every [`Event`] from now on, after the change is published and
    /// outside every lock of the set (it may call back into the set).
    ///
    /// # Examples
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use tierkit_replication::{Event, NodeId, ReplicaSet};
    ///
    /// # fn main() -> Result<(), tierkit_replication::Error> {
    /// let set = ReplicaSet::builder().primary(NodeId(0), ()).replica(NodeId(1), ()).build()?;
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// let sink = seen.clone();
    /// set.on_event(move |e| sink.lock().unwrap().push(e.clone()));
    /// set.promote()?; // an operator's promotion: the engine is already writable
    /// assert!(matches!(seen.lock().unwrap().last(), Some(Event::Promoted(_))));
    /// # Ok(())
    /// # }
    /// ```
    pub fn on_event(&self, listener: impl Fn(&Event) + Send + Sync + 'static) {
        self.listeners.add(Arc::new(listener));
    }

    /// Applies a topology change under the writer lock and publishes it; then, with no lock
    /// held, delivers the events the change produced and wakes waiters.
    pub(crate) fn update<T>(
        &self,
        change: impl FnOnce(&Topology<C>, &mut Vec<Event>) -> Result<(Topology<C>, T)>,
    ) -> Result<T> {
        let mut events = Vec::new();
        let out = {
            let _guard = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
            let current = self.topology.load_full();
            let (next, out) = change(&current, &mut events)?;
            if let Some(lb) = &self.read_balancer {
                let replicas: Vec<NodeId> = next
                    .members
                    .iter()
                    .filter(|m| m.role == Role::Replica)
                    .map(|m| m.id)
                    .collect();
                lb.sync(&replicas);
            }
            if next.epoch != current.epoch {
                // A new epoch starts a new history of primary positions.
                self.history.lock().clear();
            }
            self.topology.store(Arc::new(next));
            out
        };
        self.listeners.emit(events);
        self.topology_changed();
        Ok(out)
    }

    /// Wakes write waiters (the topology or a health flag changed).
    pub(crate) fn topology_changed(&self) {
        #[cfg(feature = "tokio")]
        self.changed.notify_waiters();
    }

    /// Adds a replica (a new one, or one replacing a failed node) at `position`.
    ///
    /// # Errors
    /// [`Error::DuplicateNode`].
    pub fn add_replica(&self, id: NodeId, handle: C, position: Position) -> Result<()> {
        let mut handle = Some(handle);
        self.update(|t, _| {
            if t.index_of(id).is_some() {
                return Err(Error::DuplicateNode(id));
            }
            let mut next = t.copy();
            if let Some(h) = handle.take() {
                next.members.push(Member {
                    id,
                    handle: Arc::new(h),
                    state: Arc::new(NodeState::new(position)),
                    role: Role::Replica,
                });
            }
            tracing::info!(node = id.0, "replica added");
            Ok((next, ()))
        })
    }

    /// Gives a node a new handle (a fresh connection pool after a failover or a move),
    /// returning the old one. Routes already handed out keep the handle they were given.
    ///
    /// # Errors
    /// [`Error::UnknownNode`].
    pub fn replace_handle(&self, id: NodeId, handle: C) -> Result<Arc<C>> {
        let mut handle = Some(handle);
        self.update(|t, _| {
            let i = t.index_of(id).ok_or(Error::UnknownNode(id))?;
            let mut next = t.copy();
            let mut old = next.members[i].handle.clone();
            if let Some(h) = handle.take() {
                old = std::mem::replace(&mut next.members[i].handle, Arc::new(h));
            }
            Ok((next, old))
        })
    }

    /// Removes a node that is not the primary, returning its handle.
    ///
    /// # Errors
    /// [`Error::UnknownNode`]; [`Error::NoPrimary`] when asked to remove the primary (promote
    /// another node first); [`Error::Promoting`] when asked to remove the node being promoted.
    pub fn remove(&self, id: NodeId) -> Result<Arc<C>> {
        self.update(|t, _| {
            let i = t.index_of(id).ok_or(Error::UnknownNode(id))?;
            if t.primary == Some(i) {
                return Err(Error::NoPrimary);
            }
            if t.promoting == Some(i) {
                return Err(Error::Promoting {
                    candidate: id,
                    epoch: t.epoch,
                });
            }
            let mut next = t.copy();
            let gone = next.members.remove(i);
            let shift = |p: usize| if p > i { p - 1 } else { p };
            next.primary = t.primary.map(shift);
            next.promoting = t.promoting.map(shift);
            tracing::info!(node = id.0, "node removed");
            Ok((next, gone.handle))
        })
    }

    /// The read balancer's statistics (picks, in flight, latency per replica), if the set was
    /// built with [`read_policy`](ReplicaSetBuilder::read_policy).
    #[must_use]
    pub fn read_balancer_stats(&self) -> Option<tierkit_lb::BalancerStats> {
        self.read_balancer.as_ref().map(|lb| lb.stats())
    }

    /// Per-node statistics.
    #[must_use]
    pub fn stats(&self) -> Vec<NodeStats> {
        let t = self.topology.load();
        let primary_pos = t.primary_position();
        t.members
            .iter()
            .map(|m| NodeStats {
                id: m.id,
                role: m.role,
                healthy: m.state.is_healthy(),
                position: m.state.position(),
                received: match m.state.received.load(Ordering::Acquire) {
                    0 => None,
                    r => Some(Position(r)),
                },
                writable: match m.state.engine.load(Ordering::Acquire) {
                    WRITABLE => Some(true),
                    READ_ONLY => Some(false),
                    _ => None,
                },
                lag: m.state.position().lag_behind(primary_pos),
                lag_time: self.time_lag(m.state.position(), primary_pos),
                in_flight: m.state.in_flight(),
                reads: m
                    .state
                    .started
                    .load(Ordering::Relaxed)
                    .saturating_sub(m.state.writes.load(Ordering::Relaxed)),
                writes: m.state.writes.load(Ordering::Relaxed),
                failures: m.state.failures.load(Ordering::Relaxed),
                fallback_reads: m.state.fallback_reads.load(Ordering::Relaxed),
            })
            .collect()
    }
}

impl<C> std::fmt::Debug for ReplicaSet<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let t = self.topology.load();
        f.debug_struct("ReplicaSet")
            .field("epoch", &t.epoch)
            .field("nodes", &t.members.len())
            .field("primary", &t.primary.map(|p| t.members[p].id))
            .field("promoting", &t.promoting.map(|p| t.members[p].id))
            .finish_non_exhaustive()
    }
}

impl<C> std::fmt::Debug for ReplicaSetBuilder<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicaSetBuilder")
            .field("replicas", &self.replicas.len())
            .finish_non_exhaustive()
    }
}
