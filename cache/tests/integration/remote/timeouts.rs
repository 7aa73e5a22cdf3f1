//! A paused server (SIGSTOP): requests time out with a typed error, the node is marked down,
//! reads are served by the loader, and the near cache is flushed (silent channel loss).

use std::time::Duration;

use bytes::Bytes;
use tierkit_cache::remote::{RemoteError, RemoteTier, TieredCache};

use super::support::{OwnRedis, eventually, value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_server_times_out_and_is_routed_around() {
    let server = OwnRedis::start(26388);
    let spare = OwnRedis::start(26389);
    let remote = RemoteTier::builder()
        .node(server.addr())
        .node(spare.addr())
        .key_prefix("t-to:")
        .op_timeout(Duration::from_millis(100))
        .connect_timeout(Duration::from_millis(100))
        .probe_interval(Duration::from_millis(50))
        .fall(2)
        .rise(2);
    let app: TieredCache = TieredCache::builder(remote).connect().await.unwrap();
    let tier = app.remote().clone();
    let key = (0..)
        .map(|i| format!("k{i}"))
        .find(|k| tier.home_node(k) == Some(server.addr().as_str()))
        .unwrap();
    assert_eq!(
        app.get_or_load(&key, value("v1")).await.unwrap().unwrap(),
        "v1"
    );
    assert!(app.near().contains(key.as_bytes()));

    server.pause();
    // The first request after the pause times out, typed, with the configured limit.
    let err = tier.get(&key).await.unwrap_err();
    assert_eq!(
        err,
        RemoteError::Timeout {
            node: server.addr(),
            after: Duration::from_millis(100)
        }
    );
    assert!(err.is_node_failure());
    // The silent loss is found by the probe: near cache flushed, node down.
    eventually("node down", Duration::from_secs(5), || {
        tier.is_up(&server.addr()) == Some(false)
    })
    .await;
    assert!(app.stats().channel_losses >= 1);
    assert!(!app.near().contains(key.as_bytes()));
    // Reads never fail: the stand-in misses and the loader serves.
    let v = app.get_or_load(&key, value("v2")).await.unwrap();
    assert_eq!(v.unwrap(), "v2");
    assert_eq!(tier.serving_node(&key), Some(spare.addr().as_str()));
    assert!(tier.stats().timeouts >= 1);

    server.resume();
    eventually("node back", Duration::from_secs(5), || {
        tier.is_up(&server.addr()) == Some(true)
    })
    .await;
    // Back and flushed: the value from before the pause is gone.
    assert_eq!(tier.get(&key).await.unwrap(), None);
    app.set(&key, Bytes::from("v3")).await.unwrap();
    assert_eq!(app.get(&key).await.unwrap(), "v3");
}
