//! How an entry's weight and lifetimes are decided before it is stored: the per-entry
//! [`Expiry`] policy, and the rules (weigher, expiry, defaults) that run *before* a cache changes
//! anything, so no user code ever runs under a lock.

use std::sync::Arc;
use std::time::Duration;

use crate::Weigher;

/// A per-entry expiry policy: each entry's time-to-live and time-to-idle, decided from its key
/// and value when it is written.
///
/// Set with [`CacheBuilder::expire_after`](crate::CacheBuilder::expire_after) or
/// [`ConcurrentCacheBuilder::expire_after`](crate::ConcurrentCacheBuilder::expire_after). Both
/// methods default to `None`, meaning "the cache's default" (its
/// [`time_to_live`](crate::CacheBuilder::time_to_live) /
/// [`time_to_idle`](crate::CacheBuilder::time_to_idle), or none). `Some(Duration::MAX)` means
/// "never" for this entry, whatever the default; `Some(Duration::ZERO)` stores nothing (the
/// entry is reported `Expired` at once, and any previous value under the key `Replaced`). An explicit
/// [`insert_with_ttl`](crate::Cache::insert_with_ttl) overrides `time_to_live`.
///
/// An entry expires at the first of its two deadlines: `written + time_to_live`, and
/// `last read + time_to_idle` (a `get` hit restarts the idle period; `peek`, `contains` and
/// iteration do not).
///
/// **Unlike moka's `Expiry`**, both durations are decided when the entry is written (insert or
/// replacement), before the cache takes a lock; a read only restarts the idle period it was
/// given. So reads never run user code, and the policy can be as slow as it likes without
/// holding up other threads.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use tierkit_cache::{Cache, CacheBuilder, Expiry, LruCache, ManualClock};
///
/// /// Sessions of administrators idle out after 5 minutes, others after an hour.
/// struct SessionExpiry;
/// impl Expiry<u64, String> for SessionExpiry {
///     fn time_to_idle(&self, _id: &u64, role: &String) -> Option<Duration> {
///         Some(Duration::from_secs(if role == "admin" { 300 } else { 3_600 }))
///     }
/// }
///
/// let clock = ManualClock::new();
/// let mut sessions: LruCache<u64, String> = CacheBuilder::new(1_000)
///     .expire_after(SessionExpiry)
///     .clock(clock.clone())
///     .build()?;
/// sessions.insert(1, "admin".to_string());
/// sessions.insert(2, "reader".to_string());
/// clock.advance(Duration::from_secs(200));
/// assert!(sessions.get(&1).is_some()); // read: idle again from now
/// clock.advance(Duration::from_secs(299));
/// assert!(sessions.get(&1).is_some());
/// clock.advance(Duration::from_secs(301));
/// assert!(sessions.get(&1).is_none()); // idle for 301 s
/// assert!(sessions.get(&2).is_some());
/// # Ok::<(), tierkit_cache::Error>(())
/// ```
pub trait Expiry<K, V>: Send + Sync + 'static {
    /// How long after this write the entry expires, whatever its reads; `None`: the cache's
    /// default time-to-live.
    fn time_to_live(&self, key: &K, value: &V) -> Option<Duration> {
        let _ = (key, value);
        None
    }

    /// How long the entry may go without a `get` before it expires; `None`: the cache's
    /// default time-to-idle.
    fn time_to_idle(&self, key: &K, value: &V) -> Option<Duration> {
        let _ = (key, value);
        None
    }
}

/// `d` in nanoseconds, saturated (past about 584 years: never).
pub(crate) fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// The time-to-live of an insert.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Ttl {
    /// The entry's [`Expiry`], else the cache's default (none unless configured).
    Default,
    /// This one, overriding the default.
    For(Duration),
}

/// What a write needs to know about its entry, decided before the cache changes anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prepared {
    /// The entry's weight (1 without a weigher).
    pub(crate) weight: u64,
    /// Time-to-live in nanoseconds (`None`: never; `u64::MAX`: never).
    pub(crate) ttl: Option<u64>,
    /// Time-to-idle in nanoseconds (`None`: never).
    pub(crate) tti: Option<u64>,
}

/// The rules that decide [`Prepared`]: the weigher, the expiry policy and the defaults.
pub(crate) struct EntryRules<K, V> {
    pub(crate) weigher: Option<Arc<dyn Weigher<K, V>>>,
    pub(crate) expiry: Option<Arc<dyn Expiry<K, V>>>,
    pub(crate) default_ttl: Option<u64>,
    pub(crate) default_tti: Option<u64>,
}

impl<K, V> Clone for EntryRules<K, V> {
    fn clone(&self) -> Self {
        Self {
            weigher: self.weigher.clone(),
            expiry: self.expiry.clone(),
            default_ttl: self.default_ttl,
            default_tti: self.default_tti,
        }
    }
}

impl<K, V> EntryRules<K, V> {
    /// Whether some entry may carry a time-to-idle (reads then restart idle periods).
    pub(crate) fn tracks_idle(&self) -> bool {
        self.default_tti.is_some() || self.expiry.is_some()
    }
}

impl<K: 'static, V: 'static> EntryRules<K, V> {
    /// Runs the user's weigher and expiry policy for a write of `key` / `value` with `ttl`.
    #[inline]
    pub(crate) fn prepare(&self, key: &K, value: &V, ttl: Ttl) -> Prepared {
        let weight = self.weigher.as_ref().map_or(1, |w| w.weigh(key, value));
        let (own_ttl, own_tti) = match &self.expiry {
            None => (None, None),
            Some(e) => (e.time_to_live(key, value), e.time_to_idle(key, value)),
        };
        let ttl = match ttl {
            Ttl::For(d) => Some(nanos(d)),
            Ttl::Default => own_ttl.map(nanos).or(self.default_ttl),
        };
        Prepared {
            weight,
            ttl,
            tti: own_tti.map(nanos).or(self.default_tti),
        }
    }
}
