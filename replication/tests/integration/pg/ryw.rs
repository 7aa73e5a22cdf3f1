//! Read-your-writes on PostgreSQL: 0 stale reads over 1,000 reads with an injected apply delay;
//! the token must be read after COMMIT (issue 18, finding 6); waits are woken by probes on
//! demand (finding 5).

use std::time::Duration;

use tierkit_replication::pg::{Read, Write};
use tierkit_replication::{Consistency, Intent, Position, SessionToken};
use tokio_postgres::types::PgLsn;

use super::{SHARED_PAIR, env, fresh_table, set_apply_delay, shared_set};

const READS: i32 = 1_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_your_writes_is_never_stale_with_apply_delay() {
    let _pair = SHARED_PAIR.lock().await;
    let replica = env("TIERKIT_PG_REPLICA");
    set_apply_delay(&replica, Duration::from_millis(30)).await;
    let (set, probes) = shared_set();
    fresh_table(&set, "ryw_t").await;

    let (mut stale, mut on_replica) = (0u32, 0u32);
    for i in 0..READS {
        let w = Write::begin(set.route(Intent::Write).unwrap())
            .await
            .unwrap();
        w.execute("INSERT INTO ryw_t VALUES ($1, 0)", &[&i])
            .await
            .unwrap();
        let token = w.commit().await.unwrap();
        let intent = Intent::Read(Consistency::ReadYourWrites(token));
        // Every tenth read waits for the replica; the others read at once.
        let route = if i % 10 == 0 {
            set.route_waiting(intent, Duration::from_secs(5))
                .await
                .unwrap()
        } else {
            set.route(intent).unwrap()
        };
        if !route.is_primary() {
            on_replica += 1;
        }
        let r = Read::begin(route).await.unwrap();
        let n: i64 = r
            .query_one("SELECT count(*) FROM ryw_t WHERE id = $1", &[&i])
            .await
            .unwrap()
            .get(0);
        r.finish().await.unwrap();
        if n != 1 {
            stale += 1;
        }
    }
    probes.abort();
    set_apply_delay(&replica, Duration::ZERO).await;
    println!("read-your-writes: {READS} reads, {stale} stale, {on_replica} served by the replica");
    assert_eq!(stale, 0, "read-your-writes served stale data");
    assert!(
        on_replica >= 50,
        "the waiting reads should be served by the replica: {on_replica}"
    );
}

/// Finding 6: a position read inside the transaction (before the commit record) is not a
/// valid token; a replica that has replayed up to it may still lack the write. The token
/// `Write::commit` reads after COMMIT never is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_from_inside_the_transaction_is_stale_and_ours_is_not() {
    let _pair = SHARED_PAIR.lock().await;
    let replica = env("TIERKIT_PG_REPLICA");
    set_apply_delay(&replica, Duration::from_millis(200)).await;
    let (set, probes) = shared_set();
    fresh_table(&set, "ryw_token_t").await;
    let (mut stale_inside, mut stale_after, mut checked) = (0u32, 0u32, 0u32);
    for i in 0..10 {
        let w = Write::begin(set.route(Intent::Write).unwrap())
            .await
            .unwrap();
        let lsn: PgLsn = w
            .query_one(
                "INSERT INTO ryw_token_t VALUES ($1, 0) RETURNING pg_current_wal_lsn()",
                &[&i],
            )
            .await
            .unwrap()
            .get(0);
        let good = w.commit().await.unwrap();
        let bad = SessionToken {
            position: Position(u64::from(lsn)),
            ..good
        };
        for (token, stale) in [(bad, &mut stale_inside), (good, &mut stale_after)] {
            let route = set
                .route_waiting(
                    Intent::Read(Consistency::ReadYourWrites(token)),
                    Duration::from_secs(5),
                )
                .await
                .unwrap();
            if route.is_primary() {
                continue;
            }
            checked += 1;
            let r = Read::begin(route).await.unwrap();
            let n: i64 = r
                .query_one("SELECT count(*) FROM ryw_token_t WHERE id = $1", &[&i])
                .await
                .unwrap()
                .get(0);
            r.finish().await.unwrap();
            if n != 1 {
                *stale += 1;
            }
        }
    }
    probes.abort();
    set_apply_delay(&replica, Duration::ZERO).await;
    println!(
        "tokens: {stale_inside} of 10 reads stale with the in-transaction LSN, {stale_after} with \
         the LSN after COMMIT ({checked} replica reads)"
    );
    assert_eq!(stale_after, 0);
    assert!(
        stale_inside > 0,
        "the in-transaction LSN should have been caught stale"
    );
}

/// Finding 5: a waiting read is woken by a probe it asks for, not by the next periodic round.
/// The monitor's periodic rounds are an hour apart here: only an on-demand probe can tell the
/// set that the replica caught up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_reads_are_woken_by_probes_on_demand() {
    let _pair = SHARED_PAIR.lock().await;
    let set = std::sync::Arc::new(
        tierkit_replication::ReplicaSet::builder()
            .primary(
                tierkit_replication::NodeId(0),
                tierkit_replication::pg::Node::new(env("TIERKIT_PG_PRIMARY")),
            )
            .replica(
                tierkit_replication::NodeId(1),
                tierkit_replication::pg::Node::new(env("TIERKIT_PG_REPLICA")),
            )
            .build()
            .unwrap(),
    );
    let options = tierkit_replication::MonitorOptions::default()
        .interval(Duration::from_secs(3_600))
        .auto_failover(false);
    let probes = tokio::spawn(tierkit_replication::monitor(
        set.clone(),
        tierkit_replication::pg::Probe,
        options,
    ));
    fresh_table(&set, "ryw_wake_t").await;
    let mut on_replica = 0;
    for i in 0..20 {
        let w = Write::begin(set.route(Intent::Write).unwrap())
            .await
            .unwrap();
        w.execute("INSERT INTO ryw_wake_t VALUES ($1, 0)", &[&i])
            .await
            .unwrap();
        let token = w.commit().await.unwrap();
        let route = set
            .route_waiting(
                Intent::Read(Consistency::ReadYourWrites(token)),
                Duration::from_secs(10),
            )
            .await
            .unwrap();
        if !route.is_primary() {
            on_replica += 1;
        }
    }
    probes.abort();
    assert_eq!(
        on_replica, 20,
        "every waiting read should reach the replica"
    );
}
