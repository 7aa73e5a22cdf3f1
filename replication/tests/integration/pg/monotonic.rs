//! Monotonic reads on PostgreSQL by the position each read served (issue 18, finding 2):
//! 0 backwards over 1,000 reads alternating between the replica and the primary while a writer
//! keeps writing. (With the router's known position as the session position, the issue saw
//! 22-62 of 300 such reads go backwards.)

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tierkit_replication::pg::{Read, Write};
use tierkit_replication::{Consistency, Intent, Position};

use super::{SHARED_PAIR, env, fresh_table, set_apply_delay, shared_set};

const READS: usize = 1_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monotonic_reads_never_go_backwards() {
    let _pair = SHARED_PAIR.lock().await;
    let replica = env("TIERKIT_PG_REPLICA");
    set_apply_delay(&replica, Duration::from_millis(10)).await;
    let (set, probes) = shared_set();
    fresh_table(&set, "mono_t").await;

    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (set, stop) = (set.clone(), stop.clone());
        tokio::spawn(async move {
            let mut id = 0i32;
            while !stop.load(Ordering::Relaxed) {
                id += 1;
                let w = Write::begin(set.route(Intent::Write).unwrap())
                    .await
                    .unwrap();
                w.execute("INSERT INTO mono_t VALUES ($1, 0)", &[&id])
                    .await
                    .unwrap();
                w.commit().await.unwrap();
            }
            id
        })
    };

    let mut session = Position(0);
    let (mut backwards, mut seen, mut on_replica, mut switches) = (0u32, 0i32, 0u32, 0u32);
    let mut last_on_replica = false;
    for i in 0..READS {
        // A cycle of three: a primary read (newest data; its served position moves the session
        // ahead of the replica), a monotonic read that takes whatever is eligible now (the
        // replica only if it provably has what the session saw), and a monotonic read that
        // waits for the replica to get there.
        let route = match i % 3 {
            0 => set.route(Intent::Read(Consistency::Primary)).unwrap(),
            1 => set
                .route(Intent::Read(Consistency::MonotonicReads(session)))
                .unwrap(),
            _ => set
                .route_waiting(
                    Intent::Read(Consistency::MonotonicReads(session)),
                    Duration::from_secs(5),
                )
                .await
                .unwrap(),
        };
        let replica_read = !route.is_primary();
        if replica_read {
            on_replica += 1;
        }
        if i > 0 && replica_read != last_on_replica {
            switches += 1;
        }
        last_on_replica = replica_read;
        let r = Read::begin(route).await.unwrap();
        let max: i32 = r
            .query_one("SELECT coalesce(max(id), 0) FROM mono_t", &[])
            .await
            .unwrap()
            .get(0);
        session = session.max(r.finish().await.unwrap());
        if max < seen {
            backwards += 1;
        }
        seen = seen.max(max);
    }
    stop.store(true, Ordering::Relaxed);
    let written = writer.await.unwrap();
    probes.abort();
    set_apply_delay(&replica, Duration::ZERO).await;
    println!(
        "monotonic reads: {READS} reads, {backwards} backwards, {on_replica} on the replica, \
         {switches} switches between nodes, {written} concurrent writes"
    );
    assert_eq!(backwards, 0, "a monotonic read went backwards");
    assert!(
        on_replica >= 300 && switches >= 300,
        "reads should alternate between the nodes"
    );
    assert!(
        written > 10,
        "the writer should keep writing during the reads"
    );
}
