//! [`ReshardPlan`]: what moves, from where to where, and in which order.

use std::sync::Arc;

use crate::slots::SLOTS;
use crate::{AsShardKey, ShardId, ShardKey, ShardStrategy};

/// One unit of migration: every key whose owner changes from `source` to `target`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Step {
    /// Where the keys live before the step.
    pub source: ShardId,
    /// Where they live after it.
    pub target: ShardId,
    /// For slot-based strategies, the slots that move (scan these on `source`); empty otherwise
    /// (scan `source` and keep the keys [`ReshardPlan::moves`] sends to `target`).
    pub slots: Vec<u16>,
}

/// The keys that move between two strategies, grouped into [`Step`]s by (source, target).
///
/// A key moves exactly when its owner under `from` differs from its owner under `to`; steps are
/// ordered round-robin over source shards, so the copy load rotates across shards and every
/// shard keeps serving throughout (routing never blocks; see [`Route`](crate::Route)).
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use tierkit_shard::{HashSlots, Modulo, ReshardPlan, ShardId};
///
/// # fn main() -> Result<(), tierkit_shard::Error> {
/// let four = HashSlots::even((0..4).map(ShardId))?;
/// let five = four.rebalanced((0..5).map(ShardId))?;
/// let plan = ReshardPlan::new(Arc::new(four), Arc::new(five));
/// let (moved, minimum) = plan.slot_fractions().expect("slot-based");
/// assert!((moved - 0.2).abs() < 0.001 && (moved - minimum).abs() < 0.001);
///
/// let naive = ReshardPlan::new(Arc::new(Modulo::new(4)?), Arc::new(Modulo::new(5)?));
/// let estimate = naive.estimate(0..100_000u64);
/// assert!(estimate.fraction > 0.75); // modulo moves ~80%
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct ReshardPlan {
    from: Arc<dyn ShardStrategy>,
    to: Arc<dyn ShardStrategy>,
    steps: Vec<Step>,
    /// (source, target) -> step index, sorted for binary search.
    pairs: Vec<((ShardId, ShardId), usize)>,
    slot_based: Option<SlotMoves>,
    /// Set by [`ShardMap`](crate::ShardMap)'s planners: the directory to install at cut-over.
    pub(crate) target_directory: Option<Arc<crate::Directory>>,
}

#[derive(Debug, Clone, Copy)]
struct SlotMoves {
    moved: usize,
    minimum: usize,
}

/// How much data a plan moves, estimated on a key sample.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct MoveEstimate {
    /// Keys in the sample.
    pub keys: usize,
    /// Keys whose owner changes.
    pub moved: usize,
    /// `moved / keys`.
    pub fraction: f64,
    /// The least any plan could move to reach the new per-shard shares: the total growth of the
    /// shards that grow, as a fraction of the sample.
    pub minimum_fraction: f64,
}

impl ReshardPlan {
    /// The plan from one strategy to another. Slot-based strategies (both answering
    /// [`ShardStrategy::slot_of`]) get per-slot steps; others get per-pair steps.
    #[must_use]
    pub fn new(from: Arc<dyn ShardStrategy>, to: Arc<dyn ShardStrategy>) -> Self {
        let probe = ShardKey::Bytes(b"probe");
        let slot_based = from.slot_of(probe).is_some() && to.slot_of(probe).is_some();
        let mut by_pair: Vec<((ShardId, ShardId), Vec<u16>)> = Vec::new();
        let mut slot_moves = None;
        if slot_based {
            let (from_owner, to_owner) = (slot_owners(&*from), slot_owners(&*to));
            let mut moved = 0;
            for slot in 0..SLOTS {
                let (a, b) = (from_owner[slot], to_owner[slot]);
                if a != b {
                    moved += 1;
                    let s = u16::try_from(slot).unwrap_or(0);
                    match by_pair.iter_mut().find(|(p, _)| *p == (a, b)) {
                        Some((_, slots)) => slots.push(s),
                        None => by_pair.push(((a, b), vec![s])),
                    }
                }
            }
            slot_moves = Some(SlotMoves {
                moved,
                minimum: minimum_moves(&from_owner, &to_owner),
            });
            // Pinned keys move without their slot moving: each changed pin gets its pair's step,
            // with the key's slot to scan.
            let pins: Vec<ShardKey<'_>> = from
                .pinned_keys()
                .into_iter()
                .chain(to.pinned_keys())
                .collect();
            for key in pins {
                let (a, b) = (from.shard_of(key), to.shard_of(key));
                if a == b {
                    continue;
                }
                let slot = crate::HashSlots::slot(key);
                match by_pair.iter_mut().find(|(p, _)| *p == (a, b)) {
                    Some((_, slots)) if slots.contains(&slot) => {}
                    Some((_, slots)) => slots.push(slot),
                    None => by_pair.push(((a, b), vec![slot])),
                }
            }
        } else {
            // Without slots, any pair of shards may exchange keys: one step per pair, each
            // scanning its source for the keys `moves` sends to its target.
            for &a in from.shards() {
                for &b in to.shards() {
                    if a != b {
                        by_pair.push(((a, b), Vec::new()));
                    }
                }
            }
        }
        // Round-robin over sources: the first step of each source, then the second, ...
        by_pair.sort_by_key(|((a, b), _)| (*a, *b));
        let mut steps: Vec<Step> = Vec::with_capacity(by_pair.len());
        let mut round = 0;
        while steps.len() < by_pair.len() {
            let mut seen_source = None;
            let mut rank = 0;
            for ((a, b), slots) in &by_pair {
                if seen_source != Some(*a) {
                    seen_source = Some(*a);
                    rank = 0;
                } else {
                    rank += 1;
                }
                if rank == round {
                    steps.push(Step {
                        source: *a,
                        target: *b,
                        slots: slots.clone(),
                    });
                }
            }
            round += 1;
        }
        let mut pairs: Vec<_> = steps
            .iter()
            .enumerate()
            .map(|(i, s)| ((s.source, s.target), i))
            .collect();
        pairs.sort_unstable();
        ReshardPlan {
            from,
            to,
            steps,
            pairs,
            slot_based: slot_moves,
            target_directory: None,
        }
    }

    /// A plan for strategies that differ only in where `key` is placed (a pin or unpin): one
    /// step, `from.shard_of(key)` to `to.shard_of(key)`, or no step if the key stays.
    #[must_use]
    pub fn for_key(
        from: Arc<dyn ShardStrategy>,
        to: Arc<dyn ShardStrategy>,
        key: ShardKey<'_>,
    ) -> Self {
        let (a, b) = (from.shard_of(key), to.shard_of(key));
        let steps = if a == b {
            Vec::new()
        } else {
            let slot_based = from.slot_of(ShardKey::Bytes(b"probe")).is_some();
            let slots = if slot_based {
                vec![crate::HashSlots::slot(key)]
            } else {
                Vec::new()
            };
            vec![Step {
                source: a,
                target: b,
                slots,
            }]
        };
        let pairs = steps
            .iter()
            .enumerate()
            .map(|(i, s)| ((s.source, s.target), i))
            .collect();
        ReshardPlan {
            from,
            to,
            steps,
            pairs,
            slot_based: None,
            target_directory: None,
        }
    }

    /// The strategy before the plan.
    #[must_use]
    pub fn from(&self) -> &Arc<dyn ShardStrategy> {
        &self.from
    }

    /// The strategy after the plan.
    #[must_use]
    pub fn to(&self) -> &Arc<dyn ShardStrategy> {
        &self.to
    }

    /// The steps, in the order to run them.
    #[must_use]
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// `(source, target)` if `key` (after co-location) changes owner, else `None`.
    #[inline]
    pub fn moves<K: AsShardKey + ?Sized>(&self, key: &K) -> Option<(ShardId, ShardId)> {
        let key = key.as_shard_key();
        let (a, b) = (self.from.shard_of(key), self.to.shard_of(key));
        (a != b).then_some((a, b))
    }

    /// The step moving keys from `source` to `target`.
    #[inline]
    #[must_use]
    pub fn step_of(&self, source: ShardId, target: ShardId) -> Option<usize> {
        self.pairs
            .binary_search_by_key(&(source, target), |(p, _)| *p)
            .ok()
            .map(|i| self.pairs[i].1)
    }

    /// For slot-based plans: (fraction of slots moved, the minimum fraction that must move to
    /// reach the new slot counts). `None` for other strategies; use [`estimate`](Self::estimate).
    #[must_use]
    pub fn slot_fractions(&self) -> Option<(f64, f64)> {
        #[allow(clippy::cast_precision_loss)]
        self.slot_based.map(|m| {
            (
                m.moved as f64 / SLOTS as f64,
                m.minimum as f64 / SLOTS as f64,
            )
        })
    }

    /// Estimates the moved fraction on a key sample (keys as the map would route them).
    pub fn estimate<K, I>(&self, keys: I) -> MoveEstimate
    where
        K: AsShardKey,
        I: IntoIterator<Item = K>,
    {
        let mut shards: Vec<ShardId> = self.from.shards().to_vec();
        shards.extend_from_slice(self.to.shards());
        shards.sort_unstable();
        shards.dedup();
        let mut before = vec![0usize; shards.len()];
        let mut after = vec![0usize; shards.len()];
        let (mut total, mut moved) = (0usize, 0usize);
        for key in keys {
            let key = key.as_shard_key();
            let (a, b) = (self.from.shard_of(key), self.to.shard_of(key));
            total += 1;
            moved += usize::from(a != b);
            if let Ok(i) = shards.binary_search(&a) {
                before[i] += 1;
            }
            if let Ok(i) = shards.binary_search(&b) {
                after[i] += 1;
            }
        }
        let growth: usize = before
            .iter()
            .zip(&after)
            .map(|(b, a)| a.saturating_sub(*b))
            .sum();
        #[allow(clippy::cast_precision_loss)]
        let frac = |x: usize| {
            if total == 0 {
                0.0
            } else {
                x as f64 / total as f64
            }
        };
        MoveEstimate {
            keys: total,
            moved,
            fraction: frac(moved),
            minimum_fraction: frac(growth),
        }
    }
}

/// The owner of every slot under a slot-based strategy, found by probing one key per slot.
fn slot_owners(s: &dyn ShardStrategy) -> Vec<ShardId> {
    // Integer keys 0.. cover every slot quickly (CRC16 of decimal strings); remember one key per
    // slot the first time it appears.
    let mut owners: Vec<Option<ShardId>> = vec![None; SLOTS];
    let mut missing = SLOTS;
    let mut k = 0u64;
    while missing > 0 && k < 10_000_000 {
        let key = ShardKey::Int(k);
        if let Some(slot) = s.slot_of(key) {
            let entry = &mut owners[usize::from(slot)];
            if entry.is_none() {
                *entry = Some(s.shard_of(key));
                missing -= 1;
            }
        }
        k += 1;
    }
    let fallback = s.shards().first().copied().unwrap_or(ShardId(0));
    owners.into_iter().map(|o| o.unwrap_or(fallback)).collect()
}

/// The slots the growing shards must receive: the least any re-assignment can move.
fn minimum_moves(from: &[ShardId], to: &[ShardId]) -> usize {
    let mut ids: Vec<ShardId> = from.iter().chain(to).copied().collect();
    ids.sort_unstable();
    ids.dedup();
    let count = |t: &[ShardId], id: ShardId| t.iter().filter(|&&o| o == id).count();
    ids.iter()
        .map(|&id| count(to, id).saturating_sub(count(from, id)))
        .sum()
}
