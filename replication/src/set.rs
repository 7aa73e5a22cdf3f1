//! [`ReplicaSet`]: the routing brain in front of a primary and its replicas.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use arc_swap::{ArcSwap, Guard};
use crossbeam_utils::CachePadded;

use crate::balance::{self, ReadBalancer, ReadBalancerFactory};
use crate::node::NodeState;
use crate::{
    Clock, Consistency, Epoch, Error, Fallback, Intent, NodeId, NodeStats, Position, Result, Role,
    Route, SystemClock,
};

/// Thresholds and timers of a [`ReplicaSet`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// Consecutive failures that mark a node down (default 3).
    pub fall: u32,
    /// Consecutive successful health reports that mark a down node up (default 2).
    pub rise: u32,
    /// For `Eventual` and `BoundedStaleness` reads: if fewer replicas than this meet the bound,
    /// the most advanced healthy replicas keep serving up to this floor instead of sending every
    /// read to the primary (the "lag cascade" guard; default 1, 0 disables it).
    pub min_serving_replicas: usize,
    /// How long the primary must be down before [`check_failover`](ReplicaSet::check_failover)
    /// promotes a replica (default 10 s).
    pub failover_after: Duration,
    /// Automatic promotion refuses a candidate this many positions behind the old primary's last
    /// known position (default: no limit), as Patroni's `maximum_lag_on_failover`.
    pub max_promotion_lag: Option<u64>,
    /// No automatic failover within this long after the previous one (default 60 s), as
    /// Orchestrator's anti-flapping period.
    pub quiet_period: Duration,
}

impl Config {
    /// Sets [`fall`](Config::fall).
    #[must_use]
    pub fn fall(mut self, failures: u32) -> Self {
        self.fall = failures.max(1);
        self
    }

    /// Sets [`rise`](Config::rise).
    #[must_use]
    pub fn rise(mut self, successes: u32) -> Self {
        self.rise = successes.max(1);
        self
    }

    /// Sets [`min_serving_replicas`](Config::min_serving_replicas).
    #[must_use]
    pub fn min_serving_replicas(mut self, floor: usize) -> Self {
        self.min_serving_replicas = floor;
        self
    }

    /// Sets [`failover_after`](Config::failover_after).
    #[must_use]
    pub fn failover_after(mut self, after: Duration) -> Self {
        self.failover_after = after;
        self
    }

    /// Sets [`max_promotion_lag`](Config::max_promotion_lag).
    #[must_use]
    pub fn max_promotion_lag(mut self, max: Option<u64>) -> Self {
        self.max_promotion_lag = max;
        self
    }

    /// Sets [`quiet_period`](Config::quiet_period).
    #[must_use]
    pub fn quiet_period(mut self, quiet: Duration) -> Self {
        self.quiet_period = quiet;
        self
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            fall: 3,
            rise: 2,
            min_serving_replicas: 1,
            failover_after: Duration::from_secs(10),
            max_promotion_lag: None,
            quiet_period: Duration::from_secs(60),
        }
    }
}

/// One member of the current topology.
pub(crate) struct Member<C> {
    pub(crate) id: NodeId,
    pub(crate) handle: Arc<C>,
    pub(crate) state: Arc<NodeState>,
    pub(crate) role: Role,
}

impl<C> Clone for Member<C> {
    fn clone(&self) -> Self {
        Member {
            id: self.id,
            handle: self.handle.clone(),
            state: self.state.clone(),
            role: self.role,
        }
    }
}

/// The immutable topology readers load: who is primary in which epoch.
pub(crate) struct Topology<C> {
    pub(crate) epoch: Epoch,
    pub(crate) primary: Option<usize>,
    pub(crate) members: Vec<Member<C>>,
}

impl<C> Topology<C> {
    pub(crate) fn index_of(&self, id: NodeId) -> Option<usize> {
        self.members.iter().position(|m| m.id == id)
    }

    pub(crate) fn primary_position(&self) -> Position {
        match self.primary {
            Some(p) => self.members[p].state.position(),
            None => self
                .members
                .iter()
                .map(|m| m.state.position())
                .max()
                .unwrap_or_default(),
        }
    }
}

/// Read/write splitting over a primary and its replicas, over the user's own node handles `C`
/// (connection pools, clients).
///
/// - [`route`](Self::route)`(Intent::Write)` returns the primary of the current epoch;
///   `route(Intent::Read(consistency))` a healthy replica fresh enough for the consistency
///   (round robin among the eligible, or a `tierkit-lb` policy: [`ReplicaSetBuilder::read_policy`]),
///   or the primary with the reason
///   ([`Route::fallback`]).
/// - Replication positions come from the application ([`report_position`](Self::report_position),
///   [`Route::committed`]); lag is the primary's position minus a replica's.
/// - Health is passive ([`Route::failure`]) and active ([`report_health`](Self::report_health),
///   with rise/fall thresholds).
/// - [`promote`](Self::promote) and [`check_failover`](Self::check_failover) move the primary
///   role to the most advanced healthy replica, bump the [`Epoch`] and report the writes the old
///   primary acknowledged that the new one never received.
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
/// let token = write.committed(Position(101)); // the primary's LSN after the write
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
    next: CachePadded<AtomicUsize>,
    /// Clock nanos + 1 of the last promotion; 0 = never.
    pub(crate) last_failover: AtomicU64,
    cascade: AtomicBool,
    /// Recent (primary position, time) samples, oldest first, for time lag.
    pub(crate) history: parking_lot::Mutex<std::collections::VecDeque<(u64, Duration)>>,
    /// Woken when a position advances (for `route_waiting`).
    #[cfg(feature = "tokio")]
    pub(crate) advanced: tokio::sync::Notify,
    /// Replica choice through a `tierkit-lb` policy; `None` = built-in round robin.
    read_balancer: Option<Box<dyn ReadBalancer>>,
}

/// Configures a [`ReplicaSet`].
#[must_use]
pub struct ReplicaSetBuilder<C> {
    primary: Option<(NodeId, C)>,
    replicas: Vec<(NodeId, C)>,
    clock: Option<Arc<dyn Clock>>,
    config: Config,
    read_balancer: Option<ReadBalancerFactory>,
}

impl<C> Default for ReplicaSetBuilder<C> {
    fn default() -> Self {
        ReplicaSetBuilder {
            primary: None,
            replicas: Vec::new(),
            clock: None,
            config: Config::default(),
            read_balancer: None,
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

    /// The clock for failover timers and write timestamps (default: [`SystemClock`]).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
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
    /// follow the set's replicas through every change, promotion included.
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
        let read_balancer = match self.read_balancer {
            Some(make) => Some(make(&replicas).map_err(Error::Balancer)?),
            None => None,
        };
        Ok(ReplicaSet {
            topology: ArcSwap::from_pointee(Topology {
                epoch: Epoch(1),
                primary: Some(0),
                members,
            }),
            writer: Mutex::new(()),
            clock: self.clock.unwrap_or_else(|| Arc::new(SystemClock::new())),
            config: self.config,
            next: CachePadded::new(AtomicUsize::new(0)),
            last_failover: AtomicU64::new(0),
            cascade: AtomicBool::new(false),
            history: parking_lot::Mutex::new(std::collections::VecDeque::with_capacity(HISTORY)),
            #[cfg(feature = "tokio")]
            advanced: tokio::sync::Notify::new(),
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

    /// The current primary.
    #[must_use]
    pub fn primary(&self) -> Option<NodeId> {
        let t = self.topology.load();
        t.primary.map(|p| t.members[p].id)
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
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Routes a request. Lock-free and allocation-free.
    ///
    /// # Errors
    /// [`Error::NoPrimary`] for a write (or a read that needs the primary) while there is none;
    /// [`Error::NoNode`] when no node at all can serve.
    pub fn route(&self, intent: Intent) -> Result<Route<'_, C>> {
        let topo = self.topology.load();
        match intent {
            Intent::Write => {
                let p = topo.primary.ok_or(Error::NoPrimary)?;
                topo.members[p].state.writes.fetch_add(1, Ordering::Relaxed);
                Ok(self.lease(topo, p, None))
            }
            Intent::Read(consistency) => self.route_read(topo, consistency),
        }
    }

    fn lease(
        &self,
        topology: Guard<Arc<Topology<C>>>,
        index: usize,
        fallback: Option<Fallback>,
    ) -> Route<'_, C> {
        let state = &topology.members[index].state;
        state.started.fetch_add(1, Ordering::AcqRel);
        let position = state.position();
        Route {
            set: self,
            topology,
            index,
            fallback,
            position,
            read_lease: None,
        }
    }

    fn route_read(
        &self,
        topo: Guard<Arc<Topology<C>>>,
        consistency: Consistency,
    ) -> Result<Route<'_, C>> {
        let primary_pos = topo.primary_position();
        // The oldest position a replica may be at, or the reason to use the primary.
        let (need, floor_applies) = match consistency {
            Consistency::Eventual => (Ok(Position(0)), true),
            Consistency::BoundedStaleness(max) => {
                (Ok(Position(primary_pos.0.saturating_sub(max))), true)
            }
            Consistency::ReadYourWrites(t) if t.epoch < topo.epoch => {
                (Err(Fallback::EarlierEpoch), false)
            }
            Consistency::ReadYourWrites(t) => (Ok(t.position), false),
            Consistency::MonotonicReads(p) => (Ok(p), false),
            Consistency::PrimaryAfterWrite { token, window } => {
                if self.clock.now().saturating_sub(token.written_at) < window {
                    (Err(Fallback::RecentWrite), false)
                } else {
                    (Ok(Position(0)), true)
                }
            }
            Consistency::Primary => (Err(Fallback::ReplicasBehind), false),
        };
        let explicit_primary = matches!(consistency, Consistency::Primary);
        let fallback = match need {
            Err(reason) => reason,
            Ok(need) => match self.pick_replica(&topo, need, floor_applies) {
                Ok((i, read_lease)) => {
                    let mut route = self.lease(topo, i, None);
                    route.read_lease = read_lease;
                    return Ok(route);
                }
                Err(reason) => reason,
            },
        };
        let Some(p) = topo.primary else {
            return Err(Error::NoPrimary);
        };
        if explicit_primary {
            return Ok(self.lease(topo, p, None));
        }
        topo.members[p]
            .state
            .fallback_reads
            .fetch_add(1, Ordering::Relaxed);
        tracing::debug!(reason = ?fallback, "read falls back to the primary");
        Ok(self.lease(topo, p, Some(fallback)))
    }

    /// Round robin over healthy replicas at or past `need`; with the cascade floor, the most
    /// advanced healthy replicas also count when too few meet the bound.
    fn pick_replica(
        &self,
        topo: &Topology<C>,
        need: Position,
        floor_applies: bool,
    ) -> Result<(usize, Option<tierkit_lb::Lease<NodeId>>), Fallback> {
        let serving = |m: &Member<C>| m.role == Role::Replica && m.state.is_healthy();
        let mut need = need;
        // One pass: count the eligible and remember the first `STACK` of them, so round robin
        // needs no second pass in the common case.
        const STACK: usize = 64;
        let mut found = [0u32; STACK];
        let mut eligible = 0usize;
        for (i, m) in topo.members.iter().enumerate() {
            if serving(m) && (need == Position(0) || m.state.position() >= need) {
                if let (Some(slot), Ok(i)) = (found.get_mut(eligible), u32::try_from(i)) {
                    *slot = i;
                }
                eligible += 1;
            }
        }
        let first_pass = eligible;
        if floor_applies && self.config.min_serving_replicas > 0 {
            let floor = self.config.min_serving_replicas;
            let cascading = eligible < floor;
            if cascading {
                let healthy = topo.members.iter().filter(|m| serving(m)).count();
                if healthy > eligible {
                    // The floor-th highest position among healthy replicas becomes the bound.
                    let positions = topo
                        .members
                        .iter()
                        .filter(|m| serving(m))
                        .map(|m| m.state.position());
                    need = need.min(kth_highest(positions, floor.min(healthy)));
                    eligible = topo
                        .members
                        .iter()
                        .filter(|m| serving(m) && m.state.position() >= need)
                        .count();
                }
            }
            // Log transitions only, and write the shared flag only when it changes.
            if self.cascade.load(Ordering::Relaxed) != cascading
                && self.cascade.swap(cascading, Ordering::Relaxed) != cascading
            {
                if cascading {
                    tracing::warn!(
                        eligible,
                        floor,
                        "replicas lag past the bound; keeping the most advanced serving"
                    );
                } else {
                    tracing::info!("replicas back within the staleness bound");
                }
            }
        }
        if eligible == 0 {
            let any_healthy = topo.members.iter().any(serving);
            return Err(if any_healthy {
                Fallback::ReplicasBehind
            } else {
                Fallback::NoHealthyReplica
            });
        }
        if let Some(lb) = &self.read_balancer {
            // The eligible replicas as an allowlist: from the first pass when it still holds,
            // else recomputed (more than 64 eligible, or the cascade floor moved the bound).
            let mut ids = [tierkit_lb::BackendId(0); STACK];
            let heap: Vec<tierkit_lb::BackendId>;
            let allow: &[tierkit_lb::BackendId] = if eligible == first_pass && eligible <= STACK {
                for (slot, &i) in ids.iter_mut().zip(&found[..eligible]) {
                    *slot = balance::backend_id(topo.members[i as usize].id);
                }
                &ids[..eligible]
            } else {
                heap = topo
                    .members
                    .iter()
                    .filter(|m| serving(m) && m.state.position() >= need)
                    .map(|m| balance::backend_id(m.id))
                    .collect();
                &heap
            };
            if let Some(lease) = lb.pick(allow)
                && let Some(i) = topo.index_of(*lease)
            {
                return Ok((i, Some(lease)));
            }
        }
        // Round robin over the eligible: the k-th of them, k from a shared counter.
        let k = self.next.fetch_add(1, Ordering::Relaxed) % eligible;
        if eligible == first_pass && eligible <= STACK {
            return Ok((found[k] as usize, None));
        }
        topo.members
            .iter()
            .enumerate()
            .filter(|(_, m)| serving(m) && m.state.position() >= need)
            .nth(k)
            .map(|(i, _)| (i, None))
            .ok_or(Fallback::ReplicasBehind)
    }

    /// Records a node's replication position (from a position probe, or the application's own
    /// knowledge). Positions only move forward.
    ///
    /// # Errors
    /// [`Error::UnknownNode`].
    pub fn report_position(&self, id: NodeId, position: Position) -> Result<()> {
        let topo = self.topology.load();
        let i = topo.index_of(id).ok_or(Error::UnknownNode(id))?;
        let before = topo.members[i]
            .state
            .position
            .fetch_max(position.0, Ordering::AcqRel);
        if topo.primary == Some(i) && position.0 > before {
            self.record_primary_position(position);
        }
        #[cfg(feature = "tokio")]
        if position.0 > before {
            self.advanced.notify_waiters();
        }
        #[cfg(not(feature = "tokio"))]
        let _ = before;
        Ok(())
    }

    /// The result of an active health check of `id`: `rise` consecutive successes mark a down
    /// node up, `fall` consecutive failures mark an up node down.
    ///
    /// # Errors
    /// [`Error::UnknownNode`].
    pub fn report_health(&self, id: NodeId, ok: bool) -> Result<()> {
        let topo = self.topology.load();
        let i = topo.index_of(id).ok_or(Error::UnknownNode(id))?;
        let s = &topo.members[i].state;
        if ok {
            s.consecutive_failures.store(0, Ordering::Release);
            let rises = s.consecutive_successes.fetch_add(1, Ordering::AcqRel) + 1;
            if rises >= self.config.rise && !s.healthy.swap(true, Ordering::AcqRel) {
                s.down_since.store(0, Ordering::Release);
                tracing::info!(node = id.0, "node marked up");
            }
        } else {
            s.consecutive_successes.store(0, Ordering::Release);
            let falls = s.consecutive_failures.fetch_add(1, Ordering::AcqRel) + 1;
            if falls >= self.config.fall {
                self.mark(s, id, false);
            }
        }
        Ok(())
    }

    /// Marks a node down now (an operator's decision, or a check that is certain).
    ///
    /// # Errors
    /// [`Error::UnknownNode`].
    pub fn mark_down(&self, id: NodeId) -> Result<()> {
        let topo = self.topology.load();
        let i = topo.index_of(id).ok_or(Error::UnknownNode(id))?;
        self.mark(&topo.members[i].state, id, false);
        Ok(())
    }

    /// Marks a node up now.
    ///
    /// # Errors
    /// [`Error::UnknownNode`].
    pub fn mark_up(&self, id: NodeId) -> Result<()> {
        let topo = self.topology.load();
        let i = topo.index_of(id).ok_or(Error::UnknownNode(id))?;
        self.mark(&topo.members[i].state, id, true);
        Ok(())
    }

    fn mark(&self, s: &NodeState, id: NodeId, up: bool) {
        if s.healthy.swap(up, Ordering::AcqRel) != up {
            if up {
                s.down_since.store(0, Ordering::Release);
                tracing::info!(node = id.0, "node marked up");
            } else {
                let now = u64::try_from(self.clock.now().as_nanos())
                    .unwrap_or(u64::MAX)
                    .max(1);
                s.down_since.store(now, Ordering::Release);
                tracing::warn!(node = id.0, "node marked down");
            }
        }
    }

    /// Applies a topology change under the writer lock and publishes it.
    pub(crate) fn update<T>(
        &self,
        change: impl FnOnce(&Topology<C>) -> Result<(Topology<C>, T)>,
    ) -> Result<T> {
        let _guard = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let current = self.topology.load_full();
        let (next, out) = change(&current)?;
        if let Some(lb) = &self.read_balancer {
            let replicas: Vec<NodeId> = next
                .members
                .iter()
                .filter(|m| m.role == Role::Replica)
                .map(|m| m.id)
                .collect();
            lb.sync(&replicas);
        }
        self.topology.store(Arc::new(next));
        Ok(out)
    }

    /// Adds a replica (a new one, or one replacing a failed node) at `position`.
    ///
    /// # Errors
    /// [`Error::DuplicateNode`].
    pub fn add_replica(&self, id: NodeId, handle: C, position: Position) -> Result<()> {
        let mut handle = Some(handle);
        self.update(|t| {
            if t.index_of(id).is_some() {
                return Err(Error::DuplicateNode(id));
            }
            let mut members = t.members.clone();
            if let Some(h) = handle.take() {
                members.push(Member {
                    id,
                    handle: Arc::new(h),
                    state: Arc::new(NodeState::new(position)),
                    role: Role::Replica,
                });
            }
            tracing::info!(node = id.0, "replica added");
            Ok((
                Topology {
                    epoch: t.epoch,
                    primary: t.primary,
                    members,
                },
                (),
            ))
        })
    }

    /// Removes a node that is not the primary, returning its handle.
    ///
    /// # Errors
    /// [`Error::UnknownNode`]; [`Error::NoPrimary`] when asked to remove the primary (promote
    /// another node first).
    pub fn remove(&self, id: NodeId) -> Result<Arc<C>> {
        self.update(|t| {
            let i = t.index_of(id).ok_or(Error::UnknownNode(id))?;
            if t.primary == Some(i) {
                return Err(Error::NoPrimary);
            }
            let mut members = t.members.clone();
            let gone = members.remove(i);
            let primary = t.primary.map(|p| if p > i { p - 1 } else { p });
            tracing::info!(node = id.0, "node removed");
            Ok((
                Topology {
                    epoch: t.epoch,
                    primary,
                    members,
                },
                gone.handle,
            ))
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

/// Samples of the primary's position kept for time lag.
const HISTORY: usize = 256;

impl<C> ReplicaSet<C> {
    /// Notes that the primary reached `position` now (off the read path; skipped if another
    /// thread holds the history).
    pub(crate) fn record_primary_position(&self, position: Position) {
        let Some(mut h) = self.history.try_lock() else {
            return;
        };
        if h.back().is_none_or(|(p, _)| *p < position.0) {
            if h.len() == HISTORY {
                h.pop_front();
            }
            h.push_back((position.0, self.clock.now()));
        }
    }

    /// How long ago the primary made the oldest write a node at `position` lacks.
    fn time_lag(&self, position: Position, primary: Position) -> Option<Duration> {
        if position >= primary {
            return Some(Duration::ZERO);
        }
        let h = self.history.lock();
        // The first sample past `position` is when the primary made its first missing write;
        // only known if an older sample is at or before `position` too.
        let i = h.partition_point(|(p, _)| *p <= position.0);
        if i == 0 {
            return None;
        }
        h.get(i).map(|(_, at)| self.clock.now().saturating_sub(*at))
    }
}

/// The `k`-th highest of some positions (k >= 1), without allocating: O(n·k).
fn kth_highest(positions: impl Iterator<Item = Position> + Clone, k: usize) -> Position {
    let mut bound = Position(u64::MAX);
    let mut found = 0;
    while found < k {
        let Some(next) = positions.clone().filter(|p| *p < bound).max() else {
            break;
        };
        found += positions.clone().filter(|p| *p == next).count();
        bound = next;
    }
    bound
}

impl<C> std::fmt::Debug for ReplicaSet<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let t = self.topology.load();
        f.debug_struct("ReplicaSet")
            .field("epoch", &t.epoch)
            .field("nodes", &t.members.len())
            .field("primary", &t.primary.map(|p| t.members[p].id))
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
