//! Keys land on the node an independent ring says, physically, and weights shift the share.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use tierkit_cache::remote::{RemoteError, RemoteTier};
use tierkit_consistent_hash::{HashRing, Placement};

use super::support::{raw, raw_get, shared_nodes};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_live_on_the_ring_node_and_nowhere_else() {
    let nodes = shared_nodes();
    let addrs: Vec<String> = nodes.split(',').map(str::to_owned).collect();
    let tier = RemoteTier::builder()
        .nodes_from_list(&nodes)
        .key_prefix("t-place:")
        .instance_name("place")
        .connect()
        .await
        .unwrap();
    // The model: a ring built independently with the documented defaults.
    let model = HashRing::from_nodes(addrs.clone()).unwrap();
    let mut raws = Vec::new();
    for a in &addrs {
        raws.push(raw(a).await);
    }
    let mut per_node: HashMap<&str, usize> = HashMap::new();
    for i in 0..300 {
        let key = format!("key-{i}");
        let home = model.locate(key.as_bytes()).unwrap();
        assert_eq!(tier.home_node(&key), Some(home.as_str()));
        assert_eq!(tier.serving_node(&key), Some(home.as_str()));
        tier.set(&key, Bytes::from(format!("v{i}")), Duration::from_secs(60))
            .await
            .unwrap();
        *per_node.entry(home.as_str()).or_default() += 1;
        let full = format!("t-place:{key}");
        for (a, c) in addrs.iter().zip(raws.iter_mut()) {
            let found = raw_get(c, full.as_bytes()).await;
            if a == home {
                assert_eq!(found.as_deref(), Some(format!("v{i}").as_bytes()));
            } else {
                assert_eq!(found, None, "{key} also on {a}");
            }
        }
        assert_eq!(tier.get(&key).await.unwrap().unwrap(), format!("v{i}"));
    }
    assert_eq!(per_node.len(), 3, "every node got keys: {per_node:?}");

    // get_many: one MGET per node, answers in order, misses as None.
    let keys: Vec<String> = (0..700).map(|i| format!("key-{i}")).collect();
    let got = tier.get_many(&keys).await;
    assert_eq!(got.len(), 700);
    for (i, g) in got.into_iter().enumerate() {
        let want = (i < 300).then(|| Bytes::from(format!("v{i}")));
        assert_eq!(g.unwrap(), want, "key-{i}");
    }

    // TTLs: zero deletes, MAX never expires, sub-millisecond rounds up.
    tier.set("ttl-max", Bytes::from_static(b"x"), Duration::MAX)
        .await
        .unwrap();
    let home = tier.home_node("ttl-max").unwrap().to_owned();
    let mut c = raw(&home).await;
    let pttl: i64 = redis::cmd("PTTL")
        .arg("t-place:ttl-max")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(pttl, -1, "no expiry");
    tier.set("ttl-max", Bytes::from_static(b"x"), Duration::from_nanos(1))
        .await
        .unwrap();
    tier.set("ttl-max", Bytes::from_static(b"x"), Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(tier.get("ttl-max").await.unwrap(), None);
    tier.delete("key-0").await.unwrap();
    assert_eq!(tier.get("key-0").await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weights_and_vnodes_follow_the_ring() {
    let nodes = shared_nodes();
    let addrs: Vec<&str> = nodes.split(',').collect();
    let tier = RemoteTier::builder()
        .weighted_node(addrs[0], 2)
        .node(addrs[1])
        .node(addrs[2])
        .vnodes(100)
        .hash_secret(1, 2)
        .key_prefix("t-weight:")
        .connect()
        .await
        .unwrap();
    let model = HashRing::builder()
        .vnodes(100)
        .hasher(tierkit_consistent_hash::KeyHasher::with_secret(1, 2))
        .weighted_node(addrs[0].to_owned(), 2)
        .nodes([addrs[1].to_owned(), addrs[2].to_owned()])
        .build()
        .unwrap();
    let mut heavy = 0;
    for i in 0..10_000u32 {
        let key = format!("k{i}");
        let home = tier.home_node(&key).unwrap();
        assert_eq!(Some(home), model.locate(key.as_bytes()).map(String::as_str));
        heavy += usize::from(home == addrs[0]);
    }
    // Weight 2 of 4: about half the keys.
    assert!(
        (4_000..6_000).contains(&heavy),
        "heavy node holds {heavy} of 10000"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_settings_and_unreachable_nodes() {
    let err = RemoteTier::builder().connect().await.unwrap_err();
    assert!(
        matches!(err, RemoteError::InvalidConfig { name: "node", .. }),
        "{err}"
    );
    // Nothing listens on port 1: the tier builds, the node starts down, reads fail typed.
    let tier = RemoteTier::builder()
        .node("127.0.0.1:1")
        .connect_timeout(Duration::from_millis(200))
        .connect()
        .await
        .unwrap();
    assert_eq!(tier.is_up("127.0.0.1:1"), Some(false));
    let e = tier.get("k").await.unwrap_err();
    assert_eq!(e, RemoteError::NoNodeUp { nodes: 1 });
    assert!(tier.set("k", Bytes::new(), Duration::MAX).await.is_err());
    let many = tier.get_many(&["a", "b"]).await;
    assert!(many.iter().all(Result::is_err));
}
