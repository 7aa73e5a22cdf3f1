//! No user code under a lock: listeners, weighers and the drop of removed values run after the
//! cache's bookkeeping (and, in a `ConcurrentCache`, after the shard lock is released). A
//! listener may call back into the cache; a listener or weigher that panics leaves every count
//! right.
//!
//! Tests that would deadlock without the fix run on a helper thread and fail (instead of hanging)
//! when it does not answer within a generous bound.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::thread;
use std::time::Duration;

use tierkit_cache::{
    Cache, CacheBuilder, ConcurrentCache, LruCache, RemovalCause, S3FifoCache, policy,
};

/// Runs `f` on another thread; fails if it has not finished in 60 s (a deadlock), or panicked.
fn without_deadlock(what: &str, f: impl FnOnce() + Send + 'static) {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        f();
        let _ = tx.send(());
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(()) => {}
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("{what}: deadlocked (no answer in 60 s)"),
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("{what}: the thread panicked"),
    }
}

type Shared = ConcurrentCache<u32, u32, LruCache<u32, u32>>;

/// A listener that reads and writes the cache it listens to (one shard: every call needs the
/// very lock the removal happened under).
#[test]
fn a_listener_may_call_back_into_the_cache() {
    without_deadlock("re-entrant listener", || {
        let slot: Arc<OnceLock<Shared>> = Arc::default();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (slot2, seen2) = (Arc::clone(&slot), Arc::clone(&seen));
        let once = AtomicBool::new(true);
        let cache: Shared = ConcurrentCache::builder()
            .max_capacity(2)
            .shards(1)
            .policy(policy::Lru)
            .removal_listener(move |k: &u32, v: &u32, cause| {
                let cache = slot2.get().expect("set before use");
                // Reads, and a write that itself evicts (reported in turn, also after unlock).
                let len = cache.len();
                seen2.lock().unwrap().push((*k, *v, cause, len));
                if cause == RemovalCause::Evicted && once.swap(false, Ordering::SeqCst) {
                    cache.insert(*k + 100, *v); // evicts again, reported in turn
                }
            })
            .build()
            .unwrap();
        assert!(slot.set(cache.clone()).is_ok());
        cache.insert(1, 10);
        cache.insert(2, 20);
        cache.insert(3, 30); // evicts 1; the listener inserts 101, which evicts 2
        assert_eq!(cache.remove(&3), Some(30));
        cache.clear();
        let seen = seen.lock().unwrap();
        assert!(
            seen.contains(&(1, 10, RemovalCause::Evicted, 2)),
            "{seen:?}"
        );
        assert!(
            seen.contains(&(2, 20, RemovalCause::Evicted, 2)),
            "{seen:?}"
        );
        assert!(
            seen.iter()
                .any(|e| e.0 == 3 && e.2 == RemovalCause::Removed)
        );
        assert!(cache.is_empty());
    });
}

/// A value whose drop reads the cache: values leave the shard lock before they are dropped.
#[test]
fn removed_values_drop_outside_the_lock() {
    struct Probe {
        cache: Arc<OnceLock<ConcurrentCache<u32, Arc<Probe>>>>,
        dropped: Arc<AtomicUsize>,
    }
    impl Drop for Probe {
        fn drop(&mut self) {
            if let Some(cache) = self.cache.get() {
                let _ = cache.len(); // needs every shard's lock
                let _ = cache.get(&0);
            }
            self.dropped.fetch_add(1, Ordering::SeqCst);
        }
    }
    without_deadlock("drop of an evicted value", || {
        let slot: Arc<OnceLock<ConcurrentCache<u32, Arc<Probe>>>> = Arc::default();
        let dropped = Arc::new(AtomicUsize::new(0));
        let cache = ConcurrentCache::builder()
            .max_capacity(2)
            .shards(1)
            .build()
            .unwrap();
        assert!(slot.set(cache.clone()).is_ok());
        let probe = || {
            Arc::new(Probe {
                cache: Arc::clone(&slot),
                dropped: Arc::clone(&dropped),
            })
        };
        for k in 0..6 {
            cache.insert(k, probe()); // evictions from the third on
        }
        drop(cache.insert(5, probe())); // replaced: handed back, dropped here
        cache.invalidate(&4);
        cache.invalidate_if(|_, _| true);
        assert_eq!(dropped.load(Ordering::SeqCst), 7);
    });
}

/// A listener that panics on a replacement: the panic reaches the caller, and the weight
/// (subtracted for the old value, added for the new one) is still right. Before the fix the
/// listener ran between the two, so the new weight was never added.
#[test]
fn a_panicking_listener_leaves_weights_right() {
    fn check<C: Fn() -> (u64, u64, usize)>(what: &str, state: C, expected: u64) {
        let (weight, sum, len) = state();
        assert_eq!(weight, sum, "{what}: weight vs contents");
        assert_eq!(weight, expected, "{what}: weight");
        assert_eq!(len, 2, "{what}: len");
    }
    let angry = |_: &u32, _: &Vec<u8>, cause| {
        if cause == RemovalCause::Replaced {
            panic!("listener exploded");
        }
    };
    let weigher = |_: &u32, v: &Vec<u8>| v.len() as u64;

    let shared: ConcurrentCache<u32, Vec<u8>> = ConcurrentCache::builder()
        .max_capacity(100)
        .shards(1)
        .weigher(weigher)
        .removal_listener(angry)
        .build()
        .unwrap();
    shared.insert(1, vec![0; 10]);
    shared.insert(2, vec![0; 20]);
    let r = catch_unwind(AssertUnwindSafe(|| shared.insert(1, vec![0; 30])));
    assert!(r.is_err(), "the listener's panic reaches the caller");
    let state = || {
        let sum = shared.snapshot().iter().map(|(_, v)| v.len() as u64).sum();
        (shared.weight(), sum, shared.len())
    };
    check("ConcurrentCache", state, 50);
    assert_eq!(shared.get(&1).map(|v| v.len()), Some(30));
    // The shard is still usable: nothing is poisoned or stuck.
    shared.insert(3, vec![0; 5]);
    assert_eq!(shared.weight(), 55);

    let mut single: S3FifoCache<u32, Vec<u8>> = CacheBuilder::new(100)
        .weigher(weigher)
        .removal_listener(angry)
        .build()
        .unwrap();
    single.insert(1, vec![0; 10]);
    single.insert(2, vec![0; 20]);
    let r = catch_unwind(AssertUnwindSafe(|| single.insert(1, vec![0; 30])));
    assert!(r.is_err());
    let sum = single.iter().map(|(_, v)| v.len() as u64).sum();
    check("S3FifoCache", || (single.weight(), sum, single.len()), 50);
}

/// A listener that panics on the first of several evictions: the cache is consistent, the rest
/// are dropped unreported, and later operations report normally.
#[test]
fn a_listener_panicking_mid_batch_loses_nothing_but_reports() {
    let calls = Arc::new(AtomicUsize::new(0));
    let armed = Arc::new(AtomicBool::new(true));
    let (c, a) = (Arc::clone(&calls), Arc::clone(&armed));
    let cache: ConcurrentCache<u32, Vec<u8>> = ConcurrentCache::builder()
        .max_capacity(30)
        .shards(1)
        .weigher(|_: &u32, v: &Vec<u8>| v.len() as u64)
        .removal_listener(move |_: &u32, _: &Vec<u8>, _| {
            c.fetch_add(1, Ordering::SeqCst);
            assert!(!a.swap(false, Ordering::SeqCst), "first report explodes");
        })
        .build()
        .unwrap();
    for k in 0..3 {
        cache.insert(k, vec![0; 10]);
    }
    // Needs all 30: evicts three entries in one operation.
    let r = catch_unwind(AssertUnwindSafe(|| cache.insert(9, vec![0; 30])));
    assert!(r.is_err());
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!((cache.len(), cache.weight()), (1, 30));
    assert_eq!(cache.stats().evictions, 3);
    cache.insert(9, vec![0; 1]);
    assert_eq!(calls.load(Ordering::SeqCst), 2, "reports resume");
    assert_eq!(cache.weight(), 1);
}

/// A weigher that panics: the insert changes nothing.
#[test]
fn a_panicking_weigher_changes_nothing() {
    let weigher = |_: &u32, v: &u32| {
        assert!(*v != 666, "weigher exploded");
        u64::from(*v)
    };
    let shared: ConcurrentCache<u32, u32> = ConcurrentCache::builder()
        .max_capacity(100)
        .shards(1)
        .weigher(weigher)
        .build()
        .unwrap();
    shared.insert(1, 10);
    assert!(catch_unwind(AssertUnwindSafe(|| shared.insert(1, 666))).is_err());
    assert!(catch_unwind(AssertUnwindSafe(|| shared.insert(2, 666))).is_err());
    assert_eq!(
        (shared.len(), shared.weight(), shared.get(&1)),
        (1, 10, Some(10))
    );
    shared.insert(2, 5);
    assert_eq!(shared.weight(), 15);

    let mut single: LruCache<u32, u32> = CacheBuilder::new(100).weigher(weigher).build().unwrap();
    single.insert(1, 10);
    assert!(catch_unwind(AssertUnwindSafe(|| single.insert(1, 666))).is_err());
    assert_eq!(
        (single.len(), single.weight(), single.peek(&1)),
        (1, 10, Some(&10))
    );
}

/// An over-weight insert hands the key and value back and changes nothing; plain `insert`
/// keeps its documented behaviour (the old value replaced, the new one reported `Rejected`).
#[test]
fn rejected_inserts_hand_the_value_back() {
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&events);
    let shared: ConcurrentCache<u32, String> = ConcurrentCache::builder()
        .max_capacity(8)
        .shards(1)
        .weigher(|_: &u32, v: &String| v.len() as u64)
        .removal_listener(move |k: &u32, v: &String, c| {
            sink.lock().unwrap().push((*k, v.clone(), c))
        })
        .build()
        .unwrap();
    shared.insert(1, "small".to_string());
    let rejected = shared
        .try_insert(1, "far too long".to_string())
        .unwrap_err();
    assert_eq!((rejected.weight(), rejected.capacity()), (12, 8));
    assert_eq!(rejected.key(), &1);
    assert_eq!(rejected.into_inner(), (1, "far too long".to_string()));
    assert_eq!(shared.get(&1).as_deref(), Some("small"), "unchanged");
    assert!(
        events.lock().unwrap().is_empty(),
        "nothing reported: the caller has it"
    );
    assert_eq!(shared.stats().rejections, 1);
    assert_eq!(
        shared.try_insert(1, "ok".to_string()).unwrap().as_deref(),
        Some("small")
    );
    let err: tierkit_cache::Error = shared.try_insert(2, "x".repeat(9)).unwrap_err().into();
    assert_eq!(
        err.to_string(),
        "entry of weight 9 exceeds the capacity of 8"
    );

    let mut single: LruCache<u32, String> = CacheBuilder::new(8)
        .weigher(|_: &u32, v: &String| v.len() as u64)
        .build()
        .unwrap();
    single.insert(1, "small".to_string());
    let (k, v) = single
        .try_insert(1, "x".repeat(9))
        .unwrap_err()
        .into_inner();
    assert_eq!((k, v.len()), (1, 9));
    assert_eq!(single.peek(&1).map(String::as_str), Some("small"));
}
