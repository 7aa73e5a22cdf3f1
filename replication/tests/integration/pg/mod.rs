//! The `postgres` adapter against a real PostgreSQL 15 primary and streaming replica
//! (`TIERKIT_PG_PRIMARY`, `TIERKIT_PG_REPLICA`, started by `.ci/servers.d/postgres.sh`), and a
//! failover on a pair of the test's own (`TIERKIT_PG_BIN`).
//!
//! Run: `TIERKIT_SERVERS=postgres .ci/with-servers cargo test -p tierkit-replication --all-features`

mod bounded;
mod failover;
mod monotonic;
mod ryw;

use std::sync::Arc;
use std::time::Duration;

use tierkit_replication::pg::{Node, Probe, Write};
use tierkit_replication::{Intent, MonitorOptions, NodeId, ReplicaSet, monitor};
use tokio_postgres::NoTls;

/// A variable the servers script exports; fails loudly when it is missing.
pub(crate) fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: these tests need a real PostgreSQL primary and replica; run \
             `TIERKIT_SERVERS=postgres .ci/with-servers cargo test -p tierkit-replication --all-features`"
        )
    })
}

/// Tests that change the shared replica's apply delay run one at a time.
pub(crate) static SHARED_PAIR: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A plain connection (outside any replica set), for setup and ground truth.
pub(crate) async fn connect(conninfo: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(conninfo, NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect {conninfo}: {e}"));
    tokio::spawn(conn);
    client
}

/// `ALTER SYSTEM SET {setting}` and a configuration reload (two statements: ALTER SYSTEM
/// cannot run in the implicit transaction of a multi-statement batch).
pub(crate) async fn alter_system(conninfo: &str, setting: &str) {
    let c = connect(conninfo).await;
    c.batch_execute(&format!("ALTER SYSTEM SET {setting}"))
        .await
        .unwrap();
    c.batch_execute("SELECT pg_reload_conf()").await.unwrap();
}

/// Sets `recovery_min_apply_delay` on a replica and waits until new sessions see it.
pub(crate) async fn set_apply_delay(replica: &str, delay: Duration) {
    let ms = delay.as_millis();
    alter_system(replica, &format!("recovery_min_apply_delay = '{ms}ms'")).await;
    for _ in 0..500 {
        let row = connect(replica)
            .await
            .query_one(
                "SELECT setting::int8 FROM pg_settings WHERE name = 'recovery_min_apply_delay'",
                &[],
            )
            .await
            .unwrap();
        if u128::try_from(row.get::<_, i64>(0)).ok() == Some(ms) {
            return;
        }
        // The reload is asynchronous: wait for the server, not for a guessed time.
        tokio::task::yield_now().await;
    }
    panic!("recovery_min_apply_delay did not become {ms} ms");
}

/// A replica set over the shared pair, with a monitor probing every 50 ms (no failover).
pub(crate) fn shared_set() -> (Arc<ReplicaSet<Node>>, tokio::task::JoinHandle<()>) {
    let set = Arc::new(
        ReplicaSet::builder()
            .primary(NodeId(0), Node::new(env("TIERKIT_PG_PRIMARY")))
            .replica(NodeId(1), Node::new(env("TIERKIT_PG_REPLICA")))
            .build()
            .unwrap(),
    );
    let options = MonitorOptions::default()
        .interval(Duration::from_millis(50))
        .auto_failover(false);
    let task = tokio::spawn(monitor(set.clone(), Probe, options));
    (set, task)
}

/// Creates a fresh table `name (id int primary key, at int8)` on the primary.
pub(crate) async fn fresh_table(set: &ReplicaSet<Node>, name: &str) {
    let w = Write::begin(set.route(Intent::Write).unwrap())
        .await
        .unwrap();
    w.batch_execute(&format!(
        "DROP TABLE IF EXISTS {name}; CREATE TABLE {name} (id int PRIMARY KEY, at int8)"
    ))
    .await
    .unwrap();
    w.commit().await.unwrap();
}

/// Garbage from the outside: a node nobody listens on, a malformed connection string. Errors,
/// counted as node failures; no panic.
#[tokio::test]
async fn unreachable_and_malformed_nodes_are_errors() {
    use tierkit_replication::{Config, Error};
    let set = ReplicaSet::builder()
        .primary(
            NodeId(0),
            Node::new("host=127.0.0.1 port=1 user=postgres connect_timeout=1"),
        )
        .replica(NodeId(1), Node::new("this is = not 'a conninfo"))
        .config(Config::default().fall(1))
        .build()
        .unwrap();
    let err = Write::begin(set.route(Intent::Write).unwrap()).await.err();
    assert!(matches!(err, Some(Error::Engine { .. })), "{err:?}");
    // One failure with fall = 1: the primary is down and writes now fail fast.
    assert_eq!(
        set.route(Intent::Write).err(),
        Some(Error::PrimaryUnavailable { node: NodeId(0) })
    );
    let route = set
        .route(Intent::Read(tierkit_replication::Consistency::Eventual))
        .unwrap();
    assert_eq!(route.id(), NodeId(1));
    let err = tierkit_replication::pg::Read::begin(route).await.err();
    assert!(matches!(err, Some(Error::Engine { .. })), "{err:?}");
    let observed =
        tierkit_replication::PositionProbe::observe(&Probe, &Node::new("port=1 host=127.0.0.1"))
            .await;
    assert!(observed.is_err());
}

/// A write dropped (or cancelled) before commit rolls back at once: its row locks do not
/// outlive it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_write_releases_its_locks() {
    let set = ReplicaSet::builder()
        .primary(NodeId(0), Node::with_pool(env("TIERKIT_PG_PRIMARY"), 2))
        .build()
        .unwrap();
    fresh_table(&set, "dropped_t").await;
    let w = Write::begin(set.route(Intent::Write).unwrap())
        .await
        .unwrap();
    w.execute("INSERT INTO dropped_t VALUES (1, 0)", &[])
        .await
        .unwrap();
    w.commit().await.unwrap();
    let w = Write::begin(set.route(Intent::Write).unwrap())
        .await
        .unwrap();
    w.execute("UPDATE dropped_t SET at = 1 WHERE id = 1", &[])
        .await
        .unwrap();
    drop(w); // no commit
    // Another connection takes the same row lock; it would wait forever for an open
    // transaction, so give it a lock timeout.
    let c = connect(&env("TIERKIT_PG_PRIMARY")).await;
    c.batch_execute("SET lock_timeout = '5s'").await.unwrap();
    c.execute("UPDATE dropped_t SET at = 2 WHERE id = 1", &[])
        .await
        .expect("the dropped write's lock is released");
    let at: i64 = c
        .query_one("SELECT at FROM dropped_t WHERE id = 1", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(at, 2, "the dropped write was rolled back");
}
