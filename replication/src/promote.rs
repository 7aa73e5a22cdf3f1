//! Promotion: moving the primary role (in two phases, so no write reaches a node before its
//! engine takes writes), fencing, and the lost-write report.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::events::Event;
use crate::node::{UNKNOWN, WRITABLE};
use crate::topology::Topology;
use crate::{Epoch, Error, NodeId, Position, ReplicaSet, Result, Role};

/// Writes the old primary acknowledged that the new primary never received: positions in
/// `(after, through]`. Hand them to a data-recovery process (the old primary's log has them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct LostWrites {
    /// The new primary's position when it took over: everything up to here survived. It is
    /// the most the candidate held: its received position where the engine reports one (an
    /// engine applies everything received before it finishes a promotion), else its applied
    /// position, or the position the promotion hook reported.
    pub after: Position,
    /// The old primary's last known position (the largest token it acknowledged through the
    /// set, or probed).
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

/// What a finished promotion did.
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

/// A promotion that has started and waits for the engine: the old primary is fenced, the epoch
/// has moved on, and writes fail fast ([`Error::Promoting`]) until
/// [`complete_promotion`](ReplicaSet::complete_promotion) (the engine confirmed the candidate
/// writable) or [`abort_promotion`](ReplicaSet::abort_promotion).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct PendingPromotion {
    /// The replica to promote.
    pub candidate: NodeId,
    /// The deposed primary.
    pub old_primary: Option<NodeId>,
    /// The epoch the candidate will lead.
    pub epoch: Epoch,
    /// The old primary's last known position when the promotion started.
    pub old_position: Option<Position>,
}

impl<C> ReplicaSet<C> {
    /// Promotes the most advanced healthy replica (highest received or applied position; ties
    /// go to the lowest node id) at once, whatever the state of the current primary. The old
    /// primary is fenced.
    ///
    /// This is for an engine that already takes writes on the candidate (an operator promoted
    /// it, or the "engine" is in-process). Otherwise start with
    /// [`check_failover`](Self::check_failover) or
    /// [`begin_promotion`](Self::begin_promotion), act on the engine, then
    /// [`complete_promotion`](Self::complete_promotion) (the promotion hook does all three with
    /// the `tokio` feature).
    ///
    /// When replicas keep applying the old primary's log while you promote (log shipping
    /// through a queue, say), do it in this order, as Patroni and MHA do: stop the appliers,
    /// report each replica's final position, promote, then re-point the other replicas at the
    /// new primary.
    ///
    /// # Errors
    /// [`Error::NoCandidate`] if no replica is healthy.
    pub fn promote(&self) -> Result<Promotion> {
        let pending = self.update(|t, events| {
            let candidate = best_candidate(t).ok_or(Error::NoCandidate)?;
            Ok(self.begin(t, candidate, events))
        })?;
        self.complete_promotion(&pending, None)
    }

    /// Promotes a chosen replica at once (see [`promote`](Self::promote) for when).
    ///
    /// # Errors
    /// [`Error::UnknownNode`]; [`Error::NoCandidate`] if it is not a healthy replica.
    pub fn promote_node(&self, id: NodeId) -> Result<Promotion> {
        let pending = self.begin_promotion(id)?;
        self.complete_promotion(&pending, None)
    }

    /// Starts promoting a chosen replica: fences the old primary, moves to the next epoch and
    /// stops routing writes until the engine confirms the candidate writable.
    ///
    /// # Errors
    /// [`Error::UnknownNode`]; [`Error::NoCandidate`] if it is not a healthy replica.
    pub fn begin_promotion(&self, id: NodeId) -> Result<PendingPromotion> {
        self.update(|t, events| {
            let i = t.index_of(id).ok_or(Error::UnknownNode(id))?;
            let m = &t.members[i];
            if m.role != Role::Replica || !m.state.is_healthy() {
                return Err(Error::NoCandidate);
            }
            Ok(self.begin(t, i, events))
        })
    }

    /// Automatic failover: if the primary has been down (marked by passive or active health)
    /// for at least `failover_after`, starts promoting the best candidate, unless it lags more
    /// than `max_promotion_lag` or the previous failover was within `quiet_period`. `Ok(None)`
    /// when no failover is due. From here writes fail fast until the engine confirms the
    /// candidate writable: act on the engine (`pg_promote()`), then
    /// [`complete_promotion`](Self::complete_promotion); the promotion hook and
    /// `failover` (feature `tokio`) do it for you.
    ///
    /// # Errors
    /// [`Error::CandidateTooFarBehind`], [`Error::QuietPeriod`], [`Error::NoCandidate`],
    /// [`Error::Promoting`] if a promotion is already under way.
    pub fn check_failover(&self) -> Result<Option<PendingPromotion>> {
        let now = self.clock.now_nanos();
        self.update(|t, events| {
            if let Some(c) = t.promoting {
                return Err(Error::Promoting {
                    candidate: t.members[c].id,
                    epoch: t.epoch,
                });
            }
            let down_since = t
                .primary
                .map(|p| t.members[p].state.down_since.load(Ordering::Acquire));
            let due = match down_since {
                None => true,
                Some(0) => false,
                Some(since) => {
                    now.saturating_sub(since) >= nanos(self.config.failover_after.as_nanos())
                }
            };
            if !due {
                return Ok((t.copy(), None));
            }
            let last = self.last_failover.load(Ordering::Acquire);
            if last > 0 {
                let since = now.saturating_sub(last - 1);
                let quiet = nanos(self.config.quiet_period.as_nanos());
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
                    .durable()
                    .lag_behind(t.members[p].state.position());
                if lag > max {
                    return Err(Error::CandidateTooFarBehind {
                        node: t.members[candidate].id,
                        lag,
                        max,
                    });
                }
            }
            let (next, pending) = self.begin(t, candidate, events);
            Ok((next, Some(pending)))
        })
    }

    /// Finishes a promotion once the engine takes writes on the candidate: from now on writes
    /// go to it. `position` is where the engine says the candidate's history ended (for
    /// PostgreSQL, `pg_last_wal_replay_lsn()` after `pg_promote()`); `None` uses the most the
    /// set knows it held. The lost-write report is computed here.
    ///
    /// # Errors
    /// [`Error::StalePromotion`] if the promotion is no longer the current one (another
    /// promotion or an abort came first).
    pub fn complete_promotion(
        &self,
        pending: &PendingPromotion,
        position: Option<Position>,
    ) -> Result<Promotion> {
        self.update(|t, events| {
            let i = current(t, pending)?;
            let state = &t.members[i].state;
            let durable = state.durable().max(position.unwrap_or_default());
            state.position.fetch_max(durable.0, Ordering::AcqRel);
            state.engine.store(WRITABLE, Ordering::Release);
            let lost = pending
                .old_position
                .filter(|old| *old > durable)
                .map(|through| LostWrites {
                    after: durable,
                    through,
                });
            let mut next = t.copy();
            next.members[i].role = Role::Primary;
            next.primary = Some(i);
            next.promoting = None;
            let promotion = Promotion {
                old_primary: pending.old_primary,
                new_primary: pending.candidate,
                epoch: t.epoch,
                lost,
            };
            tracing::warn!(
                new_primary = promotion.new_primary.0,
                epoch = promotion.epoch.0,
                lost = lost.map_or(0, |l| l.len()),
                "replica promoted to primary"
            );
            events.push(Event::Promoted(promotion));
            Ok((next, promotion))
        })
    }

    /// Abandons a promotion the engine refused: the candidate serves reads as a replica again,
    /// the set stays without a primary (writes keep failing fast with [`Error::NoPrimary`]),
    /// and a later [`check_failover`](Self::check_failover) may try again.
    ///
    /// # Errors
    /// [`Error::StalePromotion`] if the promotion is no longer the current one.
    pub fn abort_promotion(&self, pending: &PendingPromotion, reason: &str) -> Result<()> {
        self.update(|t, events| {
            current(t, pending)?;
            let mut next = t.copy();
            next.promoting = None;
            // A failed promotion is no failover: it does not start the quiet period.
            self.last_failover.store(0, Ordering::Release);
            tracing::error!(candidate = pending.candidate.0, reason, "promotion failed");
            events.push(Event::PromotionFailed {
                candidate: pending.candidate,
                epoch: pending.epoch,
                reason: reason.to_owned(),
            });
            Ok((next, ()))
        })
    }

    /// Brings a fenced node (a deposed primary, after its data was rewound to the new primary's
    /// history) back as a replica at `position`.
    ///
    /// # Errors
    /// [`Error::UnknownNode`].
    pub fn rejoin_as_replica(&self, id: NodeId, position: Position) -> Result<()> {
        self.rejoin(id, position, None)
    }

    /// Like [`rejoin_as_replica`](Self::rejoin_as_replica), with a new handle for the node (a
    /// connection pool to its new address or role).
    ///
    /// # Errors
    /// [`Error::UnknownNode`].
    pub fn rejoin_as_replica_with(&self, id: NodeId, position: Position, handle: C) -> Result<()> {
        self.rejoin(id, position, Some(handle))
    }

    fn rejoin(&self, id: NodeId, position: Position, mut handle: Option<C>) -> Result<()> {
        self.update(|t, events| {
            let i = t.index_of(id).ok_or(Error::UnknownNode(id))?;
            let mut next = t.copy();
            let m = &mut next.members[i];
            if let Some(h) = handle.take() {
                m.handle = Arc::new(h);
            }
            if m.role == Role::Fenced {
                m.role = Role::Replica;
                // Its old positions belong to the old history: start from what it now has.
                m.state.position.store(position.0, Ordering::Release);
                m.state.received.store(0, Ordering::Release);
                m.state.engine.store(UNKNOWN, Ordering::Release);
                m.state.healthy.store(true, Ordering::Release);
                m.state.down_since.store(0, Ordering::Release);
                tracing::info!(
                    node = id.0,
                    position = position.0,
                    "old primary rejoined as a replica"
                );
                events.push(Event::Rejoined {
                    node: id,
                    epoch: t.epoch,
                });
            }
            Ok((next, ()))
        })
    }

    /// Phase one: fence the old primary, next epoch, no primary, `candidate` promoting.
    fn begin(
        &self,
        t: &Topology<C>,
        candidate: usize,
        events: &mut Vec<Event>,
    ) -> (Topology<C>, PendingPromotion) {
        let mut next = t.copy();
        next.epoch = Epoch(t.epoch.0 + 1);
        if let Some(p) = t.primary {
            next.members[p].role = Role::Fenced;
        }
        next.primary = None;
        next.promoting = Some(candidate);
        self.last_failover
            .store(self.clock.now_nanos().saturating_add(1), Ordering::Release);
        let old_primary = t.primary.map(|p| t.members[p].id);
        let pending = PendingPromotion {
            candidate: t.members[candidate].id,
            old_primary,
            epoch: next.epoch,
            old_position: t.primary.map(|p| t.members[p].state.position()),
        };
        tracing::warn!(
            candidate = pending.candidate.0,
            epoch = pending.epoch.0,
            "promotion started; writes fail fast until the engine confirms"
        );
        if let Some(node) = old_primary {
            events.push(Event::Demoted {
                node,
                epoch: next.epoch,
            });
        }
        events.push(Event::PromotionStarted {
            candidate: pending.candidate,
            old_primary,
            epoch: pending.epoch,
        });
        (next, pending)
    }
}

/// The candidate's index if `pending` is still the promotion under way.
fn current<C>(t: &Topology<C>, pending: &PendingPromotion) -> Result<usize> {
    match t.promoting {
        Some(i) if t.epoch == pending.epoch && t.members[i].id == pending.candidate => Ok(i),
        _ => Err(Error::StalePromotion {
            epoch: pending.epoch,
            current: t.epoch,
        }),
    }
}

fn best_candidate<C>(t: &Topology<C>) -> Option<usize> {
    t.members
        .iter()
        .enumerate()
        .filter(|(_, m)| m.role == Role::Replica && m.state.is_healthy())
        .max_by(|(_, a), (_, b)| {
            a.state
                .durable()
                .cmp(&b.state.durable())
                .then(b.id.cmp(&a.id))
        })
        .map(|(i, _)| i)
}

fn nanos(n: u128) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}
