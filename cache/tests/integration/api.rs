//! The API a moka user reaches for: `ConcurrentCache::builder()`, two-parameter types, a
//! `Clone` handle, time-to-idle and `Expiry` on the shared cache, and async loaders that borrow
//! and run in the caller's task (one load per key, waiters join, errors shared).

use std::cell::Cell;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tierkit_cache::{
    ConcurrentCache, ConcurrentLfu, ConcurrentS3Fifo, Error, Expiry, LoadOutcome, ManualClock,
    policy,
};

#[test]
fn builder_returns_the_cache_with_two_type_parameters() {
    let cache: ConcurrentCache<String, u64> = ConcurrentCache::builder()
        .max_capacity(1_000)
        .time_to_live(Duration::from_secs(60))
        .time_to_idle(Duration::from_secs(10))
        .build()
        .unwrap();
    cache.insert("a".to_string(), 1);
    assert_eq!(cache.get("a"), Some(1));

    let s3: ConcurrentS3Fifo<u64, u64> = ConcurrentCache::builder()
        .max_capacity(1_000)
        .policy(policy::S3Fifo)
        .build()
        .unwrap();
    let lfu: ConcurrentLfu<u64, u64> = ConcurrentCache::builder()
        .max_capacity(1_000)
        .policy(policy::Lfu)
        .shards(2)
        .build()
        .unwrap();
    assert_eq!((s3.capacity() >= 1_000, lfu.shard_count()), (true, 2));

    let missing = ConcurrentCache::<u64, u64>::builder().build();
    assert_eq!(missing.unwrap_err(), Error::ZeroCapacity);
    let zero_idle = ConcurrentCache::<u64, u64>::builder()
        .max_capacity(10)
        .time_to_idle(Duration::ZERO)
        .build();
    assert!(matches!(
        zero_idle,
        Err(Error::InvalidConfig {
            name: "time_to_idle",
            ..
        })
    ));
    // Duration::MAX means "never".
    let forever: ConcurrentCache<u64, u64> = ConcurrentCache::builder()
        .max_capacity(10)
        .time_to_live(Duration::MAX)
        .time_to_idle(Duration::MAX)
        .build()
        .unwrap();
    forever.insert(1, 1);
    assert_eq!(forever.get(&1), Some(1));
}

#[test]
fn clones_are_handles_on_one_cache() {
    let a: ConcurrentCache<u32, u32> = ConcurrentCache::new(100).unwrap();
    let b = a.clone();
    std::thread::spawn(move || b.insert(1, 2)).join().unwrap();
    assert_eq!(a.get(&1), Some(2));
    assert_eq!(a.stats().inserts, 1);
}

#[test]
fn time_to_idle_and_expiry_on_the_shared_cache() {
    struct ByKey;
    impl Expiry<u32, u32> for ByKey {
        fn time_to_live(&self, key: &u32, _: &u32) -> Option<Duration> {
            (*key == 7).then(|| Duration::from_secs(5))
        }
        fn time_to_idle(&self, key: &u32, _: &u32) -> Option<Duration> {
            (*key == 8).then_some(Duration::MAX) // never idles out
        }
    }
    let clock = ManualClock::new();
    let cache: ConcurrentCache<u32, u32> = ConcurrentCache::builder()
        .max_capacity(100)
        .time_to_idle(Duration::from_secs(10))
        .expire_after(ByKey)
        .clock(clock.clone())
        .build()
        .unwrap();
    for k in [1, 2, 7, 8] {
        cache.insert(k, k);
    }
    clock.advance(Duration::from_secs(4));
    assert_eq!(cache.get(&7), Some(7)); // read, but its time-to-live still runs
    assert_eq!(cache.peek(&2), Some(2)); // peek does not restart idleness
    clock.advance(Duration::from_secs(4)); // t = 8
    assert_eq!(cache.get(&1), Some(1)); // idle again from t = 8
    assert_eq!(cache.get(&7), None, "time-to-live of 5 s");
    clock.advance(Duration::from_secs(4)); // t = 12
    assert_eq!(cache.get(&1), Some(1));
    assert_eq!(cache.get(&2), None, "idle since t = 0");
    clock.advance(Duration::from_secs(1_000));
    assert_eq!(cache.get(&8), Some(8), "its Expiry says it never idles out");
    assert_eq!(cache.get(&1), None);
    assert_eq!(cache.stats().expirations, 3);
}

/// Polls `fut` once with a no-op waker.
fn poll_once<F: Future>(fut: std::pin::Pin<&mut F>) -> Poll<F::Output> {
    fut.poll(&mut Context::from_waker(Waker::noop()))
}

/// The loader borrows non-`Send` state of the caller: no `'static`, no `Send`, no runtime.
#[test]
fn async_loaders_borrow_and_need_no_runtime() {
    let cache: ConcurrentCache<u32, String> = ConcurrentCache::new(100).unwrap();
    let loads = Cell::new(0); // not Sync: the future is not Send
    let names = vec!["zero".to_string(), "one".to_string()];
    let load = |id: u32| {
        let (loads, names) = (&loads, &names);
        async move {
            loads.set(loads.get() + 1);
            names[id as usize].clone()
        }
    };
    let Poll::Ready(v) = poll_once(pin!(cache.get_with(1, load(1)))) else {
        panic!("a ready loader completes at once");
    };
    assert_eq!(v, "one");
    let Poll::Ready(v) = poll_once(pin!(cache.get_with(1, load(1)))) else {
        panic!("a hit is ready");
    };
    assert_eq!((v.as_str(), loads.get()), ("one", 1));
    let Poll::Ready(found) = poll_once(pin!(cache.optionally_get_with(5, async { None }))) else {
        panic!("ready");
    };
    assert_eq!(found, None);
    assert!(!cache.contains(&5));
}

/// With a `Send` loader the futures are `Send`: they can be spawned on a multi-threaded runtime.
#[test]
fn async_loader_futures_are_send_when_their_loaders_are() {
    fn assert_send<T: Send>(_: &T) {}
    let cache: ConcurrentCache<u32, String> = ConcurrentCache::new(100).unwrap();
    let name = String::from("borrowed");
    let f = cache.get_with(1, async { name.clone() });
    assert_send(&f);
    let g = cache.try_get_with(2, async { Ok::<_, std::io::Error>(name.clone()) });
    assert_send(&g);
    let h = cache.optionally_get_with(3, async { Some(name.clone()) });
    assert_send(&h);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let shared = cache.clone();
    let v = rt
        .block_on(
            rt.spawn(async move { shared.get_with(4, async { "spawned".to_string() }).await }),
        )
        .unwrap();
    assert_eq!(v, "spawned");
    drop((f, g, h));
}

/// One load per key: the callers that arrive while it runs wait and join it (`Joined`), and an
/// error reaches each of them as the same `Arc`; nothing is cached.
#[test]
fn async_waiters_join_one_load_and_share_its_error() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let cache: ConcurrentCache<u32, u32> = ConcurrentCache::new(100).unwrap();
        let runs = AtomicUsize::new(0);
        let (go, gate) = tokio::sync::oneshot::channel::<()>();
        let leader = cache.try_get_with_outcome(1, async {
            runs.fetch_add(1, Ordering::SeqCst);
            gate.await.unwrap();
            Err::<u32, _>("backend down")
        });
        let other = || async {
            cache
                .try_get_with_outcome(1, async {
                    runs.fetch_add(1, Ordering::SeqCst);
                    Ok::<_, &str>(0)
                })
                .await
        };
        let release = async {
            while cache.load_waiters(&1) < 2 {
                tokio::task::yield_now().await;
            }
            go.send(()).unwrap();
        };
        let (a, b, c, ()) = tokio::join!(leader, other(), other(), release);
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        let (a, b, c) = (a.unwrap_err(), b.unwrap_err(), c.unwrap_err());
        assert!(Arc::ptr_eq(&a, &b) && Arc::ptr_eq(&a, &c));
        assert_eq!(*a, "backend down");
        assert!(!cache.contains(&1));

        // The same with a value: the waiters report `Joined`.
        let (go, gate) = tokio::sync::oneshot::channel::<()>();
        let leader = cache.try_get_with_outcome(2, async {
            gate.await.unwrap();
            Ok::<_, &str>(42)
        });
        let waiter = cache.try_get_with_outcome(2, async { Ok::<_, &str>(0) });
        let release = async {
            while cache.load_waiters(&2) < 1 {
                tokio::task::yield_now().await;
            }
            go.send(()).unwrap();
        };
        let (a, b, ()) = tokio::join!(leader, waiter, release);
        assert_eq!(a.unwrap(), (42, LoadOutcome::Loaded));
        assert_eq!(b.unwrap(), (42, LoadOutcome::Joined));
        assert_eq!(cache.get(&2), Some(42));
    });
}

/// Dropping the leading future abandons its load: a waiter takes over with its own loader.
#[test]
fn a_dropped_async_leader_hands_the_load_over() {
    let cache: ConcurrentCache<u32, u32> = ConcurrentCache::new(100).unwrap();
    let mut leader = Box::pin(cache.get_with(3, std::future::pending()));
    assert!(poll_once(leader.as_mut()).is_pending());
    let mut waiter = Box::pin(cache.get_with(3, async { 33 }));
    assert!(poll_once(waiter.as_mut()).is_pending(), "joined the flight");
    assert_eq!(cache.load_waiters(&3), 1);
    drop(leader);
    assert_eq!(poll_once(waiter.as_mut()), Poll::Ready(33));
    assert_eq!(cache.get(&3), Some(33));
}

fn explode() -> u32 {
    panic!("loader exploded")
}

/// A loader that panics: the panic reaches its caller, the waiter runs its own loader.
#[test]
fn a_panicking_async_loader_does_not_strand_waiters() {
    let cache: ConcurrentCache<u32, u32> = ConcurrentCache::new(100).unwrap();
    let (go, gate) = std::sync::mpsc::channel::<()>();
    let mut leader = Box::pin(cache.get_with(4, async move {
        std::future::poll_fn(|_| {
            if gate.try_recv().is_ok() {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await;
        explode()
    }));
    assert!(poll_once(leader.as_mut()).is_pending());
    let mut waiter = Box::pin(cache.get_with(4, async { 44 }));
    assert!(poll_once(waiter.as_mut()).is_pending());
    go.send(()).unwrap();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| poll_once(leader.as_mut())));
    assert!(r.is_err(), "the panic reaches the leader's caller");
    drop(leader);
    assert_eq!(poll_once(waiter.as_mut()), Poll::Ready(44));
}

/// Blocking and async callers share one flight.
#[test]
fn a_blocking_caller_joins_an_async_load() {
    let cache: ConcurrentCache<u32, u32> = ConcurrentCache::new(100).unwrap();
    let (go, gate) = std::sync::mpsc::channel::<()>();
    let mut leader = Box::pin(cache.try_get_with(5, async move {
        std::future::poll_fn(|_| match gate.try_recv() {
            Ok(()) => Poll::Ready(()),
            Err(_) => Poll::Pending,
        })
        .await;
        Ok::<_, std::io::Error>(55)
    }));
    assert!(poll_once(leader.as_mut()).is_pending());
    std::thread::scope(|s| {
        let blocking = s.spawn(|| cache.get_or_load(5, || Ok::<_, std::io::Error>(0)));
        while cache.load_waiters(&5) < 1 {
            std::thread::yield_now();
        }
        go.send(()).unwrap();
        assert!(matches!(poll_once(leader.as_mut()), Poll::Ready(Ok(55))));
        assert_eq!(blocking.join().unwrap().unwrap(), 55);
    });
}
