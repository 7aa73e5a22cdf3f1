//! Promotion: moving the primary role, fencing, and the lost-write report.

use std::sync::atomic::Ordering;

use crate::set::{Member, Topology};
use crate::{Epoch, Error, NodeId, Position, ReplicaSet, Result, Role};

/// Writes the old primary acknowledged that the new primary never received: positions in
/// `(after, through]`. Hand them to a data-recovery process (the old primary's log has them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct LostWrites {
    /// The new primary's position: everything up to here survived.
    pub after: Position,
    /// The old primary's last known position.
    pub through: Position,
}

impl LostWrites {
    /// How many positions were lost.
    #[must_use]
    pub fn len(&self) -> u64 {
        self.through.0.saturating_sub(self.after.0)
    }

    /// Whether no position was lost (never true for a report returned by a promotion).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `position` is in the lost range.
    #[must_use]
    pub fn contains(&self, position: Position) -> bool {
        self.after < position && position <= self.through
    }
}

/// What a promotion did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Promotion {
    /// The deposed primary, now fenced (it serves nothing until
    /// [`rejoin_as_replica`](ReplicaSet::rejoin_as_replica)).
    pub old_primary: Option<NodeId>,
    /// The new primary.
    pub new_primary: NodeId,
    /// The new epoch; every write route carries it.
    pub epoch: Epoch,
    /// The writes lost in the window, if any.
    pub lost: Option<LostWrites>,
}

impl<C> ReplicaSet<C> {
    /// Promotes the most advanced healthy replica (highest position; ties go to the lowest node
    /// id), whatever the state of the current primary. The old primary is fenced.
    ///
    /// The choice uses the positions reported so far. When replicas keep applying the old
    /// primary's log while you promote (log shipping through a queue, say), do it in this
    /// order, as Patroni and MHA do: stop the appliers, report each replica's final position,
    /// promote, then re-point the other replicas at the new primary (they must not apply
    /// anything past its position). Otherwise a replica may end up ahead of the new primary,
    /// and read-your-writes tokens from the new epoch may be served stale data.
    ///
    /// # Errors
    /// [`Error::NoCandidate`] if no replica is healthy.
    pub fn promote(&self) -> Result<Promotion> {
        self.update(|t| {
            let candidate = best_candidate(t).ok_or(Error::NoCandidate)?;
            Ok(self.promoted(t, candidate))
        })
    }

    /// Promotes a chosen replica.
    ///
    /// # Errors
    /// [`Error::UnknownNode`]; [`Error::NoCandidate`] if it is not a healthy replica.
    pub fn promote_node(&self, id: NodeId) -> Result<Promotion> {
        self.update(|t| {
            let i = t.index_of(id).ok_or(Error::UnknownNode(id))?;
            let m = &t.members[i];
            if m.role != Role::Replica || !m.state.is_healthy() {
                return Err(Error::NoCandidate);
            }
            Ok(self.promoted(t, i))
        })
    }

    /// Automatic failover: if the primary has been down (marked by passive or active health)
    /// for at least `failover_after`, promotes the best candidate, unless it lags more than
    /// `max_promotion_lag` or the previous failover was within `quiet_period`. `Ok(None)` when
    /// no failover is due. Call it from a health-check loop.
    ///
    /// # Errors
    /// [`Error::CandidateTooFarBehind`], [`Error::QuietPeriod`], [`Error::NoCandidate`].
    pub fn check_failover(&self) -> Result<Option<Promotion>> {
        let now = self.clock.now();
        let now_nanos = u64::try_from(now.as_nanos()).unwrap_or(u64::MAX);
        self.update(|t| {
            let down_since = t
                .primary
                .map(|p| t.members[p].state.down_since.load(Ordering::Acquire));
            let due = match down_since {
                None => true,
                Some(0) => false,
                Some(since) => {
                    now_nanos.saturating_sub(since)
                        >= u64::try_from(self.config.failover_after.as_nanos()).unwrap_or(u64::MAX)
                }
            };
            if !due {
                return Ok((clone_topology(t), None));
            }
            let last = self.last_failover.load(Ordering::Acquire);
            if last > 0 {
                let since = now_nanos.saturating_sub(last - 1);
                let quiet = u64::try_from(self.config.quiet_period.as_nanos()).unwrap_or(u64::MAX);
                if since < quiet {
                    return Err(Error::QuietPeriod {
                        since_ms: since / 1_000_000,
                        quiet_ms: quiet / 1_000_000,
                    });
                }
            }
            let candidate = best_candidate(t).ok_or(Error::NoCandidate)?;
            if let (Some(max), Some(p)) = (self.config.max_promotion_lag, t.primary) {
                let lag = t.members[candidate]
                    .state
                    .position()
                    .lag_behind(t.members[p].state.position());
                if lag > max {
                    return Err(Error::CandidateTooFarBehind {
                        node: t.members[candidate].id,
                        lag,
                        max,
                    });
                }
            }
            let (next, promotion) = self.promoted(t, candidate);
            Ok((next, Some(promotion)))
        })
    }

    /// Brings a fenced node (a deposed primary, after its data was rewound to the new primary's
    /// history) back as a replica at `position`.
    ///
    /// # Errors
    /// [`Error::UnknownNode`].
    pub fn rejoin_as_replica(&self, id: NodeId, position: Position) -> Result<()> {
        self.update(|t| {
            let i = t.index_of(id).ok_or(Error::UnknownNode(id))?;
            let mut next = clone_topology(t);
            let m = &mut next.members[i];
            if m.role == Role::Fenced {
                m.role = Role::Replica;
                // Its old position belongs to the old history: start from what it now has.
                m.state.position.store(position.0, Ordering::Release);
                m.state.healthy.store(true, Ordering::Release);
                m.state.down_since.store(0, Ordering::Release);
                tracing::info!(
                    node = id.0,
                    position = position.0,
                    "old primary rejoined as a replica"
                );
            }
            Ok((next, ()))
        })
    }

    fn promoted(&self, t: &Topology<C>, candidate: usize) -> (Topology<C>, Promotion) {
        let mut next = clone_topology(t);
        let old = t.primary;
        let new_pos = t.members[candidate].state.position();
        let lost = old.and_then(|p| {
            let old_pos = t.members[p].state.position();
            (old_pos > new_pos).then_some(LostWrites {
                after: new_pos,
                through: old_pos,
            })
        });
        if let Some(p) = old {
            next.members[p].role = Role::Fenced;
        }
        next.members[candidate].role = Role::Primary;
        next.primary = Some(candidate);
        next.epoch = Epoch(t.epoch.0 + 1);
        let now = u64::try_from(self.clock.now().as_nanos()).unwrap_or(u64::MAX);
        self.last_failover
            .store(now.saturating_add(1), Ordering::Release);
        let promotion = Promotion {
            old_primary: old.map(|p| t.members[p].id),
            new_primary: t.members[candidate].id,
            epoch: next.epoch,
            lost,
        };
        tracing::warn!(
            new_primary = promotion.new_primary.0,
            epoch = promotion.epoch.0,
            lost = lost.map_or(0, |l| l.len()),
            "replica promoted to primary"
        );
        (next, promotion)
    }
}

fn best_candidate<C>(t: &Topology<C>) -> Option<usize> {
    t.members
        .iter()
        .enumerate()
        .filter(|(_, m)| m.role == Role::Replica && m.state.is_healthy())
        .max_by(|(_, a), (_, b)| {
            a.state
                .position()
                .cmp(&b.state.position())
                .then(b.id.cmp(&a.id))
        })
        .map(|(i, _)| i)
}

fn clone_topology<C>(t: &Topology<C>) -> Topology<C> {
    Topology {
        epoch: t.epoch,
        primary: t.primary,
        members: t.members.iter().map(Member::clone).collect(),
    }
}
