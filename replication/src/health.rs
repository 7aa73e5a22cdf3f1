//! What the set learns about nodes: positions, probe observations, health, and the history of
//! the primary's positions that time lag is computed from.

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::events::Event;
use crate::node::{NodeState, READ_ONLY, WRITABLE};
use crate::topology::Topology;
use crate::{Error, NodeId, Observation, Position, ReplicaSet, Result};

/// Samples of the primary's position kept for time lag.
pub(crate) const HISTORY: usize = 256;

impl<C> ReplicaSet<C> {
    /// Records a node's replication position (from a position probe, or the application's own
    /// knowledge). Positions only move forward.
    ///
    /// # Errors
    /// [`Error::UnknownNode`].
    pub fn report_position(&self, id: NodeId, position: Position) -> Result<()> {
        self.report_observation(id, Observation::new(position), None)
    }

    /// Records what a probe saw on a node: its applied and received positions and whether the
    /// engine takes writes there. `observed_at` is a reading of the set's
    /// [`clock`](Self::clock) taken *before* the probe asked (`None`: now); time-bounded
    /// staleness needs that direction to be sound.
    ///
    /// A primary whose engine says read-only gets no writes until it says writable again; a
    /// replica's received position decides how much a promotion of it would lose.
    ///
    /// # Errors
    /// [`Error::UnknownNode`].
    pub fn report_observation(
        &self,
        id: NodeId,
        observation: Observation,
        observed_at: Option<u64>,
    ) -> Result<()> {
        let topo = self.topology.load();
        let i = topo.index_of(id).ok_or(Error::UnknownNode(id))?;
        let s = &topo.members[i].state;
        let position = observation.applied;
        let before = s.position.fetch_max(position.0, Ordering::AcqRel);
        if let Some(r) = observation.received {
            s.received.fetch_max(r.0, Ordering::AcqRel);
        }
        if let Some(w) = observation.writable {
            let flag = if w { WRITABLE } else { READ_ONLY };
            if s.engine.swap(flag, Ordering::AcqRel) != flag {
                self.topology_changed();
            }
        }
        if topo.primary == Some(i) {
            let at = observed_at.unwrap_or_else(|| self.clock.now_nanos());
            self.record_primary_position(position, at);
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
            if rises >= self.config.rise {
                self.mark(&topo, i, true);
            }
        } else {
            s.consecutive_successes.store(0, Ordering::Release);
            let falls = s.consecutive_failures.fetch_add(1, Ordering::AcqRel) + 1;
            if falls >= self.config.fall {
                self.mark(&topo, i, false);
            }
        }
        Ok(())
    }

    /// Marks a node down now (an operator's decision, or a check that is certain). A primary
    /// marked down takes no more writes: they fail fast until it is marked up or replaced.
    ///
    /// # Errors
    /// [`Error::UnknownNode`].
    pub fn mark_down(&self, id: NodeId) -> Result<()> {
        let topo = self.topology.load();
        let i = topo.index_of(id).ok_or(Error::UnknownNode(id))?;
        self.mark(&topo, i, false);
        Ok(())
    }

    /// Marks a node up now.
    ///
    /// # Errors
    /// [`Error::UnknownNode`].
    pub fn mark_up(&self, id: NodeId) -> Result<()> {
        let topo = self.topology.load();
        let i = topo.index_of(id).ok_or(Error::UnknownNode(id))?;
        self.mark(&topo, i, true);
        Ok(())
    }

    pub(crate) fn mark(&self, topo: &Topology<C>, i: usize, up: bool) {
        let m = &topo.members[i];
        if !self.set_health(&m.state, m.id, up) {
            return;
        }
        if topo.primary == Some(i) {
            let (node, epoch) = (m.id, topo.epoch);
            let event = if up {
                Event::PrimaryUp { node, epoch }
            } else {
                Event::PrimaryDown { node, epoch }
            };
            self.listeners.emit(vec![event]);
        }
        self.topology_changed();
    }

    /// Flips a node's health flag; true if it changed.
    pub(crate) fn set_health(&self, s: &NodeState, id: NodeId, up: bool) -> bool {
        if s.healthy.swap(up, Ordering::AcqRel) == up {
            return false;
        }
        if up {
            s.down_since.store(0, Ordering::Release);
            tracing::info!(node = id.0, "node marked up");
        } else {
            s.consecutive_successes.store(0, Ordering::Release);
            s.down_since
                .store(self.clock.now_nanos().max(1), Ordering::Release);
            tracing::warn!(node = id.0, "node marked down");
        }
        true
    }

    /// Notes that the primary was at most at `position` at clock time `at` (skipped if another
    /// thread holds the history: fewer samples only make time bounds more conservative).
    pub(crate) fn record_primary_position(&self, position: Position, at: u64) {
        let Some(mut h) = self.history.try_lock() else {
            return;
        };
        match h.back_mut() {
            // Same position, later time: the later sample says more (the primary was still
            // there then).
            Some((p, t)) if *p == position.0 => *t = (*t).max(at),
            Some((p, t)) if *p > position.0 || *t > at => {}
            _ => {
                if h.len() == HISTORY {
                    h.pop_front();
                }
                h.push_back((position.0, at));
            }
        }
    }

    /// How stale a node at `position` may be: the time since the last moment the primary is
    /// known to have been at or before `position` (an upper bound of the true staleness).
    pub(crate) fn time_lag(&self, position: Position, primary: Position) -> Option<Duration> {
        if position >= primary {
            return Some(Duration::ZERO);
        }
        let h = self.history.lock();
        let i = h.partition_point(|(p, _)| *p <= position.0);
        let (_, at) = *h.get(i.checked_sub(1)?)?;
        Some(Duration::from_nanos(
            self.clock.now_nanos().saturating_sub(at),
        ))
    }

    /// The position a replica must have applied to be at most `max` stale: the primary's
    /// position at the first sample taken at or after `now - max` (the primary was at most
    /// there at that time). `None` if no sample is that recent.
    pub(crate) fn time_bound(&self, max: Duration) -> Option<Position> {
        let now = self.clock.now_nanos();
        let since = now.saturating_sub(u64::try_from(max.as_nanos()).unwrap_or(u64::MAX));
        let h = self.history.lock();
        let i = h.partition_point(|(_, t)| *t < since);
        h.get(i).map(|(p, _)| Position(*p))
    }
}
