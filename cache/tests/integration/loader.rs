//! Read-through loading: single flight (sync and async), shared errors, panics, cancellation.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;

use tierkit_cache::{CacheBuilder, ConcurrentCache, LoadError, LoadOutcome, LruCache};

type Lru<K, V> = ConcurrentCache<K, V, LruCache<K, V>>;

#[derive(Debug, PartialEq, Eq)]
struct Boom(u32);

impl std::fmt::Display for Boom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "boom {}", self.0)
    }
}

impl std::error::Error for Boom {}

fn cache() -> Arc<Lru<u32, String>> {
    Arc::new(ConcurrentCache::with_builder(&CacheBuilder::new(100).shards(4)).unwrap())
}

/// Every caller blocks until all `n` have started; the loader then waits until the other `n - 1`
/// have joined its flight (`load_waiters`), so every one of them shares it.
#[test]
fn sync_single_flight_runs_the_loader_once() {
    const N: usize = 16;
    let cache = cache();
    let calls = Arc::new(AtomicUsize::new(0));
    let barrier = Arc::new(Barrier::new(N));
    let handles: Vec<_> = (0..N)
        .map(|_| {
            let (cache, calls, barrier) =
                (Arc::clone(&cache), Arc::clone(&calls), Arc::clone(&barrier));
            thread::spawn(move || {
                barrier.wait();
                cache.get_or_load(1, || {
                    calls.fetch_add(1, Ordering::SeqCst);
                    while cache.load_waiters(&1) < N - 1 {
                        thread::yield_now();
                    }
                    Ok::<_, Boom>("one".to_string())
                })
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap().unwrap(), "one");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(cache.get(&1).as_deref(), Some("one"));
    let stats = cache.stats();
    assert_eq!(stats.inserts, 1);
    assert_eq!(stats.hits + stats.misses, N as u64 + 1);
}

#[test]
fn sync_error_reaches_every_waiter_and_is_not_cached() {
    const N: usize = 16;
    let cache = cache();
    let calls = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..N)
        .map(|_| {
            let (cache, calls) = (Arc::clone(&cache), Arc::clone(&calls));
            thread::spawn(move || {
                cache.get_or_load(1, || {
                    calls.fetch_add(1, Ordering::SeqCst);
                    // Fail only once every other caller has joined this load.
                    while cache.load_waiters(&1) < N - 1 {
                        thread::yield_now();
                    }
                    Err::<String, _>(Boom(7))
                })
            })
        })
        .collect();
    let errors: Vec<_> = handles
        .into_iter()
        .map(|h| h.join().unwrap().unwrap_err())
        .collect();
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert!(errors.iter().all(|e| e.error() == Some(&Boom(7))));
    assert!(matches!(&errors[0], LoadError::Failed(_)));
    assert_eq!(errors[0].to_string(), "loader failed: boom 7");
    assert!(std::error::Error::source(&errors[0]).is_some());
    assert_eq!(cache.len(), 0);
    // A later call runs the loader again.
    let v = cache
        .get_or_load(1, || Ok::<_, Boom>("fresh".to_string()))
        .unwrap();
    assert_eq!(v, "fresh");
    assert_eq!(cache.get(&1).as_deref(), Some("fresh"));
}

#[test]
fn waiters_share_the_same_error_instance() {
    let cache = cache();
    let gate = Arc::new(Barrier::new(2));
    let leader = {
        let (cache, gate) = (Arc::clone(&cache), Arc::clone(&gate));
        thread::spawn(move || {
            cache.get_or_load(9, || {
                gate.wait(); // the waiter is about to join
                while cache.load_waiters(&9) < 1 {
                    thread::yield_now();
                }
                Err::<String, _>(Boom(9))
            })
        })
    };
    gate.wait();
    let waited = cache.get_or_load(9, || Err::<String, _>(Boom(99)));
    let led = leader.join().unwrap();
    let (LoadError::Failed(a), LoadError::Failed(b)) = (led.unwrap_err(), waited.unwrap_err())
    else {
        panic!("both fail");
    };
    assert!(Arc::ptr_eq(&a, &b));
}

#[test]
fn a_panicking_loader_does_not_strand_waiters() {
    let cache = cache();
    let gate = Arc::new(Barrier::new(2));
    let leader = {
        let (cache, gate) = (Arc::clone(&cache), Arc::clone(&gate));
        thread::spawn(move || {
            cache.get_or_load(5, || -> Result<String, Boom> {
                gate.wait();
                while cache.load_waiters(&5) < 1 {
                    thread::yield_now();
                }
                panic!("loader exploded");
            })
        })
    };
    gate.wait();
    // Joins the doomed flight, then runs its own loader when the leader panics.
    let v = cache
        .get_or_load(5, || Ok::<_, Boom>("recovered".to_string()))
        .unwrap();
    assert_eq!(v, "recovered");
    assert!(
        leader.join().is_err(),
        "the panic reaches the leader's caller"
    );
    assert_eq!(cache.get(&5).as_deref(), Some("recovered"));
}

#[test]
fn a_write_during_a_load_wins() {
    let cache = cache();
    let gate = Arc::new(Barrier::new(2));
    let loader = {
        let (cache, gate) = (Arc::clone(&cache), Arc::clone(&gate));
        thread::spawn(move || {
            cache.get_or_load(3, || {
                gate.wait(); // load started
                gate.wait(); // write done
                Ok::<_, Boom>("old".to_string())
            })
        })
    };
    gate.wait();
    cache.insert(3, "new".to_string());
    gate.wait();
    // The caller gets what it loaded, but the cache keeps the newer write.
    assert_eq!(loader.join().unwrap().unwrap(), "old");
    assert_eq!(cache.get(&3).as_deref(), Some("new"));

    // Same for an invalidation: the possibly stale load is not cached.
    let loader = {
        let (cache, gate) = (Arc::clone(&cache), Arc::clone(&gate));
        thread::spawn(move || {
            cache.get_or_load(4, || {
                gate.wait();
                gate.wait();
                Ok::<_, Boom>("stale".to_string())
            })
        })
    };
    gate.wait();
    cache.invalidate(&4);
    gate.wait();
    assert_eq!(loader.join().unwrap().unwrap(), "stale");
    assert!(!cache.contains(&4));
}

#[test]
fn optional_loader_caches_nothing_when_not_found() {
    let cache = cache();
    assert_eq!(
        cache.get_or_load_opt(1, || Ok::<_, Boom>(None)).unwrap(),
        None
    );
    assert!(!cache.contains(&1));
    let v = cache
        .get_or_load_opt(1, || Ok::<_, Boom>(Some("x".to_string())))
        .unwrap();
    assert_eq!(v.as_deref(), Some("x"));
    assert_eq!(cache.get(&1).as_deref(), Some("x"));
}

#[test]
fn hits_and_misses_are_counted() {
    let cache = cache();
    cache
        .get_or_load(1, || Ok::<_, Boom>("a".to_string()))
        .unwrap();
    cache
        .get_or_load(1, || Ok::<_, Boom>("b".to_string()))
        .unwrap();
    let s = cache.stats();
    assert_eq!((s.hits, s.misses), (1, 1));
}

#[test]
fn outcome_tells_a_hit_from_a_load() {
    let cache = cache();
    let (v, how) = cache
        .get_or_load_with_outcome(1, || Ok::<_, Boom>("a".to_string()))
        .unwrap();
    assert_eq!((v.as_str(), how), ("a", LoadOutcome::Loaded));
    assert!(!how.is_hit());
    let (v, how) = cache.get_or_load_with_outcome(1, || Err(Boom(1))).unwrap();
    assert_eq!((v.as_str(), how), ("a", LoadOutcome::Hit));
    assert!(how.is_hit());
    // An error is an error, whatever the outcome would have been.
    let err = cache
        .get_or_load_with_outcome(2, || Err(Boom(2)))
        .unwrap_err();
    assert_eq!(err.error(), Some(&Boom(2)));
    // After an invalidation the next call loads again.
    cache.invalidate(&1);
    let (_, how) = cache
        .get_or_load_with_outcome(1, || Ok::<_, Boom>("b".to_string()))
        .unwrap();
    assert_eq!(how, LoadOutcome::Loaded);
    let s = cache.stats();
    assert_eq!((s.hits, s.misses), (1, 3));
}

/// A caller that arrives while another's loader runs never runs its own: it joins that load
/// (`Joined`; the loader finishes only once the caller waits on it).
#[test]
fn outcome_of_a_caller_that_shares_a_load() {
    let cache = cache();
    let release = Arc::new(Barrier::new(2));
    let leader = {
        let (cache, release) = (Arc::clone(&cache), Arc::clone(&release));
        thread::spawn(move || {
            cache.get_or_load_with_outcome(5, || {
                release.wait();
                while cache.load_waiters(&5) < 1 {
                    thread::yield_now();
                }
                Ok::<_, Boom>("five".to_string())
            })
        })
    };
    release.wait();
    let (v, how) = cache
        .get_or_load_with_outcome(5, || -> Result<String, Boom> {
            panic!("the leader's load is in flight")
        })
        .unwrap();
    assert_eq!((v.as_str(), how), ("five", LoadOutcome::Joined));
    let (v, how) = leader.join().unwrap().unwrap();
    assert_eq!((v.as_str(), how), ("five", LoadOutcome::Loaded));
}

/// On a single-threaded runtime the interleaving is fixed: the waiter registers on the flight
/// before the leader's loader is released, so it reports `Joined`.
#[test]
#[cfg(feature = "tokio")]
fn async_outcome_reports_a_joined_load() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let cache = cache();
        let (release, wait) = tokio::sync::watch::channel(false);
        let started = Arc::new(AtomicUsize::new(0));
        let leader = {
            let (cache, started, mut wait) = (Arc::clone(&cache), Arc::clone(&started), wait);
            tokio::spawn(async move {
                let loader = async move {
                    started.fetch_add(1, Ordering::SeqCst);
                    wait.wait_for(|go| *go).await.unwrap();
                    Ok::<_, Boom>("nine".to_string())
                };
                cache.get_or_load_with_outcome_async(9, loader).await
            })
        };
        while started.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        let waiter = {
            let cache = Arc::clone(&cache);
            tokio::spawn(async move {
                let loader = async { Err::<String, _>(Boom(9)) };
                cache.get_or_load_with_outcome_async(9, loader).await
            })
        };
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        release.send(true).unwrap();
        let (v, how) = waiter.await.unwrap().unwrap();
        assert_eq!((v.as_str(), how), ("nine", LoadOutcome::Joined));
        let (v, how) = leader.await.unwrap().unwrap();
        assert_eq!((v.as_str(), how), ("nine", LoadOutcome::Loaded));
        let (_, how) = cache
            .get_or_load_with_outcome_async(9, async { Err::<String, _>(Boom(0)) })
            .await
            .unwrap();
        assert_eq!(how, LoadOutcome::Hit);
    });
}

#[cfg(feature = "tokio")]
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
#[cfg(feature = "tokio")]
fn async_single_flight_runs_the_loader_once() {
    const N: usize = 16;
    runtime().block_on(async {
        let cache = cache();
        let calls = Arc::new(AtomicUsize::new(0));
        let (release, wait) = tokio::sync::watch::channel(false);
        let tasks: Vec<_> = (0..N)
            .map(|_| {
                let (cache, calls, mut wait) =
                    (Arc::clone(&cache), Arc::clone(&calls), wait.clone());
                tokio::spawn(async move {
                    let loader = async move {
                        calls.fetch_add(1, Ordering::SeqCst);
                        wait.wait_for(|go| *go).await.unwrap();
                        Ok::<_, Boom>("one".to_string())
                    };
                    cache.get_or_load_async(1, loader).await
                })
            })
            .collect();
        // Let every other task join the flight, then release the loader.
        while cache.load_waiters(&1) < N - 1 {
            tokio::task::yield_now().await;
        }
        release.send(true).unwrap();
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap(), "one");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(cache.get(&1).as_deref(), Some("one"));
    });
}

#[test]
#[cfg(feature = "tokio")]
fn async_cancelling_the_leader_does_not_cancel_the_load() {
    runtime().block_on(async {
        let cache = cache();
        let calls = Arc::new(AtomicUsize::new(0));
        let (release, wait) = tokio::sync::watch::channel(false);
        let make_loader = |calls: Arc<AtomicUsize>,
                           mut wait: tokio::sync::watch::Receiver<bool>| async move {
            calls.fetch_add(1, Ordering::SeqCst);
            wait.wait_for(|go| *go).await.unwrap();
            Ok::<_, Boom>("kept".to_string())
        };
        let leader = {
            let cache = Arc::clone(&cache);
            let loader = make_loader(Arc::clone(&calls), wait.clone());
            tokio::spawn(async move { cache.get_or_load_async(7, loader).await })
        };
        while calls.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        let waiters: Vec<_> = (0..8)
            .map(|_| {
                let cache = Arc::clone(&cache);
                let loader = make_loader(Arc::clone(&calls), wait.clone());
                tokio::spawn(async move { cache.get_or_load_async(7, loader).await })
            })
            .collect();
        while cache.load_waiters(&7) < 8 {
            tokio::task::yield_now().await;
        }
        // A waiter that gives up early (dropped once it waits) changes nothing either.
        let loader = make_loader(Arc::clone(&calls), wait.clone());
        tokio::select! {
            biased;
            _ = cache.get_or_load_async(7, loader) => panic!("the load is held back"),
            () = async {
                while cache.load_waiters(&7) < 9 {
                    tokio::task::yield_now().await;
                }
            } => {}
        }
        assert_eq!(cache.load_waiters(&7), 8);
        leader.abort();
        assert!(leader.await.unwrap_err().is_cancelled());
        release.send(true).unwrap();
        for w in waiters {
            assert_eq!(w.await.unwrap().unwrap(), "kept");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(cache.get(&7).as_deref(), Some("kept"));
    });
}

#[test]
#[cfg(feature = "tokio")]
fn async_load_completes_even_if_every_caller_is_gone() {
    runtime().block_on(async {
        let cache = cache();
        let (started_tx, started_rx) = tokio::sync::oneshot::channel();
        let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
        let loader = async move {
            let _ = started_tx.send(());
            go_rx.await.unwrap();
            Ok::<_, Boom>("orphan".to_string())
        };
        // The only caller goes away while its loader runs.
        tokio::select! {
            _ = cache.get_or_load_async(2, loader) => panic!("the load is held back"),
            started = started_rx => started.unwrap(),
        }
        go_tx.send(()).unwrap();
        // The spawned task caches right after the loader finishes.
        let mut spins = 0u64;
        while !cache.contains(&2) {
            spins += 1;
            assert!(
                spins < 100_000_000,
                "the orphaned load never cached its value"
            );
            tokio::task::yield_now().await;
        }
        assert_eq!(cache.get(&2).as_deref(), Some("orphan"));
    });
}

#[test]
#[cfg(feature = "tokio")]
fn async_error_is_shared_and_not_cached() {
    runtime().block_on(async {
        let cache = cache();
        let calls = Arc::new(AtomicUsize::new(0));
        let (release, wait) = tokio::sync::watch::channel(false);
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (cache, calls, mut wait) =
                    (Arc::clone(&cache), Arc::clone(&calls), wait.clone());
                tokio::spawn(async move {
                    let loader = async move {
                        calls.fetch_add(1, Ordering::SeqCst);
                        wait.wait_for(|go| *go).await.unwrap();
                        Err::<String, _>(Boom(1))
                    };
                    cache.get_or_load_async(1, loader).await
                })
            })
            .collect();
        while cache.load_waiters(&1) < 7 {
            tokio::task::yield_now().await;
        }
        release.send(true).unwrap();
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap_err().error(), Some(&Boom(1)));
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert!(!cache.contains(&1));
        let v = cache
            .get_or_load_async(1, async { Ok::<_, Boom>("ok".to_string()) })
            .await;
        assert_eq!(v.unwrap(), "ok");
    });
}

#[test]
#[cfg(feature = "tokio")]
fn async_loader_panic_reaches_its_caller_and_waiters_recover() {
    runtime().block_on(async {
        let cache = cache();
        let started = Arc::new(tokio::sync::Notify::new());
        let leader = {
            let (cache, started) = (Arc::clone(&cache), Arc::clone(&started));
            tokio::spawn(async move {
                let watched = Arc::clone(&cache);
                let loader = async move {
                    started.notify_one();
                    // Explode only once the other caller waits on this load.
                    while watched.load_waiters(&3) < 1 {
                        tokio::task::yield_now().await;
                    }
                    if true {
                        panic!("async loader exploded");
                    }
                    Ok::<String, Boom>(String::new())
                };
                cache.get_or_load_async(3, loader).await
            })
        };
        started.notified().await;
        let v = cache
            .get_or_load_async(3, async { Ok::<_, Boom>("second".to_string()) })
            .await;
        assert_eq!(v.unwrap(), "second");
        assert!(leader.await.unwrap_err().is_panic());
    });
}

#[test]
#[cfg(feature = "tokio")]
fn sync_and_async_callers_share_a_flight() {
    let rt = runtime();
    let cache = cache();
    let calls = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(Barrier::new(2));
    let sync_leader = {
        let (cache, calls, gate) = (Arc::clone(&cache), Arc::clone(&calls), Arc::clone(&gate));
        thread::spawn(move || {
            cache.get_or_load(8, || {
                calls.fetch_add(1, Ordering::SeqCst);
                gate.wait();
                while cache.load_waiters(&8) < 1 {
                    thread::yield_now();
                }
                Ok::<_, Boom>("shared".to_string())
            })
        })
    };
    gate.wait();
    let c = Arc::clone(&calls);
    let v = rt.block_on(cache.get_or_load_async(8, async move {
        c.fetch_add(1, Ordering::SeqCst);
        Ok::<_, Boom>("other".to_string())
    }));
    assert_eq!(v.unwrap(), "shared");
    assert_eq!(sync_leader.join().unwrap().unwrap(), "shared");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

/// Many threads load, write and invalidate overlapping keys: nobody deadlocks or waits forever,
/// every answer is a value of the right key, and loads never outnumber misses.
#[test]
fn loader_stress_with_writes_and_invalidations() {
    const THREADS: u64 = 8;
    const OPS: u64 = 3_000;
    let cache: Arc<Lru<u64, u64>> =
        Arc::new(ConcurrentCache::with_builder(&CacheBuilder::new(32).shards(4)).unwrap());
    let loads = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let (cache, loads) = (Arc::clone(&cache), Arc::clone(&loads));
            thread::spawn(move || {
                let mut x = (t + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                for _ in 0..OPS {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let key = x % 64;
                    match x % 16 {
                        0 => cache.invalidate(&key),
                        1 => drop(cache.insert(key, key + 1000)),
                        2 if key == 0 => cache.invalidate_all(),
                        3 => {
                            let r = cache.get_or_load(key, || Err::<u64, _>(Boom(1)));
                            if let Ok(v) = r {
                                assert_eq!(v % 1000, key);
                            }
                        }
                        _ => {
                            let v = cache
                                .get_or_load(key, || {
                                    loads.fetch_add(1, Ordering::Relaxed);
                                    thread::yield_now();
                                    Ok::<_, Boom>(key)
                                })
                                .unwrap_or(key);
                            assert_eq!(v % 1000, key);
                        }
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let stats = cache.stats();
    assert!(loads.load(Ordering::Relaxed) as u64 <= stats.misses);
    assert!(cache.len() <= 32);
}

/// Polls `fut` to completion on the calling thread, outside any tokio runtime.
#[cfg(feature = "tokio")]
fn block_on<F: std::future::Future>(fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
        thread::yield_now();
    }
}

/// Outside a tokio runtime the loader runs inside the leading future; dropping that future hands
/// the load over to a waiting caller, which runs its own loader.
#[test]
#[cfg(feature = "tokio")]
fn async_without_runtime_hands_the_load_over_when_the_leader_is_dropped() {
    let cache = cache();
    let never = async move {
        // Pending forever (polled by hand below, then dropped).
        std::future::pending::<()>().await;
        Ok::<_, Boom>("never".to_string())
    };
    let mut leader = Box::pin(cache.get_or_load_async(4, never));
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    assert!(
        leader.as_mut().poll(&mut cx).is_pending(),
        "leading, loader pending"
    );
    let waiter = {
        let cache = Arc::clone(&cache);
        thread::spawn(move || cache.get_or_load(4, || Ok::<_, Boom>("taken over".to_string())))
    };
    while cache.load_waiters(&4) < 1 {
        thread::yield_now(); // until the waiter has joined the flight
    }
    drop(leader);
    assert_eq!(waiter.join().unwrap().unwrap(), "taken over");
    let v = block_on(cache.get_or_load_async(4, async { Ok::<_, Boom>("unused".to_string()) }));
    assert_eq!(v.unwrap(), "taken over");
}

/// Loads of one key with different error types cannot share a flight: the second one loads on
/// its own instead of waiting.
#[test]
fn a_load_with_another_error_type_runs_uncoordinated() {
    let cache = cache();
    let gate = Arc::new(Barrier::new(2));
    let leader = {
        let (cache, gate) = (Arc::clone(&cache), Arc::clone(&gate));
        thread::spawn(move || {
            cache.get_or_load(6, || {
                gate.wait(); // in flight
                gate.wait(); // the other load finished
                Ok::<_, Boom>("boom-typed".to_string())
            })
        })
    };
    gate.wait();
    let other = cache.get_or_load(6, || Ok::<_, std::io::Error>("io-typed".to_string()));
    assert_eq!(other.unwrap(), "io-typed");
    gate.wait();
    assert_eq!(leader.join().unwrap().unwrap(), "boom-typed");
    // The uncoordinated load wrote after the first load started: the first does not overwrite it.
    assert_eq!(cache.get(&6).as_deref(), Some("io-typed"));
}
