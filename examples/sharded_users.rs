//! Sharding users, the celebrity problem and resharding, while traffic continues.
//!
//! ```text
//! cargo run --release --example sharded_users
//! TIERKIT_SERVERS=redis-cluster .ci/with-servers cargo run --release --example sharded_users -- --redis
//! ```
//!
//! 100,000 users live on 4 shards (Redis-style hash slots by user id). Two client threads read
//! and write profiles; one celebrity draws a third of all traffic and overloads its shard. The
//! hot-key detector finds the celebrity, the map pins them to a dedicated shard (a one-key
//! migration), then the cluster grows from 4 to 5 shards with a live migration. Every read and
//! write goes through the route protocol (server-side MOVED/ASK checks), and at the end every
//! user's profile is verified against the last value written. Deterministic workload (seeded).

// Request counts become percentages for display.
#![allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tierkit::shard::{
    Arrival, HashSlots, HotKeyDetector, MigrationIo, Migrator, Redirect, ReshardPlan, ShardId,
    ShardMap, Step,
};

const USERS: u64 = 100_000;
const CELEBRITY: u64 = 42_424;
const CELEBRITY_SHARD: ShardId = ShardId(9);

/// One shard: a table of profiles and a request counter.
#[derive(Default)]
struct Shard {
    rows: Mutex<BTreeMap<u64, u64>>,
    requests: AtomicU64,
}

type Map = ShardMap<Shard>;

fn lock(shard: &Shard) -> std::sync::MutexGuard<'_, BTreeMap<u64, u64>> {
    shard.rows.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One request as shard servers execute it (Redis Cluster's rules): each shard validates
/// under its own lock with the map's current view and answers MOVED / ASK / TRYAGAIN, which the
/// client follows. `op` runs on the rows once a shard accepts.
fn request<T>(map: &Map, user: u64, mut op: impl FnMut(&mut BTreeMap<u64, u64>) -> T) -> T {
    let (mut at, mut asking) = (map.route(&user).first_shard(), false);
    loop {
        let shard = map.shard(at).expect("routes name existing shards");
        shard.requests.fetch_add(1, Ordering::Relaxed);
        let mut rows = lock(&shard);
        let arrival = match (asking, rows.contains_key(&user)) {
            (true, _) => Arrival::Asking,
            (false, true) => Arrival::Present,
            (false, false) => Arrival::Absent,
        };
        match map.snapshot().check(&user, at, arrival) {
            Ok(()) => return op(&mut rows),
            Err(Redirect::Ask(s)) => (at, asking) = (s, true),
            Err(Redirect::Moved(s)) => (at, asking) = (s, false),
            Err(_) => {
                // TRYAGAIN: the step is preparing; route again with a newer view.
                drop(rows);
                std::thread::yield_now();
                (at, asking) = (map.route(&user).first_shard(), false);
            }
        }
    }
}

fn write(map: &Map, user: u64, value: u64) {
    request(map, user, |rows| rows.insert(user, value));
}

fn read(map: &Map, user: u64) -> Option<u64> {
    request(map, user, |rows| rows.get(&user).copied())
}

/// The migrator's access to the shards.
struct Io<'a> {
    map: &'a Map,
}

impl MigrationIo for Io<'_> {
    type Key = u64;
    type Error = std::convert::Infallible;

    fn scan(
        &mut self,
        plan: &ReshardPlan,
        step: &Step,
        cursor: u64,
    ) -> Result<(Vec<u64>, u64), Self::Error> {
        let shard = self.map.shard(step.source).expect("plan shards exist");
        let rows = lock(&shard);
        let page: Vec<u64> = rows
            .range(cursor..)
            .map(|(k, _)| *k)
            .filter(|k| plan.moves(k) == Some((step.source, step.target)))
            .take(1024)
            .collect();
        let next = if page.len() == 1024 {
            page[1023] + 1
        } else {
            0
        };
        Ok((page, next))
    }

    fn move_keys(&mut self, step: &Step, keys: &[u64]) -> Result<(), Self::Error> {
        let (source, target) = (self.map.shard(step.source), self.map.shard(step.target));
        let (Some(source), Some(target)) = (source, target) else {
            return Ok(());
        };
        for k in keys {
            // Per key, atomically (as Redis's MIGRATE): lock source then target, always in
            // that order; clients hold one shard lock at a time.
            let mut from = lock(&source);
            if let Some(v) = from.remove(k) {
                lock(&target).insert(*k, v);
            }
        }
        Ok(())
    }
}

/// Deterministic traffic: 1/3 to the celebrity, the rest Zipf-ish over all users.
struct Traffic(u64);
impl Traffic {
    fn next_user(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        if self.0.is_multiple_of(3) {
            CELEBRITY
        } else {
            (self.0 >> 8) % USERS
        }
    }
}

/// Runs two client threads until `stop`; each writes only its own users (`user % 2 == t`) and
/// remembers its last write, so the final state can be checked exactly.
fn clients(
    map: &Map,
    detector: &HotKeyDetector<u64>,
    stop: &AtomicBool,
    ops: u64,
    last: &[Mutex<BTreeMap<u64, u64>>; 2],
) -> u64 {
    let errors = AtomicU64::new(0);
    std::thread::scope(|s| {
        for t in 0..2u64 {
            let (errors, last) = (&errors, &last[t as usize]);
            s.spawn(move || {
                let mut traffic = Traffic(0x9e37_79b9 + t);
                let mut n = 0;
                while n < ops || (ops == 0 && !stop.load(Ordering::Relaxed)) {
                    if ops == 0 && stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let user = traffic.next_user();
                    detector.record(&user);
                    if n % 10 == 0 && user % 2 == t {
                        let value = n + 1_000_000 * (t + 1);
                        write(map, user, value);
                        last.lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .insert(user, value);
                    } else if read(map, user).is_none() {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                    n += 1;
                }
            });
        }
    });
    errors.into_inner()
}

fn loads(map: &Map) -> Vec<(ShardId, u64)> {
    let snap = map.snapshot();
    snap.shard_ids()
        .filter_map(|id| {
            snap.shard(id)
                .map(|s| (id, s.requests.swap(0, Ordering::Relaxed)))
        })
        .collect()
}

fn print_loads(title: &str, loads: &[(ShardId, u64)]) {
    let total: u64 = loads.iter().map(|(_, n)| n).sum::<u64>().max(1);
    // Balance among the regular shards (the celebrity's dedicated shard is busy by design).
    let regular: Vec<u64> = loads
        .iter()
        .filter(|(id, n)| *id != CELEBRITY_SHARD && *n > 0)
        .map(|(_, n)| *n)
        .collect();
    let max = regular.iter().copied().max().unwrap_or(0);
    let mean = regular.iter().sum::<u64>() as f64 / regular.len().max(1) as f64;
    println!(
        "{title}: busiest regular shard {:.2}x their mean",
        max as f64 / mean
    );
    for (id, n) in loads.iter().filter(|(_, n)| *n > 0) {
        let share = *n as f64 / total as f64;
        println!(
            "  shard {id:<4} {:>6.1}%  {}",
            share * 100.0,
            "#".repeat((share * 60.0) as usize)
        );
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::args().any(|a| a == "--redis") {
        return redis_mode::run();
    }
    let four = HashSlots::even((0..4).map(ShardId))?;
    let map: Map = ShardMap::builder()
        .shards((0..4).map(|i| (ShardId(i), Shard::default())))
        .strategy(four.clone())
        .build()?;
    for user in 0..USERS {
        write(&map, user, user);
    }
    loads(&map);
    let last = [Mutex::new(BTreeMap::new()), Mutex::new(BTreeMap::new())];
    let detector = HotKeyDetector::<u64>::new(2048)?.sampled(8);
    let stop = AtomicBool::new(false);

    println!("{USERS} users on 4 shards (hash slots by user id); 2 client threads, 90% reads\n");
    let errors = clients(&map, &detector, &stop, 200_000, &last);
    print_loads("1. a celebrity draws a third of the traffic", &loads(&map));

    let hot = detector.top(3);
    println!(
        "\n2. hot-key detector (sampled 1 in 8, {} bytes):",
        detector.memory_bytes()
    );
    for h in &hot {
        println!("  user {:<8} ~{} requests (+-{})", h.key, h.count, h.error);
    }
    let celebrity = hot.first().map(|h| h.key).ok_or("no hot key found")?;
    map.add_shard(CELEBRITY_SHARD, Shard::default())?;
    let mut pin = Migrator::start(&map, map.plan_pin(&celebrity, CELEBRITY_SHARD)?)?;
    let moved = pin.run(&mut Io { map: &map }).map_err(|e| e.to_string())?;
    println!(
        "  pinned user {celebrity} to dedicated shard {CELEBRITY_SHARD} ({} key moved)\n",
        moved.keys_moved
    );
    let errors = errors + clients(&map, &detector, &stop, 200_000, &last);
    print_loads("3. after the pin", &loads(&map));

    map.add_shard(ShardId(4), Shard::default())?;
    let five = four.rebalanced((0..5).map(ShardId))?;
    let plan = map.plan_to(five)?;
    let estimate = plan.estimate(0..USERS);
    let naive = ReshardPlan::new(
        Arc::new(tierkit::shard::Modulo::new(4)?),
        Arc::new(tierkit::shard::Modulo::new(5)?),
    )
    .estimate(0..USERS);
    println!(
        "\n4. resharding 4 -> 5 shards while the clients keep going: {} steps, {:.1}% of users move \
         (minimum {:.1}%; user_id % n would move {:.1}%)",
        plan.steps().len(),
        estimate.fraction * 100.0,
        estimate.minimum_fraction * 100.0,
        naive.fraction * 100.0
    );
    let mut errors = errors;
    let progress = std::thread::scope(|s| {
        let traffic = s.spawn(|| clients(&map, &detector, &stop, 0, &last));
        let mut migrator = Migrator::start(&map, plan)?;
        let done = migrator
            .run(&mut Io { map: &map })
            .map_err(|e| e.to_string());
        stop.store(true, Ordering::Relaxed);
        errors += traffic.join().map_err(|_| "client thread panicked")?;
        done.map_err(Into::<Box<dyn std::error::Error>>::into)
    })?;
    println!(
        "  migrated {} users; map version {}",
        progress.keys_moved,
        map.version()
    );
    stop.store(false, Ordering::Relaxed);
    let errors = errors + clients(&map, &detector, &stop, 200_000, &last);
    print_loads("5. after resharding", &loads(&map));

    // Verify: every user reads back its last written value and lives on exactly one shard.
    let mut expected: BTreeMap<u64, u64> = (0..USERS).map(|u| (u, u)).collect();
    for l in &last {
        expected.extend(l.lock().unwrap_or_else(PoisonError::into_inner).iter());
    }
    let snap = map.snapshot();
    let mut wrong = 0;
    for (user, value) in &expected {
        let holders = snap
            .shard_ids()
            .filter(|id| snap.shard(*id).is_some_and(|s| lock(s).contains_key(user)))
            .count();
        if read(&map, *user) != Some(*value) || holders != 1 {
            wrong += 1;
        }
    }
    println!(
        "\nverified {} users: {wrong} wrong or duplicated, {errors} reads found nothing",
        expected.len()
    );
    if wrong > 0 || errors > 0 {
        return Err("data was lost or duplicated".into());
    }
    Ok(())
}

/// `--redis`: the same story on a real Redis Cluster (`TIERKIT_REDIS_CLUSTER`, three masters).
/// The example adds a fourth master (127.0.0.1:27004) and rebalances, loads the users, then adds
/// a fifth (27005) and rebalances 4 -> 5 with `redis-cli` while two clients keep reading and
/// writing through a [`ClusterRouter`](tierkit::shard::ClusterRouter) (MOVED / ASK / TRYAGAIN
/// followed, the `redis` crate sending). At the end it verifies every user, moves the slots
/// back to the three original masters and removes the two it added.
mod redis_mode {
    use std::collections::BTreeMap;
    use std::process::{Child, Command};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex, PoisonError};
    use std::time::{Duration, Instant};

    use redis::aio::MultiplexedConnection;
    use tierkit::shard::redis_cluster::fetch_topology;
    use tierkit::shard::{ClusterRouter, HotKeyDetector, RedirectAction, ShardId};

    type Error = Box<dyn std::error::Error + Send + Sync>;
    const USERS: u64 = 20_000;
    const EXTRA: [u16; 2] = [57_004, 57_005];

    struct Client {
        router: ClusterRouter,
        conns: tokio::sync::Mutex<BTreeMap<String, MultiplexedConnection>>,
        seed: String,
    }

    async fn connect(addr: &str) -> Result<MultiplexedConnection, Error> {
        Ok(redis::Client::open(format!("redis://{addr}/"))?
            .get_multiplexed_async_connection()
            .await?)
    }

    impl Client {
        async fn conn(&self, node: ShardId) -> Result<MultiplexedConnection, Error> {
            let addr = self.router.node(node).ok_or("unknown node")?.addr.clone();
            let mut conns = self.conns.lock().await;
            if let Some(c) = conns.get(&addr) {
                return Ok(c.clone());
            }
            let c = connect(&addr).await?;
            conns.insert(addr, c.clone());
            Ok(c)
        }

        /// One single-key command, following MOVED / ASK / TRYAGAIN.
        async fn exec<T: redis::FromRedisValue>(
            &self,
            key: &str,
            cmd: &redis::Cmd,
        ) -> Result<T, Error> {
            let (mut node, mut asking) = (self.router.route(key).ok_or("uncovered slot")?, false);
            for _ in 0..1_000 {
                let mut conn = self.conn(node).await?;
                let mut pipe = redis::pipe();
                if asking {
                    pipe.cmd("ASKING").ignore();
                }
                pipe.add_command(cmd.clone());
                match pipe.query_async::<(T,)>(&mut conn).await {
                    Ok((v,)) => {
                        if self.router.refresh_due() {
                            self.router
                                .refresh_from(&mut connect(&self.seed).await?)
                                .await?;
                        }
                        return Ok(v);
                    }
                    Err(e) => match self.router.on_redis_error(&e)? {
                        Some(RedirectAction::Retry { node: n, asking: a }) => {
                            (node, asking) = (n, a)
                        }
                        Some(RedirectAction::RetryLater) => {
                            tokio::time::sleep(Duration::from_millis(2)).await;
                            (node, asking) =
                                (self.router.route(key).ok_or("uncovered slot")?, false);
                        }
                        _ => return Err(e.into()),
                    },
                }
            }
            Err(format!("{key}: too many redirects").into())
        }
    }

    fn cli(args: &[&str]) -> Result<String, Error> {
        let out = Command::new("redis-cli").args(args).output()?;
        if !out.status.success() {
            return Err(format!(
                "redis-cli {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            )
            .into());
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Node id of 127.0.0.1:`port` and whether every node of the cluster sees it.
    fn node_id(port: u16) -> Result<String, Error> {
        Ok(cli(&["-p", &port.to_string(), "cluster", "myid"])?
            .trim()
            .to_string())
    }

    fn wait_known(seed_ports: &[u16], port: u16) -> Result<(), Error> {
        let started = Instant::now();
        let id = node_id(port)?;
        while started.elapsed() < Duration::from_secs(30) {
            let all = seed_ports.iter().all(|p| {
                cli(&["-p", &p.to_string(), "cluster", "nodes"]).is_ok_and(|t| t.contains(&id))
            });
            let ok = cli(&["-p", &port.to_string(), "cluster", "info"])
                .is_ok_and(|t| t.contains("cluster_state:ok"));
            if all && ok {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(format!("node {port} did not join").into())
    }

    fn start_node(dir: &std::path::Path, port: u16) -> Result<Child, Error> {
        let p = port.to_string();
        let child = Command::new("redis-server")
            .args([
                "--cluster-enabled",
                "yes",
                "--port",
                &p,
                "--bind",
                "127.0.0.1",
            ])
            .args([
                "--cluster-port",
                &(port + 10).to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--cluster-config-file")
            .arg(dir.join(format!("nodes-{port}.conf")))
            .arg("--dir")
            .arg(dir)
            .stdout(std::process::Stdio::null())
            .spawn()?;
        let started = Instant::now();
        while cli(&["-p", &p, "ping"]).is_err() {
            if started.elapsed() > Duration::from_secs(10) {
                return Err(format!("redis-server on {port} did not start").into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(child)
    }

    fn masters_with_slots(seed: &str) -> Result<usize, Error> {
        let (host, port) = seed.split_once(':').ok_or("bad address")?;
        let text = cli(&["-h", host, "-p", port, "cluster", "nodes"])?;
        Ok(text
            .lines()
            .filter(|l| l.contains("master") && l.split_whitespace().count() > 8)
            .count())
    }

    pub(super) fn run() -> Result<(), Box<dyn std::error::Error>> {
        let seeds = std::env::var("TIERKIT_REDIS_CLUSTER").map_err(|_| {
            "TIERKIT_REDIS_CLUSTER is not set: run `TIERKIT_SERVERS=redis-cluster .ci/with-servers \
             cargo run --release --example sharded_users -- --redis`"
        })?;
        let seed = seeds.split(',').next().unwrap_or_default().to_string();
        let seed_ports: Vec<u16> = seeds
            .split(',')
            .filter_map(|a| a.rsplit(':').next()?.parse().ok())
            .collect();
        let dir =
            std::env::temp_dir().join(format!("tierkit-sharded-users-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let mut children = Vec::new();
        let result = story(&seed, &seed_ports, &dir, &mut children);
        // Put the cluster back: the added masters give their slots to the original ones and
        // leave. A node that still owns slots is left running (killing it would lose them).
        let restored = restore(&seed, &seed_ports);
        if let Err(e) = &restored {
            eprintln!("could not restore the cluster: {e}");
            children.clear();
        }
        for mut c in children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&dir);
        result.map_err(|e| -> Box<dyn std::error::Error> { e.to_string().into() })
    }

    /// `(id, address, slots owned)` of every master, from `CLUSTER NODES`.
    fn masters(seed: &str) -> Result<Vec<(String, String, usize)>, Error> {
        let (host, port) = seed.split_once(':').ok_or("bad address")?;
        let text = cli(&["-h", host, "-p", port, "cluster", "nodes"])?;
        Ok(text
            .lines()
            .filter(|l| l.contains("master"))
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                let addr = f.get(1)?.split('@').next()?.to_string();
                let slots = f
                    .iter()
                    .skip(8)
                    .filter_map(|r| {
                        let (a, b) = r.split_once('-').unwrap_or((r, r));
                        Some(b.parse::<usize>().ok()? + 1 - a.parse::<usize>().ok()?)
                    })
                    .sum();
                Some((f[0].to_string(), addr, slots))
            })
            .collect())
    }

    /// Moves every slot of the added masters back to the original ones and removes them.
    fn restore(seed: &str, seed_ports: &[u16]) -> Result<(), Error> {
        let original: Vec<String> = masters(seed)?
            .into_iter()
            .filter(|(_, addr, _)| seed_ports.iter().any(|p| addr.ends_with(&format!(":{p}"))))
            .map(|(id, _, _)| id)
            .collect();
        for port in EXTRA {
            let Ok(id) = node_id(port) else { continue };
            let owned = masters(seed)?
                .into_iter()
                .find(|(i, _, _)| *i == id)
                .map_or(0, |(_, _, n)| n);
            let parts = original.len().max(1);
            for (k, to) in original.iter().enumerate() {
                let n = owned / parts + usize::from(k < owned % parts);
                if n > 0 {
                    cli(&[
                        "--cluster",
                        "reshard",
                        seed,
                        "--cluster-from",
                        &id,
                        "--cluster-to",
                        to,
                        "--cluster-slots",
                        &n.to_string(),
                        "--cluster-yes",
                    ])?;
                }
            }
            // Empty now: leave the cluster (del-node also shuts the node down).
            cli(&["--cluster", "del-node", seed, &id])?;
        }
        Ok(())
    }

    fn story(
        seed: &str,
        seed_ports: &[u16],
        dir: &std::path::Path,
        children: &mut Vec<Child>,
    ) -> Result<(), Error> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let masters = masters_with_slots(seed)?;
        println!("Redis Cluster at {seed}: {masters} masters with slots");
        children.push(start_node(dir, EXTRA[0])?);
        cli(&[
            "-p",
            &seed_ports[0].to_string(),
            "cluster",
            "meet",
            "127.0.0.1",
            &EXTRA[0].to_string(),
            &(EXTRA[0] + 10).to_string(),
        ])?;
        wait_known(seed_ports, EXTRA[0])?;
        cli(&[
            "--cluster",
            "rebalance",
            seed,
            "--cluster-use-empty-masters",
        ])?;
        println!(
            "added a master on {} and rebalanced: {} masters with slots",
            EXTRA[0],
            masters_with_slots(seed)?
        );
        rt.block_on(async {
            let client = Arc::new(Client {
                router: ClusterRouter::new(&fetch_topology(&mut connect(seed).await?).await?),
                conns: tokio::sync::Mutex::new(BTreeMap::new()),
                seed: seed.to_string(),
            });
            for user in 0..USERS {
                let key = format!("user:{user}");
                client.exec::<()>(&key, redis::cmd("SET").arg(&key).arg(user)).await?;
            }
            println!("{USERS} users loaded through the router (keys user:<id>)");
            let detector = Arc::new(HotKeyDetector::<u64>::new(2048)?.sampled(8));
            let stop = Arc::new(AtomicBool::new(false));
            let last = Arc::new(Mutex::new(BTreeMap::<u64, u64>::new()));
            let mut tasks = Vec::new();
            for t in 0..2u64 {
                let (client, detector, stop, last) = (client.clone(), detector.clone(), stop.clone(), last.clone());
                tasks.push(tokio::spawn(async move {
                    let mut traffic = super::Traffic(0x9e37_79b9 + t);
                    let (mut n, mut missing) = (0u64, 0u64);
                    while !stop.load(Ordering::Relaxed) {
                        let user = traffic.next_user() % USERS;
                        detector.record(&user);
                        let key = format!("user:{user}");
                        if n % 10 == 0 && user % 2 == t {
                            let value = n + 1_000_000 * (t + 1);
                            client.exec::<()>(&key, redis::cmd("SET").arg(&key).arg(value)).await?;
                            last.lock().unwrap_or_else(PoisonError::into_inner).insert(user, value);
                        } else if client.exec::<Option<u64>>(&key, redis::cmd("GET").arg(&key)).await?.is_none() {
                            missing += 1;
                        }
                        n += 1;
                    }
                    Ok::<_, Error>((n, missing))
                }));
            }
            let before = client.router.hash_slots()?;
            let start_node_and_rebalance = {
                let (dir, seed, ports) = (dir.to_path_buf(), seed.to_string(), seed_ports.to_vec());
                tokio::task::spawn_blocking(move || -> Result<Child, Error> {
                    let child = start_node(&dir, EXTRA[1])?;
                    cli(&["-p", &ports[0].to_string(), "cluster", "meet", "127.0.0.1", &EXTRA[1].to_string(), &(EXTRA[1] + 10).to_string()])?;
                    wait_known(&ports, EXTRA[1])?;
                    let started = Instant::now();
                    cli(&["--cluster", "rebalance", &seed, "--cluster-use-empty-masters"])?;
                    println!("rebalanced 4 -> 5 masters under traffic in {:.1} s", started.elapsed().as_secs_f64());
                    Ok(child)
                })
            };
            let child = start_node_and_rebalance.await??;
            children.push(child);
            stop.store(true, Ordering::Relaxed);
            let (mut requests, mut missing) = (0, 0);
            for t in tasks {
                let (n, m) = t.await??;
                requests += n;
                missing += m;
            }
            client.router.refresh_from(&mut connect(seed).await?).await?;
            let after = client.router.hash_slots()?;
            let moved = (0..16_384u16).filter(|&s| {
                let owner = |h: &tierkit::shard::HashSlots| h.owner(s).and_then(|n| client.router.node(n)).map(|n| n.addr.clone());
                owner(&before) != owner(&after)
            }).count();
            let top = detector.top(1);
            println!(
                "{requests} requests during the reshard; hot key: user {:?}; {moved} of 16384 slots moved ({:.1}%, the minimum is 20.0%)",
                top.first().map(|h| h.key),
                moved as f64 / 163.84
            );
            println!("router: {:?}", client.router.stats());
            let mut expected: BTreeMap<u64, u64> = (0..USERS).map(|u| (u, u)).collect();
            expected.extend(last.lock().unwrap_or_else(PoisonError::into_inner).iter());
            let mut wrong = 0;
            for (user, value) in &expected {
                let key = format!("user:{user}");
                if client.exec::<Option<u64>>(&key, redis::cmd("GET").arg(&key)).await? != Some(*value) {
                    wrong += 1;
                }
            }
            println!("verified {} users: {wrong} wrong, {missing} reads found nothing", expected.len());
            if wrong > 0 || missing > 0 {
                return Err("data was lost".into());
            }
            Ok(())
        })
    }
}
