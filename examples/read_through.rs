//! Read-through caching in front of a slow database: web handlers on several threads read user
//! profiles with Zipf-skewed popularity; a `ConcurrentCache` answers most of them, and
//! `get_or_load` runs one database query per missing key however many handlers miss it at once
//! (single flight). Then a write shows cache-aside invalidation.
//!
//! `cargo run --release --example read_through` (a few seconds).
//!
//! Prints the database queries without and with the cache, the load saved, the hit ratio, a
//! stampede on one cold key, and a profile update invalidating its cached copy.

// Counts are far below 2^52 and user ids below 2^32: the casts are exact.
#![allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]

use std::collections::HashMap;
use std::error::Error;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use tierkit::cache::{CacheBuilder, ConcurrentCache, LruCache};

use tierkit_testkit as workload;

const USERS: usize = 100_000;
/// Handlers mostly wait on the database, so there are more of them than cores.
const HANDLERS: usize = 8;
const REQUESTS_PER_HANDLER: usize = 5_000;
const CACHE_ENTRIES: u64 = 5_000;
/// One database round trip.
const QUERY_TIME: Duration = Duration::from_micros(150);

/// The database: a table behind a lock, a round trip per query, and a query counter.
#[derive(Debug, Default)]
struct Database {
    rows: Mutex<HashMap<u64, String>>,
    queries: AtomicU64,
}

#[derive(Debug)]
struct DbError(&'static str);

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl Error for DbError {}

impl Database {
    fn with_users(n: usize) -> Self {
        let n = n as u64;
        let rows = (0..n)
            .map(|id| (id, format!("user {id}, plan free")))
            .collect();
        Self {
            rows: Mutex::new(rows),
            queries: AtomicU64::new(0),
        }
    }

    /// `SELECT profile FROM users WHERE id = ?`
    fn query(&self, id: u64) -> Result<Arc<str>, DbError> {
        self.queries.fetch_add(1, Ordering::Relaxed);
        std::thread::sleep(QUERY_TIME);
        let rows = self
            .rows
            .lock()
            .map_err(|_| DbError("database lock poisoned"))?;
        rows.get(&id)
            .map(|p| Arc::from(p.as_str()))
            .ok_or(DbError("no such user"))
    }

    /// `UPDATE users SET profile = ? WHERE id = ?`
    fn update(&self, id: u64, profile: &str) -> Result<(), DbError> {
        self.queries.fetch_add(1, Ordering::Relaxed);
        std::thread::sleep(QUERY_TIME);
        let mut rows = self
            .rows
            .lock()
            .map_err(|_| DbError("database lock poisoned"))?;
        rows.insert(id, profile.to_string());
        Ok(())
    }

    fn queries(&self) -> u64 {
        self.queries.load(Ordering::Relaxed)
    }
}

type Profiles = ConcurrentCache<u64, Arc<str>, LruCache<u64, Arc<str>>>;

/// Every handler's request stream: Zipf(0.9) over the users, its own seed.
fn streams() -> Vec<Vec<u64>> {
    (0..HANDLERS)
        .map(|h| workload::zipf_keys(USERS, 0.9, REQUESTS_PER_HANDLER, 0xdb + h as u64))
        .map(|keys| keys.into_iter().map(|k| k % USERS as u64).collect())
        .collect()
}

/// Runs the handlers; each request goes through `read`. Returns the wall time.
fn serve(
    streams: &[Vec<u64>],
    read: &(dyn Fn(u64) -> Result<Arc<str>, String> + Sync),
) -> Duration {
    let start = Barrier::new(streams.len() + 1);
    let failures = AtomicU64::new(0);
    let elapsed = std::thread::scope(|scope| {
        for stream in streams {
            let (start, failures) = (&start, &failures);
            scope.spawn(move || {
                start.wait();
                for &id in stream {
                    if read(id).is_err() {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
        start.wait();
        Instant::now()
    })
    .elapsed();
    let failed = failures.load(Ordering::Relaxed);
    if failed > 0 {
        println!("  ({failed} requests failed)");
    }
    elapsed
}

fn main() -> Result<(), Box<dyn Error>> {
    let streams = streams();
    let requests = (HANDLERS * REQUESTS_PER_HANDLER) as u64;
    println!(
        "{HANDLERS} handler threads x {REQUESTS_PER_HANDLER} profile reads, Zipf 0.9 over {USERS} \
         users; each database query takes {} us.\n",
        QUERY_TIME.as_micros()
    );

    // 1. No cache: every read is a query.
    let db = Database::with_users(USERS);
    let t_direct = serve(&streams, &|id| db.query(id).map_err(|e| e.to_string()));
    let direct = db.queries();

    // 2. Read-through: the cache first, one query per missing key.
    let db = Database::with_users(USERS);
    let cache: Profiles = ConcurrentCache::with_builder(
        &CacheBuilder::new(CACHE_ENTRIES).default_ttl(Duration::from_secs(300)),
    )?;
    let t_cached = serve(&streams, &|id| {
        cache
            .get_or_load(id, || db.query(id))
            .map_err(|e| e.to_string())
    });
    let cached = db.queries();
    let stats = cache.stats();

    println!("| | DB queries | wall time | requests/s |");
    println!("|---|---:|---:|---:|");
    for (name, queries, t) in [
        ("no cache", direct, t_direct),
        ("read-through cache", cached, t_cached),
    ] {
        println!(
            "| {name} | {queries} | {:.0} ms | {:.0} |",
            t.as_secs_f64() * 1e3,
            requests as f64 / t.as_secs_f64()
        );
    }
    println!(
        "\nCache of {CACHE_ENTRIES} entries ({:.0}% of the users): hit ratio {:.1}%, database load \
         saved {:.1}%.",
        100.0 * CACHE_ENTRIES as f64 / USERS as f64,
        100.0 * stats.hit_ratio(),
        100.0 * (1.0 - cached as f64 / direct as f64),
    );
    println!(
        "{} lookups missed but only {cached} queries ran: {} callers waited for a load already in \
         flight instead of querying.\n",
        stats.misses,
        stats.misses.saturating_sub(cached),
    );

    // 3. A stampede: a cold key requested by every handler at the same instant.
    let cold = USERS as u64 - 1;
    cache.invalidate(&cold);
    let before = db.queries();
    let start = Barrier::new(HANDLERS * 4);
    std::thread::scope(|scope| {
        for _ in 0..HANDLERS * 4 {
            scope.spawn(|| {
                start.wait();
                let _ = cache.get_or_load(cold, || db.query(cold));
            });
        }
    });
    println!(
        "Stampede: {} threads asked for cold user {cold} at once -> {} database query.",
        HANDLERS * 4,
        db.queries() - before
    );

    // 4. A write: update the database, then invalidate the cached copy (cache-aside).
    let hot = workload::mix(0) % USERS as u64; // rank 0: the most popular user
    let old = cache
        .get_or_load(hot, || db.query(hot))
        .map_err(|e| e.to_string())?;
    db.update(hot, &format!("user {hot}, plan pro"))?;
    let stale = cache.get(&hot);
    cache.invalidate(&hot);
    let fresh = cache
        .get_or_load(hot, || db.query(hot))
        .map_err(|e| e.to_string())?;
    println!("Write to user {hot}:");
    println!("  read before the update:                {old}");
    println!(
        "  read after the update (stale copy):    {}",
        stale.as_deref().unwrap_or("(none)")
    );
    println!("  read after invalidate (loaded again):  {fresh}");
    Ok(())
}
