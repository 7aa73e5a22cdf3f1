//! `ConcurrentCache`: sharding, capacity rounding, invalidation and a multi-thread stress test.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::Duration;

use tierkit_cache::{
    CacheBuilder, ConcurrentCache, Error, LfuCache, LruCache, ManualClock, RemovalCause,
    S3FifoCache,
};

type Lru<K, V> = ConcurrentCache<K, V, LruCache<K, V>>;

fn assert_send_sync<T: Send + Sync>() {}

#[test]
fn shared_types_are_send_and_sync() {
    assert_send_sync::<Lru<String, Vec<u8>>>();
    assert_send_sync::<ConcurrentCache<u64, Arc<str>, S3FifoCache<u64, Arc<str>>>>();
    assert_send_sync::<tierkit_cache::LoadError<std::io::Error>>();
    assert_send_sync::<tierkit_cache::CoarseClock>();
    assert_send_sync::<tierkit_cache::LoadOutcome>();
    assert_send_sync::<tierkit_cache::FastHashBuilder>();
}

#[test]
fn basic_operations() {
    let cache: Lru<&str, i32> = ConcurrentCache::new(100).unwrap();
    assert!(cache.is_empty());
    assert_eq!(cache.insert("a", 1), None);
    assert_eq!(cache.insert("a", 2), Some(1));
    assert_eq!(cache.get(&"a"), Some(2));
    assert_eq!(cache.get_map(&"a", |v| v * 10), Some(20));
    assert_eq!(cache.peek(&"a"), Some(2));
    assert!(cache.contains(&"a"));
    assert_eq!(cache.get(&"b"), None);
    assert_eq!(cache.len(), 1);
    assert_eq!(cache.weight(), 1);
    assert_eq!(cache.remove(&"a"), Some(2));
    assert_eq!(cache.remove(&"a"), None);
    let s = cache.stats();
    assert_eq!(
        (s.hits, s.misses, s.inserts, s.updates, s.removals),
        (2, 1, 1, 1, 1)
    );
    assert!(format!("{cache:?}").starts_with("ConcurrentCache"));
}

#[test]
fn lookups_can_go_uncounted() {
    let builder = CacheBuilder::new(100).count_lookups(false);
    let cache: Lru<u32, u32> = ConcurrentCache::with_builder(&builder).unwrap();
    cache.insert(1, 1);
    assert_eq!(cache.get(&1), Some(1));
    assert_eq!(cache.get(&2), None);
    let s = cache.stats();
    assert_eq!((s.hits, s.misses, s.inserts), (0, 0, 1));
    // LFU hits take the exclusive path, where the policy counts them: still reported as zero.
    let lfu: ConcurrentCache<u32, u32, LfuCache<u32, u32>> =
        ConcurrentCache::with_builder(&builder).unwrap();
    lfu.insert(1, 1);
    assert_eq!(lfu.get(&1), Some(1));
    assert_eq!(lfu.stats().hits, 0);
    assert!(format!("{builder:?}").contains("count_lookups: false"));
}

#[test]
fn borrowed_lookups() {
    let cache: Lru<String, u32> = ConcurrentCache::new(10).unwrap();
    cache.insert("key".to_string(), 1);
    assert_eq!(cache.get("key"), Some(1));
    cache.invalidate("key");
    assert!(!cache.contains("key"));
}

#[test]
fn zero_capacity_and_zero_shards_are_errors() {
    assert_eq!(Lru::<u32, u32>::new(0).unwrap_err(), Error::ZeroCapacity);
    let err = Lru::<u32, u32>::with_builder(&CacheBuilder::new(10).shards(0)).unwrap_err();
    assert_eq!(err, Error::ZeroShards);
}

#[test]
fn capacity_is_divided_with_ceiling() {
    let cache: Lru<u32, u32> =
        ConcurrentCache::with_builder(&CacheBuilder::new(10).shards(4)).unwrap();
    assert_eq!(cache.shard_count(), 4);
    assert_eq!(cache.capacity(), 12); // 4 x ceil(10 / 4)
    let cache: Lru<u32, u32> =
        ConcurrentCache::with_builder(&CacheBuilder::new(2).shards(8)).unwrap();
    assert_eq!(cache.capacity(), 8); // at least 1 per shard
    // The default shard count never leaves a shard without capacity.
    let cache: Lru<u32, u32> = ConcurrentCache::new(3).unwrap();
    assert!(cache.shard_count() <= 3 && cache.shard_count().is_power_of_two());
    assert!(cache.capacity() >= 3);
}

/// A hit saves the entry from the next eviction (see also the marking model below).
#[test]
fn single_shard_hit_saves_the_entry() {
    let cache: Lru<u32, u32> =
        ConcurrentCache::with_builder(&CacheBuilder::new(2).shards(1)).unwrap();
    cache.insert(1, 1);
    cache.insert(2, 2);
    cache.get(&1);
    cache.insert(3, 3);
    assert!(cache.contains(&1) && !cache.contains(&2) && cache.contains(&3));
    assert_eq!(cache.stats().evictions, 1);
}

#[test]
fn keys_spread_over_shards() {
    let cache: Lru<u32, u32> =
        ConcurrentCache::with_builder(&CacheBuilder::new(100_000).shards(16)).unwrap();
    for k in 0..16_000 {
        cache.insert(k, k);
    }
    assert_eq!(cache.len(), 16_000);
    let mut seen = 0;
    cache.for_each(|_, _| seen += 1);
    assert_eq!(seen, 16_000);
    // Shard capacity is 6250: an even spread evicts nothing.
    assert_eq!(cache.stats().evictions, 0);
}

#[test]
fn ttl_and_purge_use_the_builder_clock() {
    let clock = ManualClock::new();
    let cache: Lru<u32, u32> =
        ConcurrentCache::with_builder(&CacheBuilder::new(100).clock(clock.clone()).shards(4))
            .unwrap();
    cache.insert_with_ttl(1, 1, Duration::from_secs(5));
    cache.insert(2, 2);
    clock.advance(Duration::from_secs(6));
    assert_eq!(cache.get(&1), None);
    cache.insert_with_ttl(3, 3, Duration::from_secs(1));
    clock.advance(Duration::from_secs(2));
    assert_eq!(cache.purge_expired(), 1);
    assert_eq!(cache.len(), 1);
}

#[test]
fn invalidation_and_snapshot() {
    let removed = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&removed);
    let builder =
        CacheBuilder::new(1000)
            .shards(8)
            .removal_listener(move |_: &u32, _: &u32, cause| {
                if cause == RemovalCause::Removed {
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            });
    let cache: Lru<u32, u32> = ConcurrentCache::with_builder(&builder).unwrap();
    for k in 0..100 {
        cache.insert(k, k * 2);
    }
    assert_eq!(cache.invalidate_if(|k, _| k % 2 == 0), 50);
    assert_eq!(cache.len(), 50);
    let mut snap = cache.snapshot();
    snap.sort_unstable();
    assert_eq!(snap.first(), Some(&(1, 2)));
    assert!(snap.iter().all(|(k, v)| k % 2 == 1 && *v == k * 2));
    cache.invalidate(&1);
    assert!(!cache.contains(&1));
    cache.invalidate_all();
    assert!(cache.is_empty());
    assert_eq!(removed.load(Ordering::Relaxed), 100);
    assert_eq!(cache.stats().removals, 100);
}

#[test]
fn works_over_every_policy() {
    fn exercise<P: tierkit_cache::CachePolicy<u32, u32>>() {
        let cache: ConcurrentCache<u32, u32, P> =
            ConcurrentCache::with_builder(&CacheBuilder::new(64).shards(4)).unwrap();
        for k in 0..1000 {
            cache.insert(k, k);
            let _ = cache.get(&(k / 2));
        }
        assert!(cache.len() <= 64);
        assert_eq!(cache.capacity(), 64);
    }
    exercise::<LruCache<u32, u32>>();
    exercise::<LfuCache<u32, u32>>();
    exercise::<tierkit_cache::FifoCache<u32, u32>>();
    exercise::<S3FifoCache<u32, u32>>();
}

fn stress<P>()
where
    P: tierkit_cache::CachePolicy<u64, u64> + Send + Sync + 'static,
{
    const THREADS: u64 = 8;
    const OPS: u64 = 20_000;
    let cache: Arc<ConcurrentCache<u64, u64, P>> =
        Arc::new(ConcurrentCache::with_builder(&CacheBuilder::new(500).shards(8)).unwrap());
    let gets = Arc::new(AtomicU64::new(0));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let cache = Arc::clone(&cache);
            let gets = Arc::clone(&gets);
            thread::spawn(move || {
                let mut x = t.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
                for _ in 0..OPS {
                    // xorshift: a cheap deterministic key stream per thread.
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let key = x % 2000;
                    match x % 10 {
                        0..=4 => {
                            gets.fetch_add(1, Ordering::Relaxed);
                            if let Some(v) = cache.get(&key) {
                                assert_eq!(v % 2000, key, "a value under the wrong key");
                            }
                        }
                        5..=7 => {
                            cache.insert(key, key + 2000 * (x % 5));
                        }
                        8 => {
                            cache.remove(&key);
                        }
                        _ => {
                            let _ = cache.peek(&key);
                            let _ = cache.len();
                        }
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert!(cache.len() as u64 <= cache.capacity());
    assert!(cache.capacity() < 500 + 8);
    let stats = cache.stats();
    assert_eq!(stats.hits + stats.misses, gets.load(Ordering::Relaxed));
    // Every entry that went in is either still there or left for a counted reason.
    let left = stats.evictions + stats.removals + stats.expirations;
    assert_eq!(stats.inserts, cache.len() as u64 + left);
}

#[test]
fn stress_lru() {
    stress::<LruCache<u64, u64>>();
}

#[test]
fn stress_s3fifo() {
    stress::<S3FifoCache<u64, u64>>();
}

mod model {
    use std::collections::{HashMap, VecDeque};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use proptest::prelude::*;
    use tierkit_cache::{
        CacheBuilder, CachePolicy, CacheStats, ConcurrentCache, FifoCache, LfuCache, LruCache,
        ManualClock, RemovalCause, S3FifoCache,
    };

    use crate::model::TestExpiry;

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u8, u32),
        TryInsert(u8, u32),
        /// Milliseconds (no-op for the caches without deadlines).
        Advance(u64),
        Get(u8),
        Peek(u8),
        Remove(u8),
        InvalidateOdd,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0..24u8, any::<u32>()).prop_map(|(k, v)| Op::Insert(k, v)),
            1 => (0..24u8, any::<u32>()).prop_map(|(k, v)| Op::TryInsert(k, v)),
            1 => (0..4u64).prop_map(Op::Advance),
            4 => (0..24u8).prop_map(Op::Get),
            1 => (0..24u8).prop_map(Op::Peek),
            2 => (0..24u8).prop_map(Op::Remove),
            1 => Just(Op::InvalidateOdd),
        ]
    }

    fn config() -> ProptestConfig {
        // No regression files: this module may not write next to the shared test sources.
        ProptestConfig {
            cases: 128,
            failure_persistence: None,
            ..ProptestConfig::default()
        }
    }

    proptest! {
        #![proptest_config(config())]

        /// With room for every key, a sharded cache behaves exactly like a map.
        #[test]
        fn sharded_matches_a_map(shards in 1..9usize, ops in proptest::collection::vec(op(), 1..120)) {
            let cache: ConcurrentCache<u8, u32, LruCache<u8, u32>> =
                ConcurrentCache::with_builder(&CacheBuilder::new(1024).shards(shards)).unwrap();
            let mut model = HashMap::new();
            for op in ops {
                match op {
                    Op::Insert(k, v) => prop_assert_eq!(cache.insert(k, v), model.insert(k, v)),
                    Op::TryInsert(k, v) => prop_assert_eq!(cache.try_insert(k, v).ok(), Some(model.insert(k, v))),
                    Op::Advance(_) => {}
                    Op::Get(k) => prop_assert_eq!(cache.get(&k), model.get(&k).copied()),
                    Op::Peek(k) => prop_assert_eq!(cache.peek(&k), model.get(&k).copied()),
                    Op::Remove(k) => prop_assert_eq!(cache.remove(&k), model.remove(&k)),
                    Op::InvalidateOdd => {
                        let before = model.len();
                        model.retain(|k, _| k % 2 == 0);
                        prop_assert_eq!(cache.invalidate_if(|k, _| k % 2 == 1), before - model.len());
                    }
                }
                prop_assert_eq!(cache.len(), model.len());
            }
            let mut snap = cache.snapshot();
            snap.sort_unstable();
            let mut expect: Vec<_> = model.into_iter().collect();
            expect.sort_unstable();
            prop_assert_eq!(snap, expect);
        }

        /// One shard is the policy itself: same answers, same evictions, same stats, same
        /// removal events in the same order (reported after the lock instead of inside the
        /// operation), with time-to-live, time-to-idle and a per-entry `Expiry` (FIFO and LFU
        /// record hits exactly; S3-FIFO's shared-lock hit is exact without a racing reader).
        #[test]
        fn one_shard_matches_the_policy(
            capacity in 1..8u64,
            lifetimes in (prop::option::of(1..5u64), prop::option::of(1..5u64), any::<bool>()),
            ops in proptest::collection::vec(op(), 1..120),
        ) {
            one_shard::<FifoCache<u8, u32>>(capacity, lifetimes, &ops)?;
            one_shard::<S3FifoCache<u8, u32>>(capacity, lifetimes, &ops)?;
            one_shard::<LfuCache<u8, u32>>(capacity, lifetimes, &ops)?;
        }

        /// One shard of LRU is the documented approximation: hits mark, eviction gives a marked
        /// back entry a second chance at the front (CLOCK); inserts move to the front exactly.
        #[test]
        fn one_shard_lru_matches_the_marking_model(capacity in 1..8u64, ops in proptest::collection::vec(op(), 1..120)) {
            let cache: ConcurrentCache<u8, u32, LruCache<u8, u32>> =
                ConcurrentCache::with_builder(&CacheBuilder::new(capacity).shards(1)).unwrap();
            let mut model = MarkingLru::new(capacity);
            for op in ops {
                match op {
                    Op::Insert(k, v) => prop_assert_eq!(cache.insert(k, v), model.insert(k, v)),
                    Op::TryInsert(k, v) => prop_assert_eq!(cache.try_insert(k, v).ok(), Some(model.insert(k, v))),
                    Op::Advance(_) => {}
                    Op::Get(k) => prop_assert_eq!(cache.get(&k), model.get(k)),
                    Op::Peek(k) => prop_assert_eq!(cache.peek(&k), model.peek(k)),
                    Op::Remove(k) => prop_assert_eq!(cache.remove(&k), model.remove(k)),
                    Op::InvalidateOdd => {
                        let before = model.order.len();
                        model.order.retain(|e| e.0 % 2 == 0);
                        let removed = before - model.order.len();
                        model.stats.removals += removed as u64;
                        prop_assert_eq!(cache.invalidate_if(|k, _| k % 2 == 1), removed);
                    }
                }
                let mut want: Vec<(u8, u32)> = model.order.iter().map(|e| (e.0, e.1)).collect();
                want.sort_unstable();
                let mut got = cache.snapshot();
                got.sort_unstable();
                prop_assert_eq!(got, want);
                let s = cache.stats();
                prop_assert_eq!(
                    (s.hits, s.misses, s.inserts, s.updates, s.evictions, s.removals),
                    (model.stats.hits, model.stats.misses, model.stats.inserts, model.stats.updates, model.stats.evictions, model.stats.removals)
                );
            }
        }
    }

    type Events = Arc<Mutex<Vec<(u8, u32, RemovalCause)>>>;

    /// A builder on `clock` with the lifetimes `(ttl ms, tti ms, with the test Expiry)` and a
    /// listener recording into `events`.
    fn builder(
        capacity: u64,
        (ttl, tti, expiry): (Option<u64>, Option<u64>, bool),
        clock: &ManualClock,
        events: &Events,
    ) -> CacheBuilder<u8, u32> {
        let sink = Arc::clone(events);
        let mut b = CacheBuilder::new(capacity)
            .shards(1)
            .clock(clock.clone())
            .removal_listener(move |k: &u8, v: &u32, c| sink.lock().unwrap().push((*k, *v, c)));
        if let Some(ttl) = ttl {
            b = b.time_to_live(Duration::from_millis(ttl));
        }
        if let Some(tti) = tti {
            b = b.time_to_idle(Duration::from_millis(tti));
        }
        if expiry {
            b = b.expire_after(TestExpiry);
        }
        b
    }

    fn one_shard<P>(
        capacity: u64,
        lifetimes: (Option<u64>, Option<u64>, bool),
        ops: &[Op],
    ) -> Result<(), TestCaseError>
    where
        P: CachePolicy<u8, u32> + Send + Sync,
    {
        let clock = ManualClock::new();
        let (ours, theirs): (Events, Events) = Default::default();
        let cache: ConcurrentCache<u8, u32, P> =
            ConcurrentCache::with_builder(&builder(capacity, lifetimes, &clock, &ours)).unwrap();
        let mut single: P = builder(capacity, lifetimes, &clock, &theirs)
            .build()
            .unwrap();
        for op in ops {
            match *op {
                Op::Insert(k, v) => prop_assert_eq!(cache.insert(k, v), single.insert(k, v)),
                Op::TryInsert(k, v) => prop_assert_eq!(
                    cache.try_insert(k, v).map_err(|r| r.into_inner()),
                    single.try_insert(k, v).map_err(|r| r.into_inner())
                ),
                Op::Advance(ms) => clock.advance(Duration::from_millis(ms)),
                Op::Get(k) => prop_assert_eq!(cache.get(&k), single.get(&k).copied()),
                Op::Peek(k) => prop_assert_eq!(cache.peek(&k), single.peek(&k).copied()),
                Op::Remove(k) => prop_assert_eq!(cache.remove(&k), single.remove(&k)),
                Op::InvalidateOdd => {
                    let odd: Vec<u8> = single
                        .iter()
                        .map(|(k, _)| *k)
                        .filter(|k| k % 2 == 1)
                        .collect();
                    for k in &odd {
                        single.remove(k);
                    }
                    prop_assert_eq!(cache.invalidate_if(|k, _| k % 2 == 1), odd.len());
                }
            }
            prop_assert_eq!(cache.len(), single.len());
            prop_assert_eq!(cache.stats(), single.stats());
            prop_assert_eq!(
                std::mem::take(&mut *ours.lock().unwrap()),
                std::mem::take(&mut *theirs.lock().unwrap()),
                "removal events after {:?}",
                op
            );
            let mut got = cache.snapshot();
            let mut want: Vec<(u8, u32)> = single.iter().map(|(k, v)| (*k, *v)).collect();
            got.sort_unstable();
            want.sort_unstable();
            prop_assert_eq!(got, want);
        }
        Ok(())
    }

    /// The reference for a one-shard `ConcurrentCache<LruCache>`: a recency list (front = most
    /// recently moved) whose entries a hit marks; the eviction end skips marked entries by moving
    /// them to the front, unmarked.
    struct MarkingLru {
        capacity: usize,
        /// `(key, value, marked)`, front first.
        order: VecDeque<(u8, u32, bool)>,
        stats: CacheStats,
    }

    impl MarkingLru {
        fn new(capacity: u64) -> Self {
            Self {
                capacity: usize::try_from(capacity).unwrap(),
                order: VecDeque::new(),
                stats: CacheStats::default(),
            }
        }

        fn pos(&self, k: u8) -> Option<usize> {
            self.order.iter().position(|e| e.0 == k)
        }

        fn get(&mut self, k: u8) -> Option<u32> {
            let Some(i) = self.pos(k) else {
                self.stats.misses += 1;
                return None;
            };
            self.stats.hits += 1;
            self.order[i].2 = true;
            Some(self.order[i].1)
        }

        fn peek(&self, k: u8) -> Option<u32> {
            self.pos(k).map(|i| self.order[i].1)
        }

        fn remove(&mut self, k: u8) -> Option<u32> {
            let i = self.pos(k)?;
            self.stats.removals += 1;
            self.order.remove(i).map(|e| e.1)
        }

        fn insert(&mut self, k: u8, v: u32) -> Option<u32> {
            if let Some(i) = self.pos(k) {
                let (_, old, _) = self.order.remove(i).unwrap();
                self.order.push_front((k, v, false));
                self.stats.updates += 1;
                return Some(old);
            }
            while self.order.len() >= self.capacity {
                let (bk, bv, marked) = self.order.pop_back().unwrap();
                if marked {
                    self.order.push_front((bk, bv, false));
                } else {
                    self.stats.evictions += 1;
                }
            }
            self.order.push_front((k, v, false));
            self.stats.inserts += 1;
            None
        }
    }
}

#[test]
fn a_hit_allocates_nothing() {
    let cache: Lru<u64, u64> = ConcurrentCache::new(1000).unwrap();
    for k in 0..100 {
        cache.insert(k, k);
    }
    let before = tierkit_testkit::allocations_by_this_thread();
    let mut sum = 0;
    for k in 0..100 {
        sum += cache.get(&k).unwrap();
    }
    assert_eq!(tierkit_testkit::allocations_by_this_thread(), before);
    assert_eq!(sum, 4950);
}

/// A removal listener that takes its time holds no lock: while it waits, every key (of its own
/// shard too) is still served. (Before listeners ran after unlock, the listener held its
/// shard's write lock and half of these lookups waited for it.)
#[test]
fn a_slow_listener_blocks_no_lookup() {
    use std::sync::atomic::AtomicBool;
    let release = Arc::new(AtomicBool::new(false));
    let entered = Arc::new(AtomicBool::new(false));
    let (r, e) = (Arc::clone(&release), Arc::clone(&entered));
    let builder = CacheBuilder::new(1000)
        .shards(2)
        .removal_listener(move |k: &u64, _: &u64, _| {
            if *k == 0 {
                e.store(true, Ordering::SeqCst);
                while !r.load(Ordering::SeqCst) {
                    thread::yield_now();
                }
            }
        });
    let cache: Arc<Lru<u64, u64>> = Arc::new(ConcurrentCache::with_builder(&builder).unwrap());
    for k in 0..32 {
        cache.insert(k, k);
    }
    let blocker = {
        let cache = Arc::clone(&cache);
        thread::spawn(move || cache.remove(&0))
    };
    while !entered.load(Ordering::SeqCst) {
        thread::yield_now();
    }
    let served = Arc::new(AtomicU64::new(0));
    let readers: Vec<_> = (1..32)
        .map(|k| {
            let (cache, served) = (Arc::clone(&cache), Arc::clone(&served));
            thread::spawn(move || {
                assert_eq!(cache.get(&k), Some(k));
                served.fetch_add(1, Ordering::SeqCst);
            })
        })
        .collect();
    // Every lookup completes while the listener is still running (the bound only turns a
    // blocked lookup into a failure instead of a hang).
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while served.load(Ordering::SeqCst) < 31 && std::time::Instant::now() < deadline {
        thread::yield_now();
    }
    let during = served.load(Ordering::SeqCst);
    assert_eq!(during, 31, "{during} of 31 served while the listener ran");
    release.store(true, Ordering::SeqCst);
    assert_eq!(blocker.join().unwrap(), Some(0));
    for r in readers {
        r.join().unwrap();
    }
    assert_eq!(served.load(Ordering::SeqCst), 31);
}
