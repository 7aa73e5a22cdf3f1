//! Every policy against a naive reference model (vectors and linear scans, obviously correct),
//! over random operation sequences: inserts with and without TTL, time-to-idle (a default, and a
//! per-entry `Expiry` policy), `try_insert`, lookups, removals, clears, clock advances and
//! weights. After every step the returned value, the live contents, `len`,
//! `weight`, the removal-listener events and the stats must agree.
//!
//! Half the cases run on a `ManualClock` (exact time everywhere), half on a `TickedClock` whose
//! cache reading (`recent_nanos`) only catches up with the exact one on a `Tick` operation, as
//! a `CoarseClock`'s does every millisecond: the model then does everything (deadlines, lookups,
//! purges) at the lagging time, which pins the coarse semantics (the cache never reads the exact
//! `now_nanos`, so time stands still between ticks).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use tierkit_cache::{
    Cache, CacheBuilder, CachePolicy, Clock, FifoCache, LfuCache, LruCache, ManualClock,
    RemovalCause, S3FifoCache,
};

/// A clock with an exact reading and a cache reading that only moves on [`TickedClock::tick`].
#[derive(Clone, Default, Debug)]
struct TickedClock {
    now: Arc<AtomicU64>,
    recent: Arc<AtomicU64>,
}

impl TickedClock {
    fn advance(&self, by: Duration) {
        let nanos = u64::try_from(by.as_nanos()).unwrap();
        self.now.fetch_add(nanos, Ordering::SeqCst);
    }

    fn tick(&self) {
        self.recent
            .store(self.now.load(Ordering::SeqCst), Ordering::SeqCst);
    }
}

impl Clock for TickedClock {
    fn now_nanos(&self) -> u64 {
        self.now.load(Ordering::SeqCst)
    }

    fn recent_nanos(&self) -> u64 {
        self.recent.load(Ordering::SeqCst)
    }
}

/// The test's clock: exact, or with a lagging lookup reading.
enum TestClock {
    Mock(ManualClock),
    Ticked(TickedClock),
}

impl TestClock {
    fn advance(&self, by: Duration) {
        match self {
            Self::Mock(c) => c.advance(by),
            Self::Ticked(c) => c.advance(by),
        }
    }

    fn tick(&self) {
        if let Self::Ticked(c) = self {
            c.tick();
        }
    }
}

/// S3-FIFO moves an entry from the small queue to the main queue when it was read at least this
/// many times while in the small queue (the crate documents the same threshold).
const S3_MOVE_TO_MAIN: u64 = 2;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Lru,
    Fifo,
    Lfu { aging: Aging },
    S3Fifo,
}

/// When the LFU model halves its frequencies (the model's own copy of `LfuAging`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Aging {
    /// Once the accesses since the last halving reach the entry count (at least 1): the default.
    Adaptive,
    /// After every this many accesses.
    Every(u64),
    /// Never (plain LFU).
    Off,
}

#[derive(Clone, Debug)]
struct Entry {
    key: u8,
    value: u32,
    weight: u64,
    /// Milliseconds on the model clock, `None` for no expiry: the earlier of `bound` and the
    /// last read plus `idle`.
    deadline: Option<u64>,
    /// The time-to-live deadline, which reads never move.
    bound: Option<u64>,
    /// The time-to-idle in milliseconds.
    idle: Option<u64>,
    /// LFU: access count; S3-FIFO: 0..=3 counter.
    freq: u64,
    /// LFU: when the entry took its current frequency (bigger = more recent).
    stamp: u64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Stats {
    pub(crate) hits: u64,
    pub(crate) misses: u64,
    pub(crate) inserts: u64,
    pub(crate) updates: u64,
    pub(crate) evictions: u64,
    pub(crate) expirations: u64,
    pub(crate) removals: u64,
    pub(crate) rejections: u64,
}

pub(crate) type Event = (u8, u32, RemovalCause);

/// The reference cache.
pub(crate) struct Model {
    kind: Kind,
    capacity: u64,
    weighted: bool,
    default_ttl: Option<u64>,
    default_tti: Option<u64>,
    /// Whether the cache has the test's `Expiry` ([`expiry_of`]).
    expiry: bool,
    /// The exact time (`now_nanos`, which the cache must never read).
    now: u64,
    /// The cache's time (deadlines, lookups, purges): `now` with an exact clock, else the time
    /// of the last tick.
    recent: u64,
    /// Whether `recent` follows `now` at once.
    exact: bool,
    /// LRU: least recently used first. FIFO: oldest first. LFU, S3-FIFO: unordered.
    entries: Vec<Entry>,
    /// S3-FIFO queues of keys, newest at the front.
    small: VecDeque<u8>,
    main: VecDeque<u8>,
    /// S3-FIFO ghost: keys evicted from the small queue, with the ghost clock after each push.
    ghost: Vec<(u8, u64)>,
    /// The charge (weights, each at least 1) of every key pushed into the ghost so far.
    ghost_clock: u64,
    tick: u64,
    accesses: u64,
    pub(crate) stats: Stats,
    pub(crate) events: Vec<Event>,
}

pub(crate) fn weigh(value: u32) -> u64 {
    u64::from(value % 4)
}

/// The test's per-entry expiry policy, in milliseconds: `(time_to_live, time_to_idle)`, each
/// `None` for "the cache's default". A zero time-to-idle expires the entry at once.
pub(crate) fn expiry_of(key: u8, value: u32) -> (Option<u64>, Option<u64>) {
    match key % 3 {
        0 => (None, Some(u64::from(value % 4))),
        1 => (Some(u64::from(value % 3) + 1), None),
        _ => (None, None),
    }
}

/// [`expiry_of`] as a `tierkit_cache::Expiry`.
pub(crate) struct TestExpiry;

impl tierkit_cache::Expiry<u8, u32> for TestExpiry {
    fn time_to_live(&self, key: &u8, value: &u32) -> Option<Duration> {
        expiry_of(*key, *value).0.map(Duration::from_millis)
    }
    fn time_to_idle(&self, key: &u8, value: &u32) -> Option<Duration> {
        expiry_of(*key, *value).1.map(Duration::from_millis)
    }
}

impl Model {
    pub(crate) fn new(kind: Kind, capacity: u64, weighted: bool, default_ttl: Option<u64>) -> Self {
        Self {
            kind,
            capacity,
            weighted,
            default_ttl,
            default_tti: None,
            expiry: false,
            now: 0,
            recent: 0,
            exact: true,
            entries: Vec::new(),
            small: VecDeque::new(),
            main: VecDeque::new(),
            ghost: Vec::new(),
            ghost_clock: 0,
            tick: 0,
            accesses: 0,
            stats: Stats::default(),
            events: Vec::new(),
        }
    }

    fn pos(&self, key: u8) -> Option<usize> {
        self.entries.iter().position(|e| e.key == key)
    }

    /// Expired at the cache's time (the lagging one under a ticked clock), for lookups and
    /// writes alike.
    fn expired(&self, e: &Entry) -> bool {
        e.deadline.is_some_and(|d| d <= self.recent)
    }

    fn weight_of(&self, value: u32) -> u64 {
        if self.weighted { weigh(value) } else { 1 }
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn weight(&self) -> u64 {
        self.entries.iter().map(|e| e.weight).sum()
    }

    /// Live pairs, sorted.
    pub(crate) fn contents(&self) -> Vec<(u8, u32)> {
        let mut out: Vec<_> = self
            .entries
            .iter()
            .filter(|e| !self.expired(e))
            .map(|e| (e.key, e.value))
            .collect();
        out.sort_unstable();
        out
    }

    pub(crate) fn advance(&mut self, ms: u64) {
        self.now += ms;
        if self.exact {
            self.recent = self.now;
        }
    }

    /// The lookup time catches up (a coarse clock's tick).
    pub(crate) fn tick(&mut self) {
        self.recent = self.now;
    }

    /// Takes `key` out of every structure and reports it.
    fn take(&mut self, key: u8, cause: RemovalCause) -> Entry {
        let pos = self.pos(key).expect("model: present");
        let e = self.entries.remove(pos);
        let in_small = self.small.contains(&key);
        self.small.retain(|k| *k != key);
        self.main.retain(|k| *k != key);
        if cause == RemovalCause::Evicted && in_small && self.kind == Kind::S3Fifo {
            // The documented rule: a key is remembered until the keys pushed after it total
            // the main queue's share in charge (each its weight, at least 1). The crate rounds
            // that to epochs of ceil(share / 128) charge, which is 1 at these capacities; its
            // table is one 16-slot bucket here (sized for 12 keys, and there are 10), which is
            // never replaced (that would forget) and cannot overflow.
            self.ghost_clock += e.weight.max(1);
            self.ghost.retain(|g| g.0 != key);
            self.ghost.push((key, self.ghost_clock));
        }
        match cause {
            RemovalCause::Evicted => self.stats.evictions += 1,
            RemovalCause::Expired => self.stats.expirations += 1,
            RemovalCause::Removed => self.stats.removals += 1,
            RemovalCause::Replaced => self.stats.updates += 1,
            _ => self.stats.rejections += 1,
        }
        self.events.push((key, e.value, cause));
        e
    }

    pub(crate) fn purge(&mut self) -> usize {
        let due: Vec<u8> = self
            .entries
            .iter()
            .filter(|e| self.expired(e))
            .map(|e| e.key)
            .collect();
        for &k in &due {
            self.take(k, RemovalCause::Expired);
        }
        due.len()
    }

    /// A hit or a value replacement: the policy's notion of "used".
    fn touch(&mut self, key: u8) {
        let pos = self.pos(key).expect("model: present");
        self.tick += 1;
        match self.kind {
            Kind::Lru => {
                let e = self.entries.remove(pos);
                self.entries.push(e);
            }
            Kind::Fifo => {}
            Kind::Lfu { aging } => {
                self.entries[pos].freq += 1;
                self.entries[pos].stamp = self.tick;
                let period = match aging {
                    // Every entry held counts, expired ones not yet dropped included (`len`).
                    Aging::Adaptive => Some((self.entries.len() as u64).max(1)),
                    Aging::Every(period) => Some(period),
                    Aging::Off => None,
                };
                if let Some(period) = period {
                    self.accesses += 1;
                    if self.accesses >= period {
                        self.accesses = 0;
                        self.age();
                    }
                }
            }
            Kind::S3Fifo => self.entries[pos].freq = (self.entries[pos].freq + 1).min(3),
        }
    }

    /// LFU aging: every frequency halves (rounding up); among entries that end up with the same
    /// frequency, those that had the lower one go first, then the least recent.
    fn age(&mut self) {
        let mut order: Vec<usize> = (0..self.entries.len()).collect();
        order.sort_by_key(|&i| (self.entries[i].freq, self.entries[i].stamp));
        for i in order {
            self.tick += 1;
            let e = &mut self.entries[i];
            e.freq = e.freq.div_ceil(2);
            e.stamp = self.tick;
        }
    }

    fn freq_mut(&mut self, key: u8) -> &mut u64 {
        let pos = self.pos(key).expect("model: present");
        &mut self.entries[pos].freq
    }

    /// The policy's next victim, never `protect`.
    fn victim(&mut self, protect: Option<u8>) -> Option<u8> {
        let others = |k: &u8| Some(*k) != protect;
        match self.kind {
            Kind::Lru | Kind::Fifo => self.entries.iter().map(|e| e.key).find(others),
            Kind::Lfu { .. } => self
                .entries
                .iter()
                .filter(|e| others(&e.key))
                .min_by_key(|e| (e.freq, e.stamp))
                .map(|e| e.key),
            Kind::S3Fifo => loop {
                let small_has = self.small.iter().any(others);
                let main_has = self.main.iter().any(others);
                if !small_has && !main_has {
                    return None;
                }
                let main_weight: u64 = self
                    .main
                    .iter()
                    .map(|k| self.entries[self.pos(*k).expect("in main")].weight)
                    .sum();
                let main_target = self.capacity - self.capacity / 10;
                if (main_has && main_weight > main_target) || !small_has {
                    let k = self.main.pop_back().expect("main");
                    if Some(k) == protect {
                        self.main.push_front(k);
                    } else if *self.freq_mut(k) > 0 {
                        *self.freq_mut(k) -= 1;
                        self.main.push_front(k);
                    } else {
                        self.main.push_back(k);
                        return Some(k);
                    }
                } else {
                    let k = self.small.pop_back().expect("small");
                    if Some(k) == protect {
                        self.small.push_front(k);
                    } else if *self.freq_mut(k) >= S3_MOVE_TO_MAIN {
                        *self.freq_mut(k) = 0;
                        self.main.push_front(k);
                    } else {
                        self.small.push_back(k);
                        return Some(k);
                    }
                }
            },
        }
    }

    fn make_room(&mut self, protect: Option<u8>) {
        while self.weight() > self.capacity {
            let Some(k) = self.victim(protect) else { break };
            self.take(k, RemovalCause::Evicted);
        }
    }

    /// An insert; `explicit`: an `insert_with_ttl` of that many milliseconds.
    pub(crate) fn insert(&mut self, key: u8, value: u32, explicit: Option<u64>) -> Option<u32> {
        self.purge();
        let present = self.pos(key).is_some();
        let (own_ttl, own_tti) = if self.expiry {
            expiry_of(key, value)
        } else {
            (None, None)
        };
        let ttl = explicit.or(own_ttl).or(self.default_ttl);
        let idle = own_tti.or(self.default_tti);
        if ttl == Some(0) || idle == Some(0) {
            let old = present.then(|| self.take(key, RemovalCause::Replaced).value);
            self.stats.expirations += 1;
            self.events.push((key, value, RemovalCause::Expired));
            return old;
        }
        let weight = self.weight_of(value);
        if weight > self.capacity {
            let old = present.then(|| self.take(key, RemovalCause::Replaced).value);
            self.stats.rejections += 1;
            self.events.push((key, value, RemovalCause::Rejected));
            return old;
        }
        let bound = ttl.map(|t| self.recent + t);
        let deadline = Self::deadline(bound, idle, self.recent);
        if present {
            let pos = self.pos(key).expect("present");
            let e = &mut self.entries[pos];
            let old = std::mem::replace(&mut e.value, value);
            e.weight = weight;
            e.deadline = deadline;
            e.bound = bound;
            e.idle = idle;
            self.touch(key);
            self.stats.updates += 1;
            self.events.push((key, old, RemovalCause::Replaced));
            self.make_room(Some(key));
            return Some(old);
        }
        // Room for the newcomer first: it is not a candidate.
        while self.weight() + weight > self.capacity {
            let Some(k) = self.victim(None) else { break };
            self.take(k, RemovalCause::Evicted);
        }
        self.tick += 1;
        self.entries.push(Entry {
            key,
            value,
            weight,
            deadline,
            bound,
            idle,
            freq: 1,
            stamp: self.tick,
        });
        if self.kind == Kind::S3Fifo {
            *self.freq_mut(key) = 0;
            let share = self.capacity - self.capacity / 10;
            let clock = self.ghost_clock;
            let remembered = self.ghost.iter().any(|g| g.0 == key && clock - g.1 < share);
            // A lookup forgets the key either way.
            self.ghost.retain(|g| g.0 != key);
            if remembered {
                self.main.push_front(key);
            } else {
                self.small.push_front(key);
            }
        }
        self.stats.inserts += 1;
        None
    }

    /// The earlier of a time-to-live deadline and the end of an idle period starting `at`.
    fn deadline(bound: Option<u64>, idle: Option<u64>, at: u64) -> Option<u64> {
        match (bound, idle.map(|i| at + i)) {
            (Some(b), Some(i)) => Some(b.min(i)),
            (b, i) => b.or(i),
        }
    }

    pub(crate) fn insert_default(&mut self, key: u8, value: u32) -> Option<u32> {
        self.insert(key, value, None)
    }

    /// `try_insert`: refused, changing nothing, when the entry outweighs the capacity.
    pub(crate) fn try_insert(&mut self, key: u8, value: u32) -> Result<Option<u32>, (u8, u32)> {
        if self.weight_of(value) > self.capacity {
            self.stats.rejections += 1;
            return Err((key, value));
        }
        Ok(self.insert_default(key, value))
    }

    pub(crate) fn get(&mut self, key: u8) -> Option<u32> {
        let Some(pos) = self.pos(key) else {
            self.stats.misses += 1;
            return None;
        };
        if self.expired(&self.entries[pos]) {
            self.take(key, RemovalCause::Expired);
            self.stats.misses += 1;
            return None;
        }
        self.stats.hits += 1;
        self.touch(key);
        let pos = self.pos(key).expect("present");
        // A read restarts the idle period.
        let e = &mut self.entries[pos];
        if e.idle.is_some() {
            e.deadline = Self::deadline(e.bound, e.idle, self.recent);
        }
        Some(self.entries[pos].value)
    }

    /// `get_mut`, then add one to the value (its weight is not re-measured).
    pub(crate) fn get_mut_incr(&mut self, key: u8) -> Option<u32> {
        self.get(key)?;
        let pos = self.pos(key).expect("present");
        self.entries[pos].value = self.entries[pos].value.wrapping_add(1);
        Some(self.entries[pos].value)
    }

    pub(crate) fn peek(&self, key: u8) -> Option<u32> {
        self.entries
            .iter()
            .find(|e| e.key == key && !self.expired(e))
            .map(|e| e.value)
    }

    pub(crate) fn remove(&mut self, key: u8) -> Option<u32> {
        self.purge();
        self.pos(key)
            .is_some()
            .then(|| self.take(key, RemovalCause::Removed).value)
    }

    pub(crate) fn clear(&mut self) {
        let keys: Vec<u8> = self.entries.iter().map(|e| e.key).collect();
        for k in keys {
            self.take(k, RemovalCause::Removed);
        }
        self.ghost.clear();
        self.accesses = 0;
    }
}

#[derive(Clone, Debug)]
pub(crate) enum Op {
    Insert(u8, u32),
    TryInsert(u8, u32),
    InsertTtl(u8, u32, u64),
    Get(u8),
    GetOrInsert(u8, u32),
    GetMut(u8),
    Peek(u8),
    Contains(u8),
    Remove(u8),
    Clear,
    Advance(u64),
    Tick,
    Purge,
}

fn op() -> impl Strategy<Value = Op> {
    let key = 0..10u8;
    prop_oneof![
        6 => (key.clone(), any::<u32>()).prop_map(|(k, v)| Op::Insert(k, v)),
        1 => (key.clone(), any::<u32>()).prop_map(|(k, v)| Op::TryInsert(k, v)),
        2 => (key.clone(), any::<u32>(), 0..4u64).prop_map(|(k, v, t)| Op::InsertTtl(k, v, t)),
        6 => key.clone().prop_map(Op::Get),
        2 => (key.clone(), any::<u32>()).prop_map(|(k, v)| Op::GetOrInsert(k, v)),
        1 => key.clone().prop_map(Op::GetMut),
        1 => key.clone().prop_map(Op::Peek),
        1 => key.clone().prop_map(Op::Contains),
        2 => key.prop_map(Op::Remove),
        1 => Just(Op::Clear),
        2 => (0..3u64).prop_map(Op::Advance),
        1 => Just(Op::Tick),
        1 => Just(Op::Purge),
    ]
}

#[derive(Clone, Debug)]
pub(crate) struct Case {
    capacity: u64,
    weighted: bool,
    /// Lookups read a lagging clock (`TickedClock`) instead of an exact one (`ManualClock`).
    coarse: bool,
    default_ttl: Option<u64>,
    default_tti: Option<u64>,
    /// With the test's `Expiry` ([`expiry_of`]).
    expiry: bool,
    ops: Vec<Op>,
}

fn case() -> impl Strategy<Value = Case> {
    (
        (1..8u64, any::<bool>(), any::<bool>()),
        prop::option::weighted(0.3, 1..5u64),
        prop::option::weighted(0.3, 1..5u64),
        prop::bool::weighted(0.3),
        prop::collection::vec(op(), 1..120),
    )
        .prop_map(
            |((capacity, weighted, coarse), default_ttl, default_tti, expiry, ops)| Case {
                capacity: if weighted { capacity * 2 } else { capacity },
                weighted,
                coarse,
                default_ttl,
                default_tti,
                expiry,
                ops,
            },
        )
}

/// Sorts runs of events whose order the contract leaves open: expirations drained together, and
/// the entries a `clear` removes.
fn normalise(mut events: Vec<Event>, clear: bool) -> Vec<Event> {
    let open =
        |c: RemovalCause| c == RemovalCause::Expired || (clear && c == RemovalCause::Removed);
    let mut i = 0;
    while i < events.len() {
        let mut j = i;
        while j < events.len() && open(events[j].2) && events[j].2 == events[i].2 {
            j += 1;
        }
        if j > i {
            events[i..j].sort_unstable_by_key(|e| (e.0, e.1));
            i = j;
        } else {
            i += 1;
        }
    }
    events
}

fn stats_of<C: Cache<u8, u32>>(cache: &C) -> Stats {
    let s = cache.stats();
    Stats {
        hits: s.hits,
        misses: s.misses,
        inserts: s.inserts,
        updates: s.updates,
        evictions: s.evictions,
        expirations: s.expirations,
        removals: s.removals,
        rejections: s.rejections,
    }
}

/// Runs `case` on the cache built by `build` and on the model, comparing after every step.
pub(crate) fn check<C>(
    kind: Kind,
    case: &Case,
    build: impl FnOnce(CacheBuilder<u8, u32>) -> C,
) -> Result<(), TestCaseError>
where
    C: Cache<u8, u32> + CachePolicy<u8, u32>,
{
    let events: Arc<Mutex<Vec<Event>>> = Arc::default();
    let sink = Arc::clone(&events);
    let mut builder = CacheBuilder::new(case.capacity)
        .removal_listener(move |k: &u8, v: &u32, c| sink.lock().unwrap().push((*k, *v, c)));
    let clock = if case.coarse {
        let clock = TickedClock::default();
        builder = builder.clock(clock.clone());
        TestClock::Ticked(clock)
    } else {
        let clock = ManualClock::new();
        builder = builder.clock(clock.clone());
        TestClock::Mock(clock)
    };
    if case.weighted {
        builder = builder.weigher(|_k: &u8, v: &u32| weigh(*v));
    }
    if let Some(ttl) = case.default_ttl {
        builder = builder.time_to_live(Duration::from_millis(ttl));
    }
    if let Some(tti) = case.default_tti {
        builder = builder.time_to_idle(Duration::from_millis(tti));
    }
    if case.expiry {
        builder = builder.expire_after(TestExpiry);
    }
    let mut cache = build(builder);
    let mut model = Model::new(kind, case.capacity, case.weighted, case.default_ttl);
    model.default_tti = case.default_tti;
    model.expiry = case.expiry;
    model.exact = !case.coarse;

    for (step, op) in case.ops.iter().enumerate() {
        let (got, want) = match *op {
            Op::Insert(k, v) => (cache.insert(k, v), model.insert_default(k, v)),
            Op::TryInsert(k, v) => {
                let got = cache.try_insert(k, v).map_err(|r| r.into_inner());
                let want = model.try_insert(k, v);
                prop_assert_eq!(got, want, "try_insert, step {}", step);
                (None, None)
            }
            Op::InsertTtl(k, v, t) => (
                cache.insert_with_ttl(k, v, Duration::from_millis(t)),
                model.insert(k, v, Some(t)),
            ),
            Op::Get(k) => (cache.get(&k).copied(), model.get(k)),
            Op::GetOrInsert(k, v) => {
                let mut made = false;
                let got = cache
                    .get_or_insert_with(k, || {
                        made = true;
                        v
                    })
                    .copied();
                // A `get`, then on a miss an insert with the default TTL and what it kept.
                let hit = model.get(k);
                prop_assert_eq!(made, hit.is_none(), "`make` runs exactly on a miss");
                let want = hit.or_else(|| {
                    model.insert_default(k, v);
                    model.peek(k)
                });
                (got, want)
            }
            Op::GetMut(k) => (
                cache.get_mut(&k).map(|v| {
                    *v = v.wrapping_add(1);
                    *v
                }),
                model.get_mut_incr(k),
            ),
            Op::Peek(k) => (cache.peek(&k).copied(), model.peek(k)),
            Op::Contains(k) => (cache.contains(&k).then_some(0), model.peek(k).map(|_| 0)),
            Op::Remove(k) => (cache.remove(&k), model.remove(k)),
            Op::Clear => {
                cache.clear();
                model.clear();
                (None, None)
            }
            Op::Advance(ms) => {
                clock.advance(Duration::from_millis(ms));
                model.advance(ms);
                (None, None)
            }
            Op::Tick => {
                clock.tick();
                model.tick();
                (None, None)
            }
            Op::Purge => {
                let n = cache.purge_expired();
                let m = model.purge();
                (
                    Some(u32::try_from(n).unwrap()),
                    Some(u32::try_from(m).unwrap()),
                )
            }
        };
        let ctx = || format!("step {step}: {op:?}");
        prop_assert_eq!(got, want, "{}", ctx());
        let clear = matches!(op, Op::Clear);
        let got_events = normalise(std::mem::take(&mut *events.lock().unwrap()), clear);
        let want_events = normalise(std::mem::take(&mut model.events), clear);
        prop_assert_eq!(got_events, want_events, "events, {}", ctx());
        let mut contents: Vec<(u8, u32)> = cache.iter().map(|(k, v)| (*k, *v)).collect();
        contents.sort_unstable();
        prop_assert_eq!(contents, model.contents(), "contents, {}", ctx());
        prop_assert_eq!(cache.len(), model.len(), "len, {}", ctx());
        prop_assert_eq!(cache.weight(), model.weight(), "weight, {}", ctx());
        prop_assert_eq!(stats_of(&cache), model.stats, "stats, {}", ctx());
        prop_assert!(
            cache.weight() <= cache.capacity(),
            "over capacity, {}",
            ctx()
        );
    }
    Ok(())
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/proptest-regressions/model.txt"
        )))),
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn lru_matches_model(case in case()) {
        check(Kind::Lru, &case, |b| b.build::<LruCache<u8, u32>>().unwrap())?;
    }

    #[test]
    fn fifo_matches_model(case in case()) {
        check(Kind::Fifo, &case, |b| b.build::<FifoCache<u8, u32>>().unwrap())?;
    }

    /// The default `LfuCache`, as every constructor builds it: adaptive aging.
    #[test]
    fn lfu_with_default_aging_matches_model(case in case()) {
        check(Kind::Lfu { aging: Aging::Adaptive }, &case, |b| {
            b.build::<LfuCache<u8, u32>>().unwrap()
        })?;
    }

    #[test]
    fn lfu_without_aging_matches_model(case in case()) {
        check(Kind::Lfu { aging: Aging::Off }, &case, |b| {
            b.build::<LfuCache<u8, u32>>().unwrap().without_aging()
        })?;
    }

    #[test]
    fn lfu_with_aging_matches_model(case in case(), extra in 0..6u64) {
        let period = case.capacity + extra;
        check(Kind::Lfu { aging: Aging::Every(period) }, &case, |b| {
            b.build::<LfuCache<u8, u32>>().unwrap().with_aging(period).unwrap()
        })?;
    }

    /// The ghost keeps 24-bit fingerprints: two of the ten keys may share one (about 45 / 2^24
    /// per case), and the cache then takes one for the other; no such case has been seen.
    #[test]
    fn s3fifo_matches_model(case in case()) {
        check(Kind::S3Fifo, &case, |b| b.build::<S3FifoCache<u8, u32>>().unwrap())?;
    }
}
