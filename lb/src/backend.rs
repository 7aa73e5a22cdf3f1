//! Backends: the user's value plus its identity, weight, zone and live counters.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crossbeam_utils::CachePadded;

use crate::control::Control;
pub(crate) use crate::eject::{HEALTH_EJECTED, HEALTH_HEALTHY, HEALTH_UNHEALTHY};
use crate::refcount::RefCounts;
use crate::shared::Member;
use crate::sync;

/// A backend's stable identity. State (in-flight count, latency, failures) is keyed by it and
/// survives every membership change; ids must be unique within a balancer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BackendId(pub u64);

impl BackendId {
    /// An id derived from a name (SipHash-1-3 of its UTF-8 bytes with the public default key of
    /// `tierkit-consistent-hash`), identical in every process.
    #[must_use]
    pub fn from_name(name: &str) -> Self {
        Self(tierkit_consistent_hash::KeyHasher::DEFAULT.hash(name))
    }
}

impl fmt::Display for BackendId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

impl From<u64> for BackendId {
    fn from(id: u64) -> Self {
        Self(id)
    }
}

/// A backend to add to a [`Balancer`](crate::Balancer): the user's value `B` (an address, a
/// client, a connection pool) with its id, weight, zone and free-form metadata.
///
/// # Examples
///
/// ```
/// use tierkit_lb::{Backend, BackendId};
///
/// let b = Backend::new(BackendId(7), "10.0.0.7:8080").weight(3).zone("us-east").meta("rack", "r2");
/// assert_eq!(b.configured_weight(), 3);
/// ```
#[derive(Clone)]
#[must_use]
pub struct Backend<B> {
    pub(crate) id: BackendId,
    pub(crate) value: B,
    pub(crate) weight: u32,
    pub(crate) zone: Option<Arc<str>>,
    pub(crate) metadata: BTreeMap<String, String>,
}

impl<B> Backend<B> {
    /// A backend of weight 1 in no zone.
    pub fn new(id: impl Into<BackendId>, value: B) -> Self {
        Self {
            id: id.into(),
            value,
            weight: 1,
            zone: None,
            metadata: BTreeMap::new(),
        }
    }

    /// Its relative share for weighted policies. Zero means "drain": no new picks.
    pub fn weight(mut self, weight: u32) -> Self {
        self.weight = weight;
        self
    }

    /// Its zone (data center, availability zone) for [`Locality`](crate::Locality).
    pub fn zone(mut self, zone: impl Into<Arc<str>>) -> Self {
        self.zone = Some(zone.into());
        self
    }

    /// Attaches a metadata entry (shown in stats; free for the application's use).
    pub fn meta(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// Its id.
    #[must_use]
    pub fn id(&self) -> BackendId {
        self.id
    }

    /// The user's value.
    #[must_use]
    pub fn value(&self) -> &B {
        &self.value
    }

    /// The user's value, by value.
    #[must_use]
    pub fn into_value(self) -> B {
        self.value
    }

    /// The configured weight (`weight` is its setter).
    #[must_use]
    pub fn configured_weight(&self) -> u32 {
        self.weight
    }
}

impl<B: fmt::Debug> fmt::Debug for Backend<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Backend")
            .field("id", &self.id)
            .field("value", &self.value)
            .field("weight", &self.weight)
            .field("zone", &self.zone)
            .finish_non_exhaustive()
    }
}

/// The health of a backend as the balancer sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Health {
    /// Serving: eligible for picks.
    Healthy,
    /// Failing its active health checks (or not yet checked, with `start_unhealthy`).
    Unhealthy,
    /// Temporarily ejected by passive outlier detection.
    Ejected,
}

impl Health {
    fn from_u8(v: u8) -> Self {
        match v {
            HEALTH_UNHEALTHY => Self::Unhealthy,
            HEALTH_EJECTED => Self::Ejected,
            _ => Self::Healthy,
        }
    }
}

/// Live counters of one backend. One cache-padded block per backend, so picks of different
/// backends never contend on a cache line. `refs` (in flight, picks, draining and the reference
/// counts) comes first: it is the only field a pick writes.
#[derive(Debug)]
pub(crate) struct Counters {
    pub(crate) refs: RefCounts,
    pub(crate) successes: AtomicU64,
    pub(crate) failures: AtomicU64,
    /// Peak-EWMA latency in nanoseconds (as `f64` bits); 0 = no observation yet.
    pub(crate) ewma_bits: AtomicU64,
    /// When `ewma_bits` was last updated (clock nanos).
    pub(crate) ewma_at: AtomicU64,
    pub(crate) consecutive_failures: AtomicU32,
    /// `eject.rs`: healthy, unhealthy, ejected or being ejected.
    pub(crate) health: sync::AtomicU8,
    pub(crate) ejections: AtomicU32,
    /// Clock nanos until which the backend stays ejected.
    pub(crate) ejected_until: sync::AtomicU64,
    /// Clock nanos when the backend (re)entered service, for slow start; 0 = not ramping.
    pub(crate) ramp_from: AtomicU64,
    /// Active-check streaks: consecutive passes (rise) and fails (fall).
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) check_passes: AtomicU32,
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) check_fails: AtomicU32,
    /// Active checks run so far (the first pass of an unchecked backend ignores `rise`).
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) checks: AtomicU64,
}

/// One backend's state, allocated once and shared by its [`Member`] handles and its leases
/// (`shared.rs` owns the allocation).
pub(crate) struct Shared<B> {
    pub(crate) counters: CachePadded<Counters>,
    pub(crate) id: BackendId,
    pub(crate) value: B,
    pub(crate) zone: Option<Arc<str>>,
    pub(crate) metadata: BTreeMap<String, String>,
    pub(crate) control: Arc<Control>,
}

impl<B> Shared<B> {
    pub(crate) fn new(spec: Backend<B>, control: Arc<Control>, health: u8, ramp_from: u64) -> Self {
        Self {
            counters: CachePadded::new(Counters {
                refs: RefCounts::new(),
                successes: AtomicU64::new(0),
                failures: AtomicU64::new(0),
                ewma_bits: AtomicU64::new(0),
                ewma_at: AtomicU64::new(0),
                consecutive_failures: AtomicU32::new(0),
                health: sync::AtomicU8::new(health),
                ejections: AtomicU32::new(0),
                ejected_until: sync::AtomicU64::new(0),
                ramp_from: AtomicU64::new(ramp_from),
                check_passes: AtomicU32::new(0),
                check_fails: AtomicU32::new(0),
                checks: AtomicU64::new(0),
            }),
            id: spec.id,
            value: spec.value,
            zone: spec.zone,
            metadata: spec.metadata,
            control,
        }
    }
}

impl<B> Member<B> {
    pub(crate) fn from_spec(
        spec: Backend<B>,
        control: Arc<Control>,
        health: u8,
        ramp_from: u64,
    ) -> Self {
        Self::new(Shared::new(spec, control, health, ramp_from))
    }

    pub(crate) fn counters(&self) -> &Counters {
        &self.shared().counters
    }

    /// The backend's id.
    #[must_use]
    pub fn id(&self) -> BackendId {
        self.shared().id
    }

    /// The user's value.
    #[must_use]
    pub fn value(&self) -> &B {
        &self.shared().value
    }

    /// The backend's zone, if any.
    #[must_use]
    pub fn zone(&self) -> Option<&str> {
        self.shared().zone.as_deref()
    }

    pub(crate) fn zone_arc(&self) -> &Option<Arc<str>> {
        &self.shared().zone
    }

    /// The backend's metadata.
    #[must_use]
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.shared().metadata
    }

    /// Requests currently in flight (leases not yet dropped).
    #[must_use]
    pub fn in_flight(&self) -> u64 {
        self.counters().refs.in_flight()
    }

    /// The health the balancer currently assigns.
    #[must_use]
    pub fn health(&self) -> Health {
        Health::from_u8(self.counters().health.load(Ordering::Acquire))
    }

    /// Whether the backend is draining (no new picks).
    #[must_use]
    pub fn is_draining(&self) -> bool {
        self.counters().refs.is_draining()
    }

    /// The peak-EWMA latency estimate in nanoseconds (0 before the first observation).
    #[must_use]
    pub fn ewma_latency_nanos(&self) -> f64 {
        f64::from_bits(self.counters().ewma_bits.load(Ordering::Relaxed))
    }
}

impl<B: fmt::Debug> fmt::Debug for Member<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Member")
            .field("id", &self.id())
            .field("value", self.value())
            .field("zone", &self.zone())
            .field("in_flight", &self.in_flight())
            .field("health", &self.health())
            .finish_non_exhaustive()
    }
}
