//! A node killed, or paused, marked down and brought back: no error reaches a reader, only the
//! node's own keys move, and a returning node never serves what it held before.

use std::time::Duration;

use bytes::Bytes;
use tierkit_cache::remote::{RemoteTier, RemoteTierBuilder, TieredCache};

use super::support::{OwnRedis, eventually, value};

const WAIT: Duration = Duration::from_secs(10);
const KEYS: usize = 600;

fn builder(servers: &[OwnRedis], name: &str) -> RemoteTierBuilder {
    let mut b = RemoteTier::builder()
        .key_prefix("t-fo:")
        .instance_name(name)
        .op_timeout(Duration::from_millis(200))
        .connect_timeout(Duration::from_millis(200))
        .probe_interval(Duration::from_millis(50))
        .rise(2)
        .fall(2);
    for s in servers {
        b = b.node(s.addr());
    }
    b
}

fn key(i: usize) -> String {
    format!("item:{i}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_one_of_three_moves_only_its_keys_and_fails_no_read() {
    let mut servers: Vec<OwnRedis> = (26382..=26384).map(OwnRedis::start).collect();
    let app = TieredCache::builder(builder(&servers, "kill-app"))
        .connect()
        .await
        .unwrap();
    let tier = app.remote().clone();
    for i in 0..KEYS {
        tier.set(
            key(i),
            Bytes::from(format!("v1-{i}")),
            Duration::from_secs(600),
        )
        .await
        .unwrap();
    }
    let before: Vec<String> = (0..KEYS)
        .map(|i| tier.serving_node(key(i)).unwrap().to_owned())
        .collect();
    let victim = servers[2].addr();
    servers[2].kill();

    // Every read succeeds while the node is detected down: misses fall to the loader.
    for i in 0..KEYS {
        let v = app.get_or_load(key(i), value("loaded")).await;
        assert!(v.is_ok(), "read {i} failed");
    }
    // Writes never fail either: a failed node's writes go to the next ring node.
    for i in 0..KEYS {
        app.set(key(i), Bytes::from(format!("v2-{i}")))
            .await
            .unwrap();
    }
    eventually("victim marked down", WAIT, || {
        tier.is_up(&victim) == Some(false)
    })
    .await;
    let after: Vec<String> = (0..KEYS)
        .map(|i| tier.serving_node(key(i)).unwrap().to_owned())
        .collect();
    let moved: Vec<usize> = (0..KEYS).filter(|&i| before[i] != after[i]).collect();
    assert!(
        moved.iter().all(|&i| before[i] == victim),
        "only the victim's keys move"
    );
    // ... and every one of them does: what moves is exactly the victim's share of the ring
    // (about a third; how close depends on the ring's balance for these node names, which the
    // `cache_tier` example measures over 10,000 keys).
    let victims: Vec<usize> = (0..KEYS).filter(|&i| before[i] == victim).collect();
    assert_eq!(moved, victims, "exactly the victim's keys move");
    assert!(!moved.is_empty());

    // A fresh instance: every key of the two live nodes hits Redis (no loader).
    let fresh = TieredCache::builder(builder(&servers, "kill-fresh"))
        .connect()
        .await
        .unwrap();
    for i in (0..KEYS).filter(|i| before[*i] != victim) {
        let v = fresh.get_or_load(key(i), value("LOADED")).await.unwrap();
        assert_eq!(v.unwrap(), format!("v2-{i}"));
    }
    assert_eq!(fresh.stats().loads, 0, "{:?}", fresh.stats());

    // Restart the node on the same port: it comes back and gets its keys again.
    servers[2] = OwnRedis::start(26384);
    eventually("victim back", WAIT, || tier.is_up(&victim) == Some(true)).await;
    for (i, b) in before.iter().enumerate() {
        assert_eq!(tier.serving_node(key(i)), Some(b.as_str()));
    }
    assert!(tier.stats().downs >= 1 && tier.stats().returns >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_returning_node_never_serves_values_from_before_its_outage() {
    let servers: Vec<OwnRedis> = (26385..=26387).map(OwnRedis::start).collect();
    let tier = builder(&servers, "pause-app").connect().await.unwrap();
    for i in 0..KEYS {
        tier.set(
            key(i),
            Bytes::from(format!("old-{i}")),
            Duration::from_secs(600),
        )
        .await
        .unwrap();
    }
    let paused = servers[0].addr();
    let own: Vec<usize> = (0..KEYS)
        .filter(|&i| tier.home_node(key(i)) == Some(paused.as_str()))
        .collect();
    assert!(!own.is_empty());
    // Paused, not killed: the node keeps its old values through the outage.
    servers[0].pause();
    eventually("paused node marked down", WAIT, || {
        tier.is_up(&paused) == Some(false)
    })
    .await;
    for &i in &own {
        tier.set(
            key(i),
            Bytes::from(format!("new-{i}")),
            Duration::from_secs(600),
        )
        .await
        .unwrap();
        assert_eq!(tier.get(key(i)).await.unwrap().unwrap(), format!("new-{i}"));
    }
    assert!(tier.stats().failovers >= own.len() as u64);
    servers[0].resume();
    eventually("node back", WAIT, || tier.is_up(&paused) == Some(true)).await;
    for &i in &own {
        let v = tier.get(key(i)).await.unwrap();
        assert_ne!(
            v,
            Some(Bytes::from(format!("old-{i}"))),
            "stale value from before the outage"
        );
    }
}
