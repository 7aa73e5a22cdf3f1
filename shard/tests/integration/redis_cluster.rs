//! Against a real 3-master Redis Cluster (`.ci/servers.d/redis-cluster.sh`), address list in
//! `TIERKIT_REDIS_CLUSTER`. The tests share the cluster, so they run one at a time, and the
//! reshard test moves its slots back at the end.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use tierkit_shard::redis_cluster::{fetch_topology, redirect_of};
use tierkit_shard::{ClusterRedirect, ClusterRouter, Redirect, RedirectAction, ShardId};

/// One test at a time on the shared cluster.
static CLUSTER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn cluster_addrs() -> Vec<String> {
    match std::env::var("TIERKIT_REDIS_CLUSTER") {
        Ok(v) if !v.trim().is_empty() => v.split(',').map(|s| s.trim().to_string()).collect(),
        _ => panic!(
            "TIERKIT_REDIS_CLUSTER is not set: these tests need a real Redis Cluster. Run them with \
             `TIERKIT_SERVERS=redis-cluster .ci/with-servers cargo test -p tierkit-shard --all-features`"
        ),
    }
}

async fn connect(addr: &str) -> MultiplexedConnection {
    // The redis crate's default gives up on a reply after 500 ms, which a loaded 2-core machine
    // exceeds now and then (seen at a load average of 9 by `sharded_users --redis`).
    let config =
        redis::AsyncConnectionConfig::new().set_response_timeout(Some(Duration::from_secs(10)));
    redis::Client::open(format!("redis://{addr}/"))
        .unwrap()
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {addr}: {e}"))
}

/// The application's side: the router decides, a `redis` connection per node sends.
struct Client {
    router: ClusterRouter,
    conns: tokio::sync::Mutex<HashMap<String, MultiplexedConnection>>,
    seed: String,
}

impl Client {
    async fn new(seed: &str) -> Client {
        let mut conn = connect(seed).await;
        let topology = fetch_topology(&mut conn).await.unwrap();
        Client {
            router: ClusterRouter::new(&topology),
            conns: tokio::sync::Mutex::new(HashMap::new()),
            seed: seed.to_string(),
        }
    }

    async fn conn(&self, node: ShardId) -> MultiplexedConnection {
        let addr = self.router.node(node).unwrap().addr.clone();
        let mut conns = self.conns.lock().await;
        if let Some(c) = conns.get(&addr) {
            return c.clone();
        }
        let c = connect(&addr).await;
        conns.insert(addr, c.clone());
        c
    }

    /// Runs a single-key command, following MOVED / ASK / TRYAGAIN.
    async fn exec<T: redis::FromRedisValue>(&self, key: &str, cmd: &redis::Cmd) -> T {
        let mut node = self.router.route(key).expect("covered");
        let mut asking = false;
        for _ in 0..1_000 {
            let mut conn = self.conn(node).await;
            let mut pipe = redis::pipe();
            if asking {
                pipe.cmd("ASKING").ignore();
            }
            pipe.add_command(cmd.clone());
            match pipe.query_async::<(T,)>(&mut conn).await {
                Ok((v,)) => {
                    if self.router.refresh_due() {
                        let mut seed = connect(&self.seed).await;
                        self.router.refresh_from(&mut seed).await.unwrap();
                    }
                    return v;
                }
                Err(e) => match self.router.on_redis_error(&e).unwrap() {
                    Some(RedirectAction::Retry { node: n, asking: a }) => (node, asking) = (n, a),
                    Some(RedirectAction::RetryLater) => {
                        // The client's back-off on TRYAGAIN, not a test synchronisation.
                        tokio::time::sleep(Duration::from_millis(2)).await;
                        (node, asking) = (self.router.route(key).expect("covered"), false);
                    }
                    _ => panic!("{key}: {e}"),
                },
            }
        }
        panic!("{key}: too many redirects");
    }
}

/// The cluster's own view, from `CLUSTER NODES` (a different command and format from the
/// `CLUSTER SHARDS` the router reads): slot -> master address, and master address -> id.
async fn cluster_nodes(addr: &str) -> (Vec<Option<String>>, HashMap<String, String>) {
    let mut conn = connect(addr).await;
    let text: String = redis::cmd("CLUSTER")
        .arg("NODES")
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut owners = vec![None; 16_384];
    let mut ids = HashMap::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 8 || !f[2].contains("master") {
            continue;
        }
        let node_addr = f[1].split('@').next().unwrap().to_string();
        ids.insert(node_addr.clone(), f[0].to_string());
        for range in &f[8..] {
            if range.starts_with('[') {
                continue; // a migrating/importing marker
            }
            let (a, b) = range.split_once('-').unwrap_or((range, range));
            let (a, b) = (a.parse::<usize>().unwrap(), b.parse::<usize>().unwrap());
            for owner in &mut owners[a..=b] {
                *owner = Some(node_addr.clone());
            }
        }
    }
    (owners, ids)
}

/// Slots on which the router and the cluster disagree.
async fn disagreements(router: &ClusterRouter, addr: &str) -> usize {
    let (owners, _) = cluster_nodes(addr).await;
    (0..16_384u16)
        .filter(|&s| {
            let ours = router
                .slot_owner(s)
                .and_then(|n| router.node(n))
                .map(|n| n.addr.clone());
            ours != owners[usize::from(s)]
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topology_agrees_with_the_cluster_on_every_slot() {
    let _one = CLUSTER.lock().await;
    let addrs = cluster_addrs();
    let client = Client::new(&addrs[0]).await;
    assert_eq!(client.router.nodes().len(), 3, "three masters");
    assert_eq!(disagreements(&client.router, &addrs[1]).await, 0);
    // The slot table is reachable as a HashSlots strategy with the same owners.
    let slots = client.router.hash_slots().unwrap();
    for s in [0u16, 5460, 5461, 10922, 10923, 16383] {
        assert_eq!(slots.owner(s), client.router.slot_owner(s));
    }
    // Keys sent straight to the routed node are served there: no redirect at all.
    for i in 0..300 {
        let key = format!("topo:{i}");
        let mut conn = client.conn(client.router.route(&key).unwrap()).await;
        let r: redis::RedisResult<Option<String>> =
            redis::cmd("GET").arg(&key).query_async(&mut conn).await;
        assert!(r.is_ok(), "{key}: {r:?}");
    }
    assert_eq!(client.router.stats().moved, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crossslot_is_refused_before_it_is_sent() {
    let _one = CLUSTER.lock().await;
    let addrs = cluster_addrs();
    let client = Client::new(&addrs[0]).await;
    // "a" and "b" are on different slots; the router refuses before any byte is sent.
    assert_eq!(
        client.router.route_all(["a", "b"]),
        Err(Redirect::CrossSlot)
    );
    // And Redis would have refused the same request: the router agrees with the server.
    let mut conn = client.conn(client.router.route("a").unwrap()).await;
    let err = redis::cmd("MGET")
        .arg("a")
        .arg("b")
        .query_async::<Vec<Option<String>>>(&mut conn)
        .await
        .unwrap_err();
    assert!(
        matches!(
            redirect_of(&err),
            Ok(Some(ClusterRedirect::CrossSlot)) | Ok(Some(ClusterRedirect::Moved { .. }))
        ),
        "{err}"
    );
    // Same tag, same slot: routed and served.
    let (slot, node) = client.router.route_all(["{t}a", "{t}b"]).unwrap().unwrap();
    assert_eq!(slot, ClusterRouter::slot("t"));
    let mut conn = client.conn(node).await;
    let got: Vec<Option<String>> = redis::cmd("MGET")
        .arg("{t}a")
        .arg("{t}b")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(got.len(), 2);
}

async fn reshard(from: &str, to: &str, seed: &str, slots: u32) {
    let (from, to, seed) = (from.to_string(), to.to_string(), seed.to_string());
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("redis-cli")
            .args([
                "--cluster",
                "reshard",
                &seed,
                "--cluster-from",
                &from,
                "--cluster-to",
                &to,
            ])
            .args(["--cluster-slots", &slots.to_string(), "--cluster-yes"])
            .output()
    })
    .await
    .unwrap()
    .expect("redis-cli runs");
    assert!(
        out.status.success(),
        "redis-cli --cluster reshard failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_reshard_of_500_slots_loses_nothing() {
    let _one = CLUSTER.lock().await;
    let addrs = cluster_addrs();
    let seed = addrs[0].clone();
    let client = Arc::new(Client::new(&seed).await);
    let (owners, ids) = cluster_nodes(&seed).await;
    let from = owners[0].clone().unwrap();
    let to = owners[16_383].clone().unwrap();
    assert_ne!(from, to);
    // Keys in the source's first 1,000 slots: redis-cli moves its lowest 500, so about half
    // of them move during the test.
    let keys: Vec<String> = (0..)
        .map(|i| format!("rs:{i}"))
        .filter(|k| ClusterRouter::slot(k.as_str()) < 1_000)
        .take(200)
        .collect();
    let acked: Arc<Vec<AtomicU64>> = Arc::new(keys.iter().map(|_| AtomicU64::new(0)).collect());
    let issued: Arc<Vec<AtomicU64>> = Arc::new(keys.iter().map(|_| AtomicU64::new(0)).collect());
    for k in &keys {
        client
            .exec::<()>(k, redis::cmd("SET").arg(k).arg(0u64))
            .await;
    }
    let keys = Arc::new(keys);
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (client, keys, acked, issued, stop) = (
            client.clone(),
            keys.clone(),
            acked.clone(),
            issued.clone(),
            stop.clone(),
        );
        tokio::spawn(async move {
            let mut round = 0u64;
            // Keep writing until told to stop, then finish one more full round.
            while !stop.load(Ordering::Acquire) {
                round += 1;
                for (i, k) in keys.iter().enumerate() {
                    issued[i].store(round, Ordering::Release);
                    client
                        .exec::<()>(k, redis::cmd("SET").arg(k).arg(round))
                        .await;
                    acked[i].store(round, Ordering::Release);
                }
            }
            round
        })
    };
    let reader = {
        let (client, keys, acked, issued, stop) = (
            client.clone(),
            keys.clone(),
            acked.clone(),
            issued.clone(),
            stop.clone(),
        );
        tokio::spawn(async move {
            let (mut reads, mut wrong) = (0u64, Vec::new());
            while !stop.load(Ordering::Acquire) {
                for (i, k) in keys.iter().enumerate() {
                    let floor = acked[i].load(Ordering::Acquire);
                    let got: Option<u64> = client.exec(k, redis::cmd("GET").arg(k)).await;
                    let ceiling = issued[i].load(Ordering::Acquire);
                    reads += 1;
                    if !got.is_some_and(|v| floor <= v && v <= ceiling) {
                        wrong.push((k.clone(), got, floor, ceiling));
                    }
                }
            }
            (reads, wrong)
        })
    };
    reshard(&ids[&from], &ids[&to], &seed, 500).await;
    stop.store(true, Ordering::Release);
    let rounds = writer.await.unwrap();
    let (reads, wrong) = reader.await.unwrap();
    // Every acknowledged write is there.
    let mut lost = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        let got: Option<u64> = client.exec(k, redis::cmd("GET").arg(k)).await;
        if got != Some(acked[i].load(Ordering::Acquire)) {
            lost.push((k.clone(), got));
        }
    }
    let stats = client.router.stats();
    let before = disagreements(&client.router, &seed).await;
    let mut conn = connect(&seed).await;
    client.router.refresh_from(&mut conn).await.unwrap();
    let after = disagreements(&client.router, &seed).await;
    println!(
        "reshard of 500 slots under load: {rounds} write rounds over {} keys, {reads} reads, \
         {} wrong, {} lost; router {stats:?}; slots wrong before the refresh {before}, after {after}",
        keys.len(),
        wrong.len(),
        lost.len()
    );
    // Put the slots back (redis-cli takes the lowest slots of the source again).
    reshard(&ids[&to], &ids[&from], &seed, 500).await;
    assert!(
        wrong.is_empty(),
        "wrong reads: {:?}",
        &wrong[..wrong.len().min(5)]
    );
    assert!(lost.is_empty(), "lost writes: {lost:?}");
    assert!(
        stats.moved > 0 || stats.asks > 0,
        "the reshard was not seen: {stats:?}"
    );
    assert_eq!(after, 0, "router disagrees after one refresh");
    let (restored, _) = cluster_nodes(&seed).await;
    assert_eq!(restored, owners, "the layout was not restored");
}
