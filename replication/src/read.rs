//! Routing: [`ReplicaSet::route`], the read consistency rules and the replica choice.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use arc_swap::Guard;

use crate::node::READ_ONLY;
use crate::topology::{Member, Topology};
use crate::{
    BoundFallback, Consistency, Error, Fallback, Intent, NodeId, Position, ReplicaSet, Result,
    Role, Route, balance,
};

impl<C> ReplicaSet<C> {
    /// Routes a request. Lock-free and allocation-free.
    ///
    /// A write goes to the primary of the current epoch, and only while it is writable: while
    /// it is marked down, while its engine reports it read-only, or while a promotion waits for
    /// the engine, writes fail fast (use
    /// `route_write_waiting`, feature `tokio`, to wait instead).
    ///
    /// # Errors
    /// [`Error::PrimaryUnavailable`] (primary marked down or read-only), [`Error::Promoting`]
    /// (a promotion waits for the engine), [`Error::NoPrimary`] (none, and no promotion under
    /// way) for writes and for reads that need the primary; [`Error::NoNode`] when no node at
    /// all can serve.
    pub fn route(&self, intent: Intent) -> Result<Route<'_, C>> {
        let topo = self.topology.load();
        match intent {
            Intent::Write => {
                let p = writable_primary(&topo)?;
                topo.members[p].state.writes.fetch_add(1, Ordering::Relaxed);
                // A lower bound of the time the write starts: a position read after it commits
                // was reached no earlier (time-bounded staleness relies on this direction).
                let started_at = self.clock.recent_nanos();
                let mut route = self.lease(topo, p, None);
                route.started_at = started_at;
                Ok(route)
            }
            Intent::Read(consistency) => self.route_read(topo, consistency),
        }
    }

    pub(crate) fn lease(
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
            beyond_bound: false,
            started_at: 0,
            read_lease: None,
        }
    }

    fn route_read(
        &self,
        topo: Guard<Arc<Topology<C>>>,
        consistency: Consistency,
    ) -> Result<Route<'_, C>> {
        // The oldest position a replica may be at, or the reason to use the primary; and
        // whether this is a bound the `StaleReplica` fallback may relax.
        let (need, bounded) = match consistency {
            Consistency::Eventual => (Ok(Position(0)), false),
            Consistency::BoundedStaleness(max) => (
                Ok(Position(topo.primary_position().0.saturating_sub(max))),
                true,
            ),
            Consistency::BoundedStalenessTime(max) => (
                // No sample recent enough to bound the primary's position: no replica is
                // known to meet the bound.
                Ok(self.time_bound(max).unwrap_or(Position(u64::MAX))),
                true,
            ),
            Consistency::ReadYourWrites(t) if t.epoch < topo.epoch => {
                (Err(Fallback::EarlierEpoch), false)
            }
            Consistency::ReadYourWrites(t) => (Ok(t.position), false),
            Consistency::MonotonicReads(p) => (Ok(p), false),
            Consistency::PrimaryAfterWrite { token, window } => {
                let now = std::time::Duration::from_nanos(self.clock.now_nanos());
                if now.saturating_sub(token.written_at) < window {
                    (Err(Fallback::RecentWrite), false)
                } else {
                    (Ok(Position(0)), false)
                }
            }
            Consistency::Primary => (Err(Fallback::ReplicasBehind), false),
        };
        let explicit_primary = matches!(consistency, Consistency::Primary);
        let relax = bounded && self.config.bound_fallback == BoundFallback::StaleReplica;
        let fallback = match need {
            Err(reason) => reason,
            Ok(need) => match self.pick_replica(&topo, need, relax) {
                Ok((i, read_lease)) => {
                    let beyond = relax && topo.members[i].state.position() < need;
                    let mut route = self.lease(topo, i, None);
                    route.read_lease = read_lease;
                    route.beyond_bound = beyond;
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

    /// Round robin over healthy replicas at or past `need`; with `relax` (the `StaleReplica`
    /// fallback), the most advanced healthy replicas also count when too few meet the bound.
    fn pick_replica(
        &self,
        topo: &Topology<C>,
        need: Position,
        relax: bool,
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
        if relax && self.config.min_serving_replicas > 0 {
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
                        "replicas lag past the bound; the most advanced keep serving, flagged"
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
}

/// The primary's index if it may take a write now, else why not.
pub(crate) fn writable_primary<C>(topo: &Topology<C>) -> Result<usize> {
    let Some(p) = topo.primary else {
        return Err(match topo.promoting {
            Some(c) => Error::Promoting {
                candidate: topo.members[c].id,
                epoch: topo.epoch,
            },
            None => Error::NoPrimary,
        });
    };
    let state = &topo.members[p].state;
    if !state.is_healthy() || state.engine.load(Ordering::Acquire) == READ_ONLY {
        return Err(Error::PrimaryUnavailable {
            node: topo.members[p].id,
        });
    }
    Ok(p)
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
