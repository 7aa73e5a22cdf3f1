//! Bounded staleness on PostgreSQL, in time and in WAL bytes (issue 18, finding 3): 0 reads
//! older than the bound, with the replica within the bound and then far past it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tierkit_replication::pg::{Read, Write};
use tierkit_replication::{Clock, Consistency, Intent, SystemClock};

use super::{SHARED_PAIR, env, fresh_table, set_apply_delay, shared_set};

const READS_PER_PHASE: usize = 300;
const TIME_BOUND: Duration = Duration::from_millis(150);
const BYTE_BOUND: u64 = 16 * 1024;

/// `(id, acknowledged at (SystemClock nanos), token position)` of every write, in order.
type Acks = Arc<Mutex<Vec<(i32, u64, u64)>>>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bounded_staleness_is_never_violated() {
    let _pair = SHARED_PAIR.lock().await;
    let replica = env("TIERKIT_PG_REPLICA");
    let (set, probes) = shared_set();
    fresh_table(&set, "bounded_t").await;
    let acks: Acks = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (set, stop, acks) = (set.clone(), stop.clone(), acks.clone());
        tokio::spawn(async move {
            let mut id = 0i32;
            while !stop.load(Ordering::Relaxed) {
                id += 1;
                let w = Write::begin(set.route(Intent::Write).unwrap())
                    .await
                    .unwrap();
                w.execute("INSERT INTO bounded_t VALUES ($1, 0)", &[&id])
                    .await
                    .unwrap();
                let token = w.commit().await.unwrap();
                acks.lock()
                    .push((id, SystemClock.now_nanos(), token.position.0));
            }
        })
    };

    let (mut violations, mut on_replica, mut reads) = (0u32, 0u32, 0u32);
    for delay in [Duration::ZERO, Duration::from_millis(400)] {
        set_apply_delay(&replica, delay).await;
        for i in 0..READS_PER_PHASE {
            let by_time = i % 2 == 0;
            // Ground truth before routing: what must be visible at the latest.
            let start = SystemClock.now_nanos();
            let must_see = {
                let acks = acks.lock();
                if by_time {
                    let before = start.saturating_sub(TIME_BOUND.as_nanos() as u64);
                    acks.iter()
                        .take_while(|(_, at, _)| *at < before)
                        .map(|(id, _, _)| *id)
                        .last()
                } else {
                    let newest = acks.last().map_or(0, |(_, _, p)| *p);
                    let floor = newest.saturating_sub(BYTE_BOUND);
                    acks.iter()
                        .take_while(|(_, _, p)| *p <= floor)
                        .map(|(id, _, _)| *id)
                        .last()
                }
            }
            .unwrap_or(0);
            let consistency = if by_time {
                Consistency::BoundedStalenessTime(TIME_BOUND)
            } else {
                Consistency::BoundedStaleness(BYTE_BOUND)
            };
            let route = set.route(Intent::Read(consistency)).unwrap();
            assert!(!route.beyond_bound(), "the default fallback is the primary");
            if !route.is_primary() {
                on_replica += 1;
            }
            let r = Read::begin(route).await.unwrap();
            let max: i32 = r
                .query_one("SELECT coalesce(max(id), 0) FROM bounded_t", &[])
                .await
                .unwrap()
                .get(0);
            r.finish().await.unwrap();
            reads += 1;
            if max < must_see {
                violations += 1;
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    probes.abort();
    set_apply_delay(&replica, Duration::ZERO).await;
    println!(
        "bounded staleness ({} ms / {} KiB): {reads} reads, {violations} past the bound, \
         {on_replica} served by the replica",
        TIME_BOUND.as_millis(),
        BYTE_BOUND / 1024
    );
    assert_eq!(violations, 0, "a bounded read was older than its bound");
    assert!(
        on_replica > 0,
        "the replica should serve while within the bound"
    );
}
