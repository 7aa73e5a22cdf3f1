//! [`Locality`]: zones in priority tiers with traffic splits and failover.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use crate::Member;
use crate::policy::rng;
use crate::{Context, Policy, View};

/// One priority tier: zones and their traffic weights (e.g. 70 to `us-east`, 30 to `us-west`).
///
/// # Examples
///
/// ```
/// use tierkit_lb::Tier;
///
/// let tier = Tier::new().zone("us-east", 70).zone("us-west", 30);
/// assert_eq!(tier.zones().len(), 2);
/// ```
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct Tier {
    zones: Vec<(Arc<str>, u32)>,
}

impl Tier {
    /// An empty tier.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a zone with its traffic weight within the tier (0 sends it nothing).
    pub fn zone(mut self, name: impl Into<Arc<str>>, weight: u32) -> Self {
        self.zones.push((name.into(), weight));
        self
    }

    /// The zones and their weights.
    #[must_use]
    pub fn zones(&self) -> &[(Arc<str>, u32)] {
        &self.zones
    }
}

/// Locality-aware balancing, the multi-data-center story: backends are grouped by their
/// [`zone`](crate::Backend::zone); zones sit in priority [`Tier`]s; inside a zone the inner
/// policy `P` picks.
///
/// Traffic follows Envoy's priority and locality rules:
/// - a tier's *availability* is `min(1, healthy / members x overprovisioning)` (factor 1.4 by
///   default): tier 0 takes that share of the traffic, the next tier takes what is left up to its
///   own availability, and so on (if all tiers together cover less than everything, the shares
///   are scaled up proportionally);
/// - within a tier, zone `z` gets `weight_z x min(1, health_z x overprovisioning)` of the tier's
///   share, so "70% us-east, 30% us-west" shifts toward us-west as us-east loses backends, and
///   a zone with no healthy backend gets nothing;
/// - backends whose zone is in no tier form an implicit last tier.
///
/// The plan is computed per snapshot: every health change republishes it. A pick is one random
/// draw over a handful of zones, then `P`'s pick inside the zone.
///
/// # Examples
///
/// ```
/// use tierkit_lb::{Backend, Balancer, Context, Locality, RoundRobin, Tier};
///
/// let policy = Locality::new(RoundRobin::new())
///     .tier(Tier::new().zone("us-east", 80).zone("us-west", 20));
/// let lb = Balancer::builder(policy)
///     .backend(Backend::new(1, "east-1").zone("us-east"))
///     .backend(Backend::new(2, "west-1").zone("us-west"))
///     .build()?;
/// let east = (0..1000).filter(|_| lb.pick(&Context::new()).unwrap().starts_with("east")).count();
/// assert!((700..900).contains(&east));
/// # Ok::<(), tierkit_lb::Error>(())
/// ```
pub struct Locality<P> {
    inner: P,
    tiers: Vec<Tier>,
    overprovision: f64,
}

impl<P> Locality<P> {
    /// Locality over `inner`, with no tiers yet (all backends form one implicit tier).
    #[must_use]
    pub fn new(inner: P) -> Self {
        Self {
            inner,
            tiers: Vec::new(),
            overprovision: 1.4,
        }
    }

    /// Appends the next (lower-priority) tier.
    #[must_use]
    pub fn tier(mut self, tier: Tier) -> Self {
        self.tiers.push(tier);
        self
    }

    /// The overprovisioning factor (default 1.4, Envoy's): a tier with `1 / factor` of its
    /// backends healthy still takes all of its traffic. Values below 1 are treated as 1.
    #[must_use]
    pub fn overprovisioning(mut self, factor: f64) -> Self {
        self.overprovision = if factor.is_finite() {
            factor.max(1.0)
        } else {
            1.0
        };
        self
    }
}

impl<P: fmt::Debug> fmt::Debug for Locality<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Locality")
            .field("inner", &self.inner)
            .field("tiers", &self.tiers)
            .field("overprovision", &self.overprovision)
            .finish()
    }
}

/// One zone's eligible backends and the inner policy's data for them.
struct Group<B, T> {
    eligible: Vec<Member<B>>,
    weights: Vec<u32>,
    full: Vec<u32>,
    to_outer: Vec<usize>,
    prepared: T,
    /// Cumulative traffic share up to and including this group, as a fraction of `u64::MAX`.
    until: u64,
}

/// [`Locality`]'s per-snapshot plan: zone groups with their traffic shares.
pub struct LocalityPlan<B, T> {
    groups: Vec<Group<B, T>>,
}

impl<B, T> fmt::Debug for LocalityPlan<B, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalityPlan")
            .field("groups", &self.groups.len())
            .field(
                "until",
                &self.groups.iter().map(|g| g.until).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl<B, T> LocalityPlan<B, T> {
    /// Traffic share per zone group (zone name, fraction in `0..=1`), for stats and tests.
    #[must_use]
    pub fn shares(&self) -> Vec<(Option<Arc<str>>, f64)> {
        let mut prev = 0u64;
        self.groups
            .iter()
            .map(|g| {
                #[allow(clippy::cast_precision_loss)]
                let share = (g.until - prev) as f64 / u64::MAX as f64;
                prev = g.until;
                (g.eligible.first().and_then(|m| m.zone_arc().clone()), share)
            })
            .collect()
    }
}

impl<B, P> Policy<B> for Locality<P>
where
    B: Send + Sync + 'static,
    P: Policy<B>,
{
    type Prepared = LocalityPlan<B, P::Prepared>;

    fn prepare(&self, view: &View<'_, B>) -> Self::Prepared {
        // (tier, zone) -> slot; unlisted zones go to an implicit last tier, one slot per zone.
        let mut slot_of: HashMap<Option<Arc<str>>, (usize, u32)> = HashMap::new();
        let mut tiers: Vec<Vec<Option<Arc<str>>>> = Vec::new();
        for tier in &self.tiers {
            let t = tiers.len();
            tiers.push(Vec::new());
            for (zone, w) in &tier.zones {
                slot_of.entry(Some(zone.clone())).or_insert((t, *w));
                tiers[t].push(Some(zone.clone()));
            }
        }
        let implicit = tiers.len();
        for m in view.all_members() {
            if !slot_of.contains_key(m.zone_arc()) {
                slot_of.insert(m.zone_arc().clone(), (implicit, 1));
                if tiers.len() == implicit {
                    tiers.push(Vec::new());
                }
                tiers[implicit].push(m.zone_arc().clone());
            }
        }
        // Members (not draining) and eligible backends per zone.
        let mut total: HashMap<Option<Arc<str>>, usize> = HashMap::new();
        for m in view.all_members().iter().filter(|m| !m.is_draining()) {
            *total.entry(m.zone_arc().clone()).or_default() += 1;
        }
        let mut eligible: HashMap<Option<Arc<str>>, Vec<usize>> = HashMap::new();
        for i in 0..view.len() {
            eligible
                .entry(view.member(i).zone_arc().clone())
                .or_default()
                .push(i);
        }
        let health = |z: &Option<Arc<str>>| {
            let t = total.get(z).copied().unwrap_or(0);
            let h = eligible.get(z).map_or(0, Vec::len);
            #[allow(clippy::cast_precision_loss)]
            let r = if t == 0 { 0.0 } else { h as f64 / t as f64 };
            r
        };
        // Envoy's priority spill-over, then the locality split inside each tier.
        let mut remaining = 1.0f64;
        let mut shares: Vec<(Option<Arc<str>>, f64)> = Vec::new();
        for zones in &tiers {
            let (h, t) = zones.iter().fold((0usize, 0usize), |(h, t), z| {
                (
                    h + eligible.get(z).map_or(0, Vec::len),
                    t + total.get(z).copied().unwrap_or(0),
                )
            });
            if t == 0 || h == 0 {
                continue;
            }
            #[allow(clippy::cast_precision_loss)]
            let avail = (h as f64 / t as f64 * self.overprovision).min(1.0);
            let tier_share = avail.min(remaining);
            remaining -= tier_share;
            let eff: Vec<f64> = zones
                .iter()
                .map(|z| {
                    let w = f64::from(slot_of.get(z).map_or(0, |s| s.1));
                    w * (health(z) * self.overprovision).min(1.0)
                })
                .collect();
            let sum: f64 = eff.iter().sum();
            if sum <= 0.0 {
                remaining += tier_share;
                continue;
            }
            for (z, e) in zones.iter().zip(eff) {
                if e > 0.0 {
                    shares.push((z.clone(), tier_share * e / sum));
                }
            }
        }
        let covered: f64 = shares.iter().map(|s| s.1).sum();
        let mut groups = Vec::new();
        let mut acc = 0.0f64;
        for (zone, share) in shares {
            let Some(idx) = eligible.get(&zone) else {
                continue;
            };
            acc += share / covered;
            let members: Vec<Member<B>> = idx
                .iter()
                .map(|&i| view.eligible_slice()[i].clone())
                .collect();
            let weights: Vec<u32> = idx.iter().map(|&i| view.weight(i)).collect();
            let full: Vec<u32> = idx.iter().map(|&i| view.configured_weight(i)).collect();
            let sub = view.sub(&members, &weights, &full);
            let prepared = self.inner.prepare(&sub);
            #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]
            let until = if acc >= 1.0 {
                u64::MAX
            } else {
                (acc * u64::MAX as f64) as u64
            };
            groups.push(Group {
                eligible: members,
                weights,
                full,
                to_outer: idx.clone(),
                prepared,
                until,
            });
        }
        if let Some(last) = groups.last_mut() {
            last.until = u64::MAX;
        }
        LocalityPlan { groups }
    }

    fn pick(&self, plan: &Self::Prepared, view: &View<'_, B>, ctx: &Context<'_>) -> Option<usize> {
        let r = rng::next_u64();
        let start = plan.groups.iter().position(|g| r <= g.until)?;
        // The drawn zone first; if the request excludes all of it, the other zones in order.
        (0..plan.groups.len()).find_map(|k| {
            let g = &plan.groups[(start + k) % plan.groups.len()];
            let sub = view.sub(&g.eligible, &g.weights, &g.full);
            self.inner
                .pick(&g.prepared, &sub, ctx)
                .map(|i| g.to_outer[i])
        })
    }

    fn name(&self) -> &'static str {
        "locality"
    }
}
