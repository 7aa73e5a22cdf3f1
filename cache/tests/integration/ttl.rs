//! Time-to-live: lazy and proactive expiry, driven by a mock clock.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tierkit_cache::{
    Cache, CacheBuilder, CachePolicy, CoarseClock, ConcurrentCache, Error, FifoCache, LfuCache,
    LruCache, ManualClock, RemovalCause, S3FifoCache,
};

type Events = Arc<Mutex<Vec<(u64, u64, RemovalCause)>>>;

fn build<C: CachePolicy<u64, u64>>(
    capacity: u64,
    ttl: Option<Duration>,
) -> (C, ManualClock, Events) {
    let clock = ManualClock::new();
    let events: Events = Arc::default();
    let sink = Arc::clone(&events);
    let mut builder = CacheBuilder::new(capacity)
        .clock(clock.clone())
        .removal_listener(move |k: &u64, v: &u64, c| sink.lock().unwrap().push((*k, *v, c)));
    if let Some(ttl) = ttl {
        builder = builder.default_ttl(ttl);
    }
    (builder.build().unwrap(), clock, events)
}

fn take(events: &Events) -> Vec<(u64, u64, RemovalCause)> {
    std::mem::take(&mut *events.lock().unwrap())
}

const SEC: Duration = Duration::from_secs(1);

macro_rules! each_policy {
    ($f:ident) => {
        $f::<LruCache<u64, u64>>();
        $f::<FifoCache<u64, u64>>();
        $f::<LfuCache<u64, u64>>();
        $f::<S3FifoCache<u64, u64>>();
    };
}

#[test]
fn zero_ttl_stores_nothing() {
    fn check<C: Cache<u64, u64> + CachePolicy<u64, u64>>() {
        let (mut cache, _clock, events) = build::<C>(4, None);
        assert_eq!(cache.insert_with_ttl(1, 10, Duration::ZERO), None);
        assert!(cache.is_empty());
        cache.insert(2, 20);
        assert_eq!(cache.insert_with_ttl(2, 21, Duration::ZERO), Some(20));
        assert_eq!(cache.peek(&2), None);
        assert!(cache.is_empty());
        assert_eq!(
            take(&events),
            [
                (1, 10, RemovalCause::Expired),
                (2, 20, RemovalCause::Replaced),
                (2, 21, RemovalCause::Expired)
            ]
        );
        let s = cache.stats();
        assert_eq!((s.inserts, s.updates, s.expirations), (1, 1, 2));
    }
    each_policy!(check);
    let err = CacheBuilder::<u64, u64>::new(4)
        .default_ttl(Duration::ZERO)
        .build::<LruCache<_, _>>();
    assert_eq!(err.unwrap_err(), Error::ZeroTtl);
}

#[test]
fn expired_entries_are_never_returned_and_dropped_lazily() {
    fn check<C: Cache<u64, u64> + CachePolicy<u64, u64>>() {
        let (mut cache, clock, events) = build::<C>(4, Some(10 * SEC));
        cache.insert(1, 10);
        cache.insert_with_ttl(2, 20, 5 * SEC);
        clock.advance(5 * SEC);
        // Exactly at the deadline the entry is expired.
        assert_eq!(cache.peek(&2), None);
        assert!(!cache.contains(&2));
        assert_eq!(cache.iter().map(|(k, _)| *k).collect::<Vec<_>>(), [1]);
        assert_eq!(cache.len(), 2, "not purged until a write or a lookup");
        assert!(take(&events).is_empty());
        assert_eq!(cache.get(&2), None);
        assert_eq!(take(&events), [(2, 20, RemovalCause::Expired)]);
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.get(&1), Some(&10));
        clock.advance(5 * SEC);
        assert_eq!(cache.get_mut(&1), None);
        assert_eq!(take(&events), [(1, 10, RemovalCause::Expired)]);
        let s = cache.stats();
        assert_eq!((s.hits, s.misses, s.expirations), (1, 2, 2));
    }
    each_policy!(check);
}

#[test]
fn expired_entries_do_not_hold_capacity_after_the_next_write() {
    fn check<C: Cache<u64, u64> + CachePolicy<u64, u64>>() {
        let (mut cache, clock, events) = build::<C>(3, None);
        cache.insert_with_ttl(1, 10, SEC);
        cache.insert_with_ttl(2, 20, 2 * SEC);
        cache.insert(3, 30);
        clock.advance(2 * SEC);
        cache.insert(4, 40); // drops 1 and 2 first: nothing is evicted
        let mut got = take(&events);
        got.sort_unstable_by_key(|e| e.0);
        assert_eq!(
            got,
            [
                (1, 10, RemovalCause::Expired),
                (2, 20, RemovalCause::Expired)
            ]
        );
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.stats().evictions, 0);

        // `remove` is a write too.
        cache.insert_with_ttl(5, 50, SEC);
        clock.advance(SEC);
        assert_eq!(cache.remove(&3), Some(30));
        assert_eq!(
            take(&events),
            [
                (5, 50, RemovalCause::Expired),
                (3, 30, RemovalCause::Removed)
            ]
        );
        assert_eq!(cache.len(), 1);

        // And `purge_expired` on demand.
        cache.insert_with_ttl(6, 60, SEC);
        clock.advance(SEC);
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.purge_expired(), 1);
        assert_eq!(cache.purge_expired(), 0);
        assert_eq!(cache.len(), 1);
    }
    each_policy!(check);
}

#[test]
fn replacing_restarts_the_ttl() {
    fn check<C: Cache<u64, u64> + CachePolicy<u64, u64>>() {
        let (mut cache, clock, _events) = build::<C>(4, Some(10 * SEC));
        cache.insert(1, 10);
        clock.advance(8 * SEC);
        cache.insert(1, 11);
        clock.advance(8 * SEC);
        assert_eq!(cache.get(&1), Some(&11));
        // A per-entry TTL overrides the default, and a later plain insert restores it.
        cache.insert_with_ttl(1, 12, SEC);
        clock.advance(SEC);
        assert_eq!(cache.get(&1), None);
    }
    each_policy!(check);
}

#[test]
fn absurd_ttls_do_not_panic() {
    fn check<C: Cache<u64, u64> + CachePolicy<u64, u64>>() {
        let (mut cache, clock, _events) = build::<C>(4, Some(Duration::MAX));
        cache.insert(1, 1);
        cache.insert_with_ttl(2, 2, Duration::MAX);
        cache.insert_with_ttl(3, 3, Duration::from_nanos(1));
        clock.advance(Duration::from_secs(1 << 40));
        assert_eq!(cache.get(&1), Some(&1));
        assert_eq!(cache.get(&2), Some(&2));
        assert_eq!(cache.get(&3), None);
        cache.insert(4, 4);
        assert_eq!(cache.len(), 3);
    }
    each_policy!(check);
}

#[test]
fn clear_reports_every_entry_as_removed() {
    let (mut cache, clock, events) = build::<LruCache<u64, u64>>(4, None);
    cache.insert_with_ttl(1, 10, SEC);
    cache.insert(2, 20);
    clock.advance(SEC);
    cache.clear();
    let mut got = take(&events);
    got.sort_unstable_by_key(|e| e.0);
    let want = [
        (1, 10, RemovalCause::Removed),
        (2, 20, RemovalCause::Removed),
    ];
    assert_eq!(got, want);
    assert!(cache.is_empty());
    assert_eq!(cache.stats().removals, 2);
}

/// Many distinct deadlines, from nanoseconds to hours: after every write, exactly the live
/// entries remain (the expiry queue drains precisely).
#[test]
fn assorted_ttls_expire_exactly_on_writes() {
    let (mut cache, clock, _events) = build::<LruCache<u64, u64>>(100_000, None);
    let mut deadlines = std::collections::HashMap::new();
    let mut now: u128 = 0;
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut rand = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for k in 0..20_000u64 {
        let ttl = Duration::from_nanos(1 + rand() % (1 << (rand() % 42)));
        cache.insert_with_ttl(k, k, ttl);
        deadlines.insert(k, now + ttl.as_nanos());
        let step = Duration::from_nanos(rand() % (1 << (rand() % 30)));
        clock.advance(step);
        now += step.as_nanos();
        if k % 97 == 0 {
            cache.insert(u64::MAX, 0); // a write with no TTL
            deadlines.insert(u64::MAX, u128::MAX);
            let live = deadlines.values().filter(|d| **d > now).count();
            assert_eq!(cache.len(), live, "after write {k}");
            assert_eq!(cache.iter().count(), live);
        }
    }
}

/// On the real `CoarseClock` deadlines and lookups read the same lagging time, so an entry with a
/// time-to-live far above a tick is live right after its insert, whatever the ticker is doing,
/// and a zero time-to-live is never stored. (The lagging semantics themselves are pinned by the
/// model tests' `TickedClock`.)
#[test]
fn coarse_clock_keeps_fresh_entries() {
    fn check<C: Cache<u64, u64> + CachePolicy<u64, u64>>() {
        let mut cache: C = CacheBuilder::new(10)
            .default_ttl(Duration::from_secs(3600))
            .clock(CoarseClock::new())
            .build()
            .unwrap();
        for k in 0..10 {
            cache.insert(k, k);
            assert_eq!(cache.get(&k), Some(&k));
            assert!(cache.contains(&k));
        }
        cache.insert_with_ttl(20, 20, Duration::ZERO);
        assert!(!cache.contains(&20));
        assert_eq!(cache.iter().count(), 10);
        assert_eq!(cache.stats().hits, 10);
    }
    each_policy!(check);

    let shared: ConcurrentCache<u64, u64, LruCache<u64, u64>> = ConcurrentCache::with_builder(
        &CacheBuilder::new(100)
            .default_ttl(Duration::from_secs(60))
            .clock(CoarseClock::new()),
    )
    .unwrap();
    shared.insert(1, 1);
    assert_eq!(shared.get(&1), Some(1));
}
