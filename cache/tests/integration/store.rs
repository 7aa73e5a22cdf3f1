//! Store wrappers: write-through (store first) and write-back (dirty set, batches, retries).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::Duration;

use tierkit_cache::{
    CacheBuilder, ConcurrentCache, Error, LoadError, LruCache, ManualClock, MemoryStore,
    S3FifoCache, Store, WriteBack, WriteMode, WriteThrough,
};

type Lru = ConcurrentCache<u64, String, LruCache<u64, String>>;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Down;

impl std::fmt::Display for Down {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("store is down")
    }
}

impl std::error::Error for Down {}

/// A store that fails on demand, records batch sizes and counts loads.
#[derive(Default)]
struct Flaky {
    rows: Mutex<HashMap<u64, String>>,
    down: AtomicBool,
    loads: AtomicUsize,
    load_delay: Option<Duration>,
    batches: Mutex<Vec<usize>>,
}

impl Flaky {
    fn row(&self, key: u64) -> Option<String> {
        self.rows.lock().unwrap().get(&key).cloned()
    }
    fn check(&self) -> Result<(), Down> {
        if self.down.load(Ordering::SeqCst) {
            Err(Down)
        } else {
            Ok(())
        }
    }
}

impl Store<u64, String> for Flaky {
    type Error = Down;

    fn load(&self, key: &u64) -> Result<Option<String>, Down> {
        self.loads.fetch_add(1, Ordering::SeqCst);
        if let Some(d) = self.load_delay {
            thread::sleep(d);
        }
        self.check()?;
        Ok(self.row(*key))
    }

    fn store(&self, key: &u64, value: &String) -> Result<(), Down> {
        self.check()?;
        self.rows.lock().unwrap().insert(*key, value.clone());
        Ok(())
    }

    fn delete(&self, key: &u64) -> Result<(), Down> {
        self.check()?;
        self.rows.lock().unwrap().remove(key);
        Ok(())
    }

    fn store_all(&self, entries: &[(u64, String)]) -> Result<(), Down> {
        self.check()?;
        self.batches.lock().unwrap().push(entries.len());
        let mut rows = self.rows.lock().unwrap();
        rows.extend(entries.iter().cloned());
        Ok(())
    }
}

fn lru(capacity: u64, shards: usize) -> Lru {
    ConcurrentCache::with_builder(&CacheBuilder::new(capacity).shards(shards)).unwrap()
}

fn s(v: &str) -> String {
    v.to_string()
}

fn assert_send_sync<T: Send + Sync>() {}

#[test]
fn wrappers_are_send_and_sync() {
    assert_send_sync::<WriteThrough<u64, String, LruCache<u64, String>, Arc<Flaky>>>();
    assert_send_sync::<WriteBack<u64, String, LruCache<u64, String>, Arc<Flaky>>>();
    assert_send_sync::<WriteBack<u64, String, S3FifoCache<u64, String>, MemoryStore<u64, String>>>(
    );
}

// ---------------------------------------------------------------- write-through

#[test]
fn write_through_writes_the_store_then_the_cache() {
    let db = Arc::new(Flaky::default());
    let wt = WriteThrough::new(lru(100, 4), Arc::clone(&db));
    assert_eq!(wt.mode(), WriteMode::Update);
    wt.put(1, s("a")).unwrap();
    assert_eq!(db.row(1).as_deref(), Some("a"));
    assert_eq!(wt.cache().peek(&1).as_deref(), Some("a"));
    assert_eq!(wt.get(&1).unwrap().as_deref(), Some("a"));
    assert_eq!(
        db.loads.load(Ordering::SeqCst),
        0,
        "a hit does not touch the store"
    );
    wt.delete(&1).unwrap();
    assert_eq!(db.row(1), None);
    assert!(!wt.cache().contains(&1));
    assert!(format!("{wt:?}").starts_with("WriteThrough"));
}

#[test]
fn write_through_store_error_leaves_the_cache_unchanged() {
    let db = Arc::new(Flaky::default());
    let wt = WriteThrough::new(lru(100, 4), Arc::clone(&db));
    wt.put(1, s("a")).unwrap();
    db.down.store(true, Ordering::SeqCst);
    assert_eq!(wt.put(1, s("b")), Err(Down));
    assert_eq!(wt.put(2, s("new")), Err(Down));
    assert_eq!(wt.delete(&1), Err(Down));
    assert_eq!(wt.cache().peek(&1).as_deref(), Some("a"));
    assert!(!wt.cache().contains(&2));
    assert_eq!(wt.cache().len(), 1);
    db.down.store(false, Ordering::SeqCst);
    assert_eq!(db.row(1).as_deref(), Some("a"));
    assert_eq!(db.row(2), None);
}

#[test]
fn write_through_invalidate_mode_drops_the_cached_value() {
    let db = Arc::new(Flaky::default());
    let wt = WriteThrough::new(lru(100, 4), Arc::clone(&db)).with_mode(WriteMode::Invalidate);
    assert_eq!(wt.get(&1).unwrap(), None);
    assert!(!wt.cache().contains(&1), "a missing row is not cached");
    wt.put(1, s("a")).unwrap();
    assert!(!wt.cache().contains(&1));
    assert_eq!(wt.get(&1).unwrap().as_deref(), Some("a"));
    assert!(wt.cache().contains(&1));
    wt.put(1, s("b")).unwrap();
    assert_eq!(wt.get(&1).unwrap().as_deref(), Some("b"));
    assert_eq!(db.loads.load(Ordering::SeqCst), 3);
}

#[test]
fn write_through_reads_are_single_flight() {
    const N: usize = 16;
    let db = Arc::new(Flaky {
        load_delay: Some(Duration::from_millis(50)),
        ..Flaky::default()
    });
    db.rows.lock().unwrap().insert(7, s("seven"));
    let wt = Arc::new(WriteThrough::new(lru(100, 4), Arc::clone(&db)));
    let barrier = Arc::new(Barrier::new(N));
    let handles: Vec<_> = (0..N)
        .map(|_| {
            let (wt, barrier) = (Arc::clone(&wt), Arc::clone(&barrier));
            thread::spawn(move || {
                barrier.wait();
                wt.get(&7)
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap().unwrap().as_deref(), Some("seven"));
    }
    assert_eq!(db.loads.load(Ordering::SeqCst), 1);
}

#[test]
fn write_through_read_error_is_not_cached() {
    let db = Arc::new(Flaky::default());
    db.rows.lock().unwrap().insert(1, s("a"));
    let wt = WriteThrough::new(lru(100, 4), Arc::clone(&db));
    db.down.store(true, Ordering::SeqCst);
    let err = wt.get(&1).unwrap_err();
    assert!(matches!(&err, LoadError::Failed(e) if **e == Down));
    assert!(!wt.cache().contains(&1));
    db.down.store(false, Ordering::SeqCst);
    assert_eq!(wt.get(&1).unwrap().as_deref(), Some("a"));
}

#[test]
fn write_through_put_during_a_read_wins() {
    let db = Arc::new(Flaky {
        load_delay: Some(Duration::from_millis(100)),
        ..Flaky::default()
    });
    db.rows.lock().unwrap().insert(1, s("old"));
    let wt = Arc::new(WriteThrough::new(lru(100, 4), Arc::clone(&db)));
    let reader = {
        let wt = Arc::clone(&wt);
        thread::spawn(move || wt.get(&1))
    };
    while db.loads.load(Ordering::SeqCst) == 0 {
        thread::yield_now();
    }
    wt.put(1, s("new")).unwrap();
    let _ = reader.join().unwrap().unwrap();
    assert_eq!(wt.get(&1).unwrap().as_deref(), Some("new"));
}

// ---------------------------------------------------------------- write-back

fn write_back(
    db: &Arc<Flaky>,
    cache: Lru,
    clock: &ManualClock,
    max_batch: usize,
) -> WriteBack<u64, String, LruCache<u64, String>, Arc<Flaky>> {
    WriteBack::builder(cache, Arc::clone(db))
        .max_batch(max_batch)
        .flush_interval(Duration::from_secs(10))
        .backoff(Duration::from_secs(1), Duration::from_secs(8))
        .clock(clock.clone())
        .build()
        .unwrap()
}

#[test]
fn write_back_rejects_bad_settings() {
    let db = Arc::new(Flaky::default());
    let bad = WriteBack::builder(lru(10, 1), Arc::clone(&db))
        .max_batch(0)
        .build();
    assert!(matches!(
        bad,
        Err(Error::InvalidConfig {
            name: "max_batch",
            ..
        })
    ));
    let bad = WriteBack::builder(lru(10, 1), Arc::clone(&db))
        .flush_interval(Duration::ZERO)
        .build();
    assert!(matches!(
        bad,
        Err(Error::InvalidConfig {
            name: "flush_interval",
            ..
        })
    ));
    let bad = WriteBack::builder(lru(10, 1), db)
        .backoff(Duration::from_secs(2), Duration::from_secs(1))
        .build();
    assert!(matches!(
        bad,
        Err(Error::InvalidConfig {
            name: "backoff",
            ..
        })
    ));
}

#[test]
fn write_back_acknowledges_in_memory_and_flushes_later() {
    let db = Arc::new(Flaky::default());
    db.rows.lock().unwrap().insert(9, s("stored"));
    let clock = ManualClock::new();
    let wb = write_back(&db, lru(100, 4), &clock, 100);
    wb.put(1, s("a"));
    wb.put(1, s("b"));
    wb.delete(&9);
    assert_eq!(wb.get(&1).unwrap().as_deref(), Some("b"));
    assert_eq!(
        wb.get(&9).unwrap(),
        None,
        "a pending delete hides the stored row"
    );
    assert_eq!(wb.dirty_len(), 2);
    assert_eq!(db.row(1), None);
    assert_eq!(wb.flush().unwrap(), 2);
    assert_eq!(db.row(1).as_deref(), Some("b"));
    assert_eq!(db.row(9), None);
    assert_eq!(wb.dirty_len(), 0);
    let stats = wb.stats();
    assert_eq!(
        (stats.flushes, stats.written, stats.deleted, stats.failures),
        (1, 1, 1, 0)
    );
    assert_eq!(wb.get(&9).unwrap(), None);
}

#[test]
fn write_back_failing_store_keeps_entries_dirty_and_retries_with_backoff() {
    let db = Arc::new(Flaky::default());
    let clock = ManualClock::new();
    let wb = write_back(&db, lru(100, 4), &clock, 100);
    for k in 0..10 {
        wb.put(k, format!("v{k}"));
    }
    db.down.store(true, Ordering::SeqCst);
    assert_eq!(wb.flush(), Err(Down));
    assert_eq!(wb.dirty_len(), 10);
    assert_eq!(wb.stats().consecutive_failures, 1);
    // Backoff: 1 s after the first failure, then 2 s.
    assert!(!wb.flush_due());
    clock.advance(Duration::from_millis(999));
    assert_eq!(wb.tick(), Ok(0));
    clock.advance(Duration::from_millis(1));
    assert!(wb.flush_due());
    assert_eq!(wb.tick(), Err(Down));
    assert_eq!(wb.stats().consecutive_failures, 2);
    clock.advance(Duration::from_secs(1));
    assert!(!wb.flush_due());
    clock.advance(Duration::from_secs(1));
    assert!(wb.flush_due());
    // Reads still see every acknowledged write.
    for k in 0..10 {
        assert_eq!(wb.get(&k).unwrap(), Some(format!("v{k}")));
    }
    db.down.store(false, Ordering::SeqCst);
    assert_eq!(wb.tick(), Ok(10));
    assert_eq!(wb.dirty_len(), 0);
    for k in 0..10 {
        assert_eq!(db.row(k), Some(format!("v{k}")));
    }
    let stats = wb.stats();
    assert_eq!(
        (stats.failures, stats.consecutive_failures, stats.written),
        (2, 0, 10)
    );
}

#[test]
fn write_back_loses_no_write_to_eviction() {
    let db = Arc::new(Flaky::default());
    let clock = ManualClock::new();
    let wb = write_back(&db, lru(4, 1), &clock, 1_000_000);
    for round in 0..3 {
        for k in 0..500 {
            wb.put(k, format!("{k}/{round}"));
        }
    }
    assert!(wb.cache().len() <= 4);
    assert!(wb.cache().stats().evictions > 1000);
    for k in 0..500 {
        assert_eq!(wb.get(&k).unwrap(), Some(format!("{k}/2")));
    }
    assert_eq!(wb.flush().unwrap(), 500);
    assert_eq!(db.rows.lock().unwrap().len(), 500);
    for k in 0..500 {
        assert_eq!(db.row(k), Some(format!("{k}/2")));
        assert_eq!(
            wb.get(&k).unwrap(),
            Some(format!("{k}/2")),
            "read back through the store"
        );
    }
}

#[test]
fn write_back_flushes_in_batches_by_size_and_interval() {
    let db = Arc::new(Flaky::default());
    let clock = ManualClock::new();
    let wb = write_back(&db, lru(100, 4), &clock, 10);
    for k in 0..9 {
        wb.put(k, s("x"));
    }
    assert!(!wb.flush_due());
    wb.put(9, s("x"));
    assert!(wb.flush_due(), "max_batch dirty keys make a flush due");
    for k in 10..25 {
        wb.put(k, s("x"));
    }
    assert_eq!(wb.tick(), Ok(25));
    assert_eq!(*db.batches.lock().unwrap(), [10, 10, 5]);
    // Interval: one dirty key waits for flush_interval.
    wb.put(100, s("late"));
    assert_eq!(wb.tick(), Ok(0));
    clock.advance(Duration::from_secs(10));
    assert_eq!(wb.tick(), Ok(1));
    assert_eq!(db.row(100).as_deref(), Some("late"));
    assert_eq!(wb.stats().batches, 4);
}

#[test]
fn write_back_close_and_drop_flush() {
    let db = Arc::new(Flaky::default());
    let clock = ManualClock::new();
    let wb = write_back(&db, lru(100, 4), &clock, 100);
    wb.put(1, s("a"));
    assert_eq!(wb.close(), Ok(1));
    assert_eq!(db.row(1).as_deref(), Some("a"));

    let wb = write_back(&db, lru(100, 4), &clock, 100);
    wb.put(2, s("b"));
    drop(wb);
    assert_eq!(db.row(2).as_deref(), Some("b"));

    // A failed close keeps the entries dirty for another try.
    let wb = write_back(&db, lru(100, 4), &clock, 100);
    wb.put(3, s("c"));
    db.down.store(true, Ordering::SeqCst);
    assert_eq!(wb.close(), Err(Down));
    assert_eq!(wb.dirty_len(), 1);
    db.down.store(false, Ordering::SeqCst);
    assert_eq!(wb.flush(), Ok(1));
    assert_eq!(db.row(3).as_deref(), Some("c"));
}

#[test]
fn write_back_background_flusher_writes_full_batches() {
    let db = Arc::new(Flaky::default());
    // Real clock with a long interval: only the size trigger can flush within the test.
    let wb = WriteBack::builder(lru(100, 4), Arc::clone(&db))
        .max_batch(5)
        .flush_interval(Duration::from_secs(3600))
        .build()
        .unwrap();
    wb.spawn_flusher().unwrap();
    wb.spawn_flusher().unwrap(); // idempotent
    for k in 0..5 {
        wb.put(k, s("x"));
    }
    for _ in 0..500 {
        if db.rows.lock().unwrap().len() == 5 {
            break;
        }
        thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(db.rows.lock().unwrap().len(), 5);
    wb.put(99, s("tail"));
    assert_eq!(wb.close(), Ok(1));
    assert_eq!(db.row(99).as_deref(), Some("tail"));
}

#[test]
fn write_back_concurrent_writers_and_flushes_lose_nothing() {
    const THREADS: u64 = 4;
    const KEYS: u64 = 50;
    const ROUNDS: u64 = 40;
    let db = Arc::new(Flaky::default());
    let clock = ManualClock::new();
    let wb = Arc::new(write_back(&db, lru(8, 2), &clock, 16));
    let stop = Arc::new(AtomicBool::new(false));
    let flusher = {
        let (wb, stop, db) = (Arc::clone(&wb), Arc::clone(&stop), Arc::clone(&db));
        thread::spawn(move || {
            let mut n = 0u32;
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                // Fail now and then: those entries must stay dirty.
                db.down.store(n.is_multiple_of(3), Ordering::SeqCst);
                let _ = wb.flush();
            }
            db.down.store(false, Ordering::SeqCst);
        })
    };
    let writers: Vec<_> = (0..THREADS)
        .map(|t| {
            let wb = Arc::clone(&wb);
            thread::spawn(move || {
                for round in 0..ROUNDS {
                    for k in 0..KEYS {
                        let key = t * 1000 + k;
                        if round == ROUNDS - 1 && k % 10 == 0 {
                            wb.delete(&key);
                        } else {
                            wb.put(key, format!("{round}"));
                        }
                        // Every read sees this thread's own latest write (a read through to
                        // the store can fail while it is down).
                        let expect =
                            (round != ROUNDS - 1 || k % 10 != 0).then(|| format!("{round}"));
                        if let Ok(seen) = wb.get(&key) {
                            assert_eq!(seen, expect);
                        }
                    }
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    stop.store(true, Ordering::SeqCst);
    flusher.join().unwrap();
    wb.close().unwrap();
    for t in 0..THREADS {
        for k in 0..KEYS {
            let expect = (k % 10 != 0).then(|| format!("{}", ROUNDS - 1));
            assert_eq!(db.row(t * 1000 + k), expect, "key {t}/{k}");
        }
    }
}
