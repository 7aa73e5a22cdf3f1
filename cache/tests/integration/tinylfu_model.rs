//! `TinyLfuCache` against a naive W-TinyLFU written with `VecDeque`s and an exact count per key,
//! over random `get` / `insert` / `remove` sequences: after every step the hit or miss, the
//! returned value and the whole iteration order (protected, probation, window; each most recent
//! first) must agree.
//!
//! The model's counts stand in for the count-min sketch. They agree with it while no two keys
//! share a counter: the keys are `0..8` under a fixed hasher, in a sketch of at least 4,096
//! words, so the four counters of each key are its own (a property of the key set, checked by
//! every case). The model reproduces the documented parts: counts saturate at 15, every
//! `20 x capacity` counted requests every count halves and the request count becomes
//! `(count - odd) / 2` (`odd`: keys with an odd count; each key has 4 counters), and a
//! candidate at least 6 times as frequent that does not beat its victim gets in when the
//! documented stream says so. Sequences stay far below a hill-climber sample (20,000
//! requests), so the window keeps its initial size (the climber has its own unit test).

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};

use proptest::prelude::*;
use tierkit_cache::{Cache, CacheBuilder, TinyLfuCache};

type Fixed = BuildHasherDefault<DefaultHasher>;

fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[derive(Debug, Clone)]
enum Op {
    Get(u8),
    Insert(u8, u32),
    Remove(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (0u8..8).prop_map(Op::Get),
        4 => (0u8..8, any::<u32>()).prop_map(|(k, v)| Op::Insert(k, v)),
        1 => (0u8..8).prop_map(Op::Remove),
    ]
}

/// The naive W-TinyLFU: three queues (front = most recent) and exact counts.
struct Model {
    window: VecDeque<u8>,
    probation: VecDeque<u8>,
    protected: VecDeque<u8>,
    values: HashMap<u8, u32>,
    counts: HashMap<u8, u8>,
    requests: u64,
    sample: u64,
    capacity: usize,
    window_max: usize,
    protected_max: usize,
    rng: u64,
}

impl Model {
    fn new(capacity: usize) -> Self {
        let window_max = capacity - capacity * 99 / 100;
        Self {
            window: VecDeque::new(),
            probation: VecDeque::new(),
            protected: VecDeque::new(),
            values: HashMap::new(),
            counts: HashMap::new(),
            requests: 0,
            sample: 20 * capacity as u64,
            capacity,
            window_max,
            protected_max: (capacity - window_max) * 80 / 100,
            rng: 0,
        }
    }

    fn count(&mut self, key: u8) {
        let c = self.counts.entry(key).or_insert(0);
        if *c == 15 {
            return;
        }
        *c += 1;
        self.requests += 1;
        if self.requests >= self.sample {
            let odd = self.counts.values().filter(|c| **c % 2 == 1).count() as u64;
            for c in self.counts.values_mut() {
                *c /= 2;
            }
            self.requests = (self.requests - odd) / 2;
        }
    }

    fn freq(&self, key: u8) -> u8 {
        self.counts.get(&key).copied().unwrap_or(0)
    }

    fn take(queue: &mut VecDeque<u8>, key: u8) -> bool {
        match queue.iter().position(|k| *k == key) {
            Some(i) => {
                queue.remove(i);
                true
            }
            None => false,
        }
    }

    /// A request for a resident key: counted, then reordered.
    fn touch(&mut self, key: u8) {
        self.count(key);
        if Self::take(&mut self.window, key) {
            self.window.push_front(key);
        } else if Self::take(&mut self.probation, key) || Self::take(&mut self.protected, key) {
            self.protected.push_front(key);
            while self.protected.len() > self.protected_max {
                let demoted = self.protected.pop_back().unwrap();
                self.probation.push_front(demoted);
            }
        }
    }

    fn get(&mut self, key: u8) -> Option<u32> {
        let v = self.values.get(&key).copied()?;
        self.touch(key);
        Some(v)
    }

    fn fingerprint(key: u8) -> u32 {
        (mix64(Fixed::default().hash_one(key)) >> 34) as u32
    }

    fn admit(&mut self, candidate: u8, victim: u8) -> bool {
        let (c, v) = (self.freq(candidate), self.freq(victim));
        if c > v {
            return true;
        }
        if c < 6 {
            return false;
        }
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix64(self.rng ^ u64::from(Self::fingerprint(candidate))) & 127 == 0
    }

    fn evict_one(&mut self) {
        let candidate = self.window.back().copied();
        let victim = self
            .probation
            .back()
            .or_else(|| self.protected.back())
            .copied();
        let evicted = match (candidate, victim) {
            (Some(c), Some(v)) => {
                if self.admit(c, v) {
                    if self.window.len() >= self.window_max {
                        self.window.pop_back();
                        self.probation.push_front(c);
                    }
                    v
                } else {
                    c
                }
            }
            (Some(c), None) => c,
            (None, Some(v)) => v,
            (None, None) => return,
        };
        Self::take(&mut self.window, evicted);
        Self::take(&mut self.probation, evicted);
        Self::take(&mut self.protected, evicted);
        self.values.remove(&evicted);
    }

    fn insert(&mut self, key: u8, value: u32) -> Option<u32> {
        if let Some(old) = self.values.insert(key, value) {
            self.touch(key);
            return Some(old);
        }
        self.values.remove(&key);
        if self.values.len() >= self.capacity {
            self.evict_one();
        }
        self.values.insert(key, value);
        self.count(key);
        self.window.push_front(key);
        while self.window.len() > self.window_max {
            let moved = self.window.pop_back().unwrap();
            if moved == key {
                self.window.push_back(moved);
                break;
            }
            self.probation.push_front(moved);
        }
        None
    }

    fn remove(&mut self, key: u8) -> Option<u32> {
        let v = self.values.remove(&key)?;
        Self::take(&mut self.window, key);
        Self::take(&mut self.probation, key);
        Self::take(&mut self.protected, key);
        Some(v)
    }

    fn order(&self) -> Vec<(u8, u32)> {
        self.protected
            .iter()
            .chain(&self.probation)
            .chain(&self.window)
            .map(|k| (*k, self.values[k]))
            .collect()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn tinylfu_matches_naive_model(
        capacity in 1usize..7,
        ops in prop::collection::vec(op(), 1..400),
    ) {
        let mut cache: TinyLfuCache<u8, u32, Fixed> = CacheBuilder::new(capacity as u64)
            .hasher(Fixed::default())
            .build()
            .unwrap();
        let mut model = Model::new(capacity);
        for (step, op) in ops.iter().enumerate() {
            let (got, want) = match *op {
                Op::Get(k) => (cache.get(&k).copied(), model.get(k)),
                Op::Insert(k, v) => (cache.insert(k, v), model.insert(k, v)),
                Op::Remove(k) => (cache.remove(&k), model.remove(k)),
            };
            prop_assert_eq!(got, want, "step {} {:?}", step, op);
            let order: Vec<(u8, u32)> = cache.iter().map(|(k, v)| (*k, *v)).collect();
            prop_assert_eq!(order, model.order(), "order after step {} {:?}", step, op);
        }
    }
}

/// The documented scan resistance, on the default `ConcurrentCache<K, V>` (TinyLFU shards):
/// a popular working set survives a scan of one-off keys ten times the capacity.
#[test]
fn default_concurrent_cache_resists_a_scan() {
    let cache: tierkit_cache::ConcurrentCache<u64, u64> =
        tierkit_cache::ConcurrentCache::with_builder(&CacheBuilder::new(1_000).shards(1)).unwrap();
    for _ in 0..5 {
        for k in 0..500 {
            if cache.get(&k).is_none() {
                cache.insert(k, k);
            }
        }
    }
    for k in 10_000..20_000 {
        cache.insert(k, k);
    }
    let kept = (0..500).filter(|k| cache.contains(k)).count();
    assert!(
        kept >= 450,
        "only {kept} of 500 popular keys survived the scan"
    );
    let lru: tierkit_cache::ConcurrentCache<u64, u64, tierkit_cache::LruCache<u64, u64>> =
        tierkit_cache::ConcurrentCache::with_builder(&CacheBuilder::new(1_000).shards(1)).unwrap();
    for k in (0..500).chain(10_000..20_000) {
        lru.insert(k, k);
    }
    assert_eq!(
        (0..500).filter(|k| lru.contains(k)).count(),
        0,
        "LRU loses them all"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// With a weigher (weights up to the whole capacity, values replaced with other weights),
    /// the cache never holds more than its capacity, its weight is the sum of what it holds,
    /// every held value is the last one inserted, and a replaced entry is never evicted to make
    /// room for itself.
    #[test]
    fn weighted_tinylfu_keeps_its_books(
        capacity in 1u64..40,
        ops in prop::collection::vec((0u8..16, 0u32..45, any::<bool>()), 1..300),
    ) {
        let mut cache: TinyLfuCache<u8, u32, Fixed> = CacheBuilder::new(capacity)
            .hasher(Fixed::default())
            .weigher(|_k: &u8, v: &u32| u64::from(*v))
            .build()
            .unwrap();
        let mut last: HashMap<u8, u32> = HashMap::new();
        for (k, v, read) in ops {
            if read {
                if let Some(got) = cache.get(&k) {
                    prop_assert_eq!(Some(got), last.get(&k));
                }
            } else {
                cache.insert(k, v);
                last.insert(k, v);
                if u64::from(v) <= capacity {
                    prop_assert_eq!(cache.peek(&k), Some(&v), "a fitting entry is kept");
                }
            }
            let held: Vec<(u8, u32)> = cache.iter().map(|(k, v)| (*k, *v)).collect();
            let weight: u64 = held.iter().map(|(_, v)| u64::from(*v)).sum();
            prop_assert_eq!(weight, cache.weight());
            prop_assert!(weight <= capacity);
            prop_assert_eq!(held.len(), cache.len());
            for (k, v) in held {
                prop_assert_eq!(last.get(&k), Some(&v));
            }
        }
    }
}
