//! Invalidation between two app instances, and the bound when the channel is lost.

use std::time::Duration;

use bytes::Bytes;
use tierkit_cache::remote::{RemoteTier, TieredCache};

use super::support::{eventually, raw, shared_nodes, value};

async fn instance(prefix: &str, name: &str) -> TieredCache {
    TieredCache::builder(
        RemoteTier::builder()
            .nodes_from_list(&shared_nodes())
            .key_prefix(prefix)
            .instance_name(name),
    )
    .near_capacity(10_000)
    .connect()
    .await
    .unwrap()
}

const WAIT: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_on_one_instance_reaches_the_other() {
    let a = instance("t-inv:", "inv-a").await;
    let b = instance("t-inv:", "inv-b").await;
    for i in 0..200 {
        let key = format!("user:{i}");
        a.delete(&key).await.unwrap();
        // B reads through: loader, then Redis holds v1 and B's near cache too.
        let v = b.get_or_load(&key, value("v1")).await.unwrap();
        assert_eq!(v.as_deref(), Some(&b"v1"[..]));
        assert!(b.near().contains(key.as_bytes()));
        // A reads it from Redis (no loader) and keeps it near.
        let v = a.get_or_load(&key, value("never")).await.unwrap();
        assert_eq!(v.as_deref(), Some(&b"v1"[..]));
        a.set(&key, Bytes::from("v2")).await.unwrap();
        eventually("B drops its copy", WAIT, || {
            !b.near().contains(key.as_bytes())
        })
        .await;
        assert_eq!(b.get(&key).await.as_deref(), Some(&b"v2"[..]));
        // And the other way round, with a delete.
        b.delete(&key).await.unwrap();
        eventually("A drops its copy", WAIT, || {
            !a.near().contains(key.as_bytes())
        })
        .await;
        assert_eq!(a.get(&key).await, None);
    }
    let s = b.stats();
    assert!(s.invalidations >= 200, "{s:?}");
    assert!(s.near_hits == 0 && s.remote_hits >= 200, "{s:?}");
    assert_eq!(s.channel_losses, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_flight_per_instance() {
    let a = instance("t-flight:", "flight-a").await;
    a.delete("hot").await.unwrap();
    let loads = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    let (tx, rx) = tokio::sync::watch::channel(false);
    for _ in 0..16 {
        let a = a.clone();
        let loads = loads.clone();
        let mut rx = rx.clone();
        tasks.push(tokio::spawn(async move {
            a.get_or_load("hot", async move {
                loads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                // Hold the load open until every caller has joined.
                let _ = rx.wait_for(|go| *go).await;
                Ok::<_, std::io::Error>(Some(Bytes::from("hot")))
            })
            .await
            .unwrap()
        }));
    }
    eventually("every caller missed", WAIT, || a.stats().near_misses >= 16).await;
    tx.send(true).unwrap();
    for t in tasks {
        assert_eq!(t.await.unwrap().as_deref(), Some(&b"hot"[..]));
    }
    assert_eq!(loads.load(std::sync::atomic::Ordering::SeqCst), 1);
}

/// The id of instance `name`'s tracking connection on `addr`.
async fn client_id(addr: &str, name: &str) -> i64 {
    let mut c = raw(addr).await;
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut c)
        .await
        .unwrap();
    let line = list
        .lines()
        .find(|l| l.contains(&format!(" name=tk:{name}:near ")))
        .unwrap_or_else(|| panic!("no connection named tk:{name}:near in {list}"));
    line.split(' ')
        .find_map(|f| f.strip_prefix("id="))
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_channel_flushes_the_near_cache() {
    let a = instance("t-lost:", "lost-a").await;
    let b = instance("t-lost:", "lost-b").await;
    let key = "profile:7";
    // Through B: a delete by A of a value an earlier run left would send B an invalidation
    // that may land after B's read below and drop the copy this test needs (NOLOOP spares B
    // its own writes).
    b.delete(key).await.unwrap();
    assert_eq!(
        b.get_or_load(key, value("v1")).await.unwrap().as_deref(),
        Some(&b"v1"[..])
    );
    assert!(b.near().contains(key.as_bytes()));
    let home = b.remote().home_node(key).unwrap().to_owned();
    let id = client_id(&home, "lost-b").await;
    // In one transaction: cut B's connection, then write. The server closes B's connection
    // without delivering the write's invalidation, so only the loss itself can tell B.
    let mut admin = raw(&home).await;
    let full = format!("t-lost:{key}");
    let _: redis::Value = redis::pipe()
        .atomic()
        .cmd("CLIENT")
        .arg("KILL")
        .arg("ID")
        .arg(id)
        .cmd("SET")
        .arg(&full)
        .arg("v2")
        .query_async(&mut admin)
        .await
        .unwrap();
    eventually("B sees the loss", WAIT, || b.stats().channel_losses >= 1).await;
    // B never serves v1 again.
    assert!(
        !b.near().contains(key.as_bytes()),
        "near cache flushed on loss"
    );
    let v = b.get_or_load(key, value("from-loader")).await.unwrap();
    assert_ne!(v.as_deref(), Some(&b"v1"[..]));
    // The channel comes back by itself and invalidations flow again.
    eventually("B reconnects", WAIT, || {
        b.remote().nodes().iter().all(|n| n.tracking)
    })
    .await;
    assert_eq!(b.get(key).await.as_deref(), Some(&b"v2"[..]));
    assert!(b.near().contains(key.as_bytes()));
    a.set(key, Bytes::from("v3")).await.unwrap();
    eventually("B drops v2", WAIT, || !b.near().contains(key.as_bytes())).await;
}
