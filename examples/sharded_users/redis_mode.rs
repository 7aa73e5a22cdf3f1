//! `--redis`: the same story on a real Redis Cluster (`TIERKIT_REDIS_CLUSTER`, three masters on
//! 127.0.0.1). The example starts two masters of its own on the two ports above the cluster's
//! highest (27004 and 27005 for `.ci`'s cluster; cluster bus on port + 10). It adds the first
//! and rebalances with `redis-cli` (3 -> 4 masters), loads the users through a
//! [`ClusterRouter`](tierkit::shard::ClusterRouter), then adds the second and rebalances 4 -> 5
//! while two clients keep reading and writing (MOVED / ASK / TRYAGAIN followed, the `redis`
//! crate sending). It checks that no read found nothing or an older value, that every user
//! holds its last acknowledged value, and that the refreshed router agrees with the cluster on
//! every slot. At the end it gives the slots back to the original masters (a rebalance with
//! weight 0 for its own, which run with `cluster-allow-replica-migration no` so that an emptied
//! one stays a master until the rebalance ends), removes its masters from the cluster and stops
//! them, whether the story succeeded, failed or panicked (its `redis-server`s run in their own
//! process group: a Ctrl-C leaves them to the next run, which drains them, rather than dropping
//! their slots).
//!
//! Every run starts from a known state: before the story it removes what an earlier run left
//! (its masters, still running after a `kill -9`, are drained and removed; entries of its
//! masters that are gone are forgotten; open or uncovered slots are fixed with
//! `redis-cli --cluster fix`), and before each rebalance it polls every node until all of them
//! know each other, agree on the slot table, have no open slot and report `cluster_state:ok`
//! (`redis-cli` sends `CLUSTER SETSLOT` to every master, and a master that does not know the
//! new node yet refuses it, leaving the slot open). Each wait gives up with the reason after
//! 30 s, each `redis-cli` command after 3 minutes.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use tierkit::shard::redis_cluster::fetch_topology;
use tierkit::shard::{ClusterRouter, HotKeyDetector, RedirectAction, ShardId};

type Error = Box<dyn std::error::Error + Send + Sync>;
const USERS: u64 = 20_000;
/// How long the cluster may take to settle after a change (gossip runs every 100 ms).
const SETTLE: Duration = Duration::from_secs(30);
/// How long one `redis-cli --cluster` command may take (a rebalance moves thousands of slots).
const CLI_LIMIT: Duration = Duration::from_secs(180);
const HOW_TO_RUN: &str = "run `TIERKIT_SERVERS=redis-cluster .ci/with-servers cargo run \
                          --release --example sharded_users -- --redis`";

struct Client {
    router: ClusterRouter,
    conns: tokio::sync::Mutex<BTreeMap<String, MultiplexedConnection>>,
    seed: String,
}

async fn connect(addr: &str) -> Result<MultiplexedConnection, Error> {
    // The redis crate's default gives up on a reply after 500 ms, which a loaded 2-core
    // machine exceeds now and then (seen at a load average of 9); 10 s is still an error,
    // not a hang.
    let config =
        redis::AsyncConnectionConfig::new().set_response_timeout(Some(Duration::from_secs(10)));
    Ok(redis::Client::open(format!("redis://{addr}/"))?
        .get_multiplexed_async_connection_with_config(&config)
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
                    Some(RedirectAction::Retry { node: n, asking: a }) => (node, asking) = (n, a),
                    Some(RedirectAction::RetryLater) => {
                        // The client's back-off on TRYAGAIN.
                        tokio::time::sleep(Duration::from_millis(2)).await;
                        (node, asking) = (self.router.route(key).ok_or("uncovered slot")?, false);
                    }
                    _ => return Err(format!("{key}: {e}").into()),
                },
            }
        }
        Err(format!("{key}: too many redirects").into())
    }
}

/// One command to the node on 127.0.0.1:`port`, with timeouts: a node that does not answer
/// is an error, not a hang.
fn query<T: redis::FromRedisValue>(port: u16, cmd: &redis::Cmd) -> Result<T, Error> {
    let at = |e: redis::RedisError| format!("127.0.0.1:{port}: {e}");
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/"))?;
    let mut con = client
        .get_connection_with_timeout(Duration::from_secs(2))
        .map_err(at)?;
    con.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(at)?;
    con.set_write_timeout(Some(Duration::from_secs(10)))
        .map_err(at)?;
    Ok(cmd.query(&mut con).map_err(at)?)
}

fn cluster(args: &[&str]) -> redis::Cmd {
    let mut cmd = redis::cmd("CLUSTER");
    for a in args {
        cmd.arg(*a);
    }
    cmd
}

fn my_id(port: u16) -> Result<String, Error> {
    query(port, &cluster(&["MYID"]))
}

fn listening(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_secs(1),
    )
    .is_ok()
}

/// A `redis-cli` command; fails (with the lines that say why) when it exits non-zero or
/// runs longer than [`CLI_LIMIT`]. Its questions are answered
/// "yes" (`--cluster fix` asks before covering slots even with `--cluster-yes`).
fn redis_cli(args: &[&str]) -> Result<String, Error> {
    let mut child = Command::new("redis-cli")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run redis-cli (Debian: redis-tools): {e}"))?;
    let drain = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut bytes);
            }
            String::from_utf8_lossy(&bytes).into_owned()
        })
    };
    if let Some(mut stdin) = child.stdin.take() {
        std::thread::spawn(move || {
            use std::io::Write;
            // Fails once redis-cli exits; nothing to do then.
            let _ = stdin.write_all("yes\n".repeat(16).as_bytes());
        });
    }
    let out = drain(child.stdout.take().map(|r| Box::new(r) as _));
    let err = drain(child.stderr.take().map(|r| Box::new(r) as _));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if started.elapsed() > CLI_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let text = out.join().unwrap_or_default() + &err.join().unwrap_or_default();
    // redis-cli colours its messages even into a pipe.
    let text: String = text
        .split('\x1b')
        .enumerate()
        .map(|(i, part)| {
            if i == 0 {
                part
            } else {
                part.split_once('m').map_or(part, |(_, rest)| rest)
            }
        })
        .collect();
    let failed = match status {
        None => Some(format!("did not finish in {} s", CLI_LIMIT.as_secs())),
        Some(s) if !s.success() => Some(format!("exited with {s}")),
        Some(_) => None,
    };
    match failed {
        None => Ok(text),
        Some(why) => {
            let lines: Vec<&str> = text
                .lines()
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .collect();
            let tail = lines[lines.len().saturating_sub(8)..].join("\n  ");
            Err(format!("redis-cli {} {why}:\n  {tail}", args.join(" ")).into())
        }
    }
}

/// One line of `CLUSTER NODES`.
struct NodeLine {
    id: String,
    port: u16,
    flags: String,
    connected: bool,
    /// Slot ranges owned, in the order listed.
    slots: Vec<(u16, u16)>,
    /// An importing or migrating slot (`[slot-<-id]`, `[slot->-id]`).
    open: bool,
}

impl NodeLine {
    fn owned(&self) -> usize {
        self.slots.iter().map(|(a, b)| usize::from(b - a) + 1).sum()
    }

    /// Failing, handshaking, without an address, or with its link down.
    fn unhealthy(&self) -> bool {
        !self.connected
            || self
                .flags
                .split(',')
                .any(|f| matches!(f, "fail" | "fail?" | "handshake" | "noaddr"))
    }
}

/// The cluster as the node on `port` sees it.
fn nodes(port: u16) -> Result<Vec<NodeLine>, Error> {
    let text: String = query(port, &cluster(&["NODES"]))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let bad = || format!("127.0.0.1:{port}: unexpected CLUSTER NODES line {line:?}");
            if f.len() < 8 {
                return Err(bad().into());
            }
            let addr = f[1].split(['@', ',']).next().unwrap_or_default();
            let node_port = addr.rsplit(':').next().and_then(|p| p.parse().ok());
            let mut slots = Vec::new();
            let mut open = false;
            for r in &f[8..] {
                if r.starts_with('[') {
                    open = true;
                    continue;
                }
                let (a, b) = r.split_once('-').unwrap_or((r, r));
                slots.push((a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?));
            }
            Ok(NodeLine {
                id: f[0].to_string(),
                port: node_port.unwrap_or(0),
                flags: f[2].to_string(),
                connected: f[7] == "connected",
                slots,
                open,
            })
        })
        .collect()
}

/// Why the nodes on `ports` are not yet one settled cluster of exactly themselves, or
/// `None` when they are: each knows all the others and no one else, all links up, no node
/// failing, every node's slot table the same and covering all 16,384 slots, no open slot,
/// and `cluster_state:ok` everywhere. (What `redis-cli --cluster check` demands, and more.)
/// With `full` false, only membership and health count (slots may be open or uncovered).
fn unsettled(ports: &[u16], full: bool) -> Result<Option<String>, Error> {
    let ids = ports
        .iter()
        .map(|&p| my_id(p))
        .collect::<Result<BTreeSet<_>, _>>()?;
    let mut table: Option<BTreeMap<String, Vec<(u16, u16)>>> = None;
    for &port in ports {
        let view = nodes(port)?;
        let known: BTreeSet<String> = view.iter().map(|n| n.id.clone()).collect();
        if known != ids {
            return Ok(Some(format!(
                "127.0.0.1:{port} knows {} nodes, not the {} expected",
                known.len(),
                ids.len()
            )));
        }
        if let Some(n) = view.iter().find(|n| n.unhealthy()) {
            return Ok(Some(format!(
                "127.0.0.1:{port} sees 127.0.0.1:{} as {} ({})",
                n.port,
                n.flags,
                if n.connected {
                    "connected"
                } else {
                    "link down"
                }
            )));
        }
        if !full {
            continue;
        }
        if let Some(n) = view.iter().find(|n| n.open) {
            return Ok(Some(format!("127.0.0.1:{} has an open slot", n.port)));
        }
        let mine: BTreeMap<String, Vec<(u16, u16)>> = view
            .into_iter()
            .map(|n| {
                let mut s = n.slots;
                s.sort_unstable();
                (n.id, s)
            })
            .collect();
        if table.as_ref().is_some_and(|t| *t != mine) {
            return Ok(Some(format!(
                "127.0.0.1:{port} disagrees about the slot table"
            )));
        }
        table = Some(mine);
        let info: String = query(port, &cluster(&["INFO"]))?;
        if !info.lines().any(|l| l.trim() == "cluster_state:ok") {
            return Ok(Some(format!("127.0.0.1:{port} is not cluster_state:ok")));
        }
    }
    let covered: usize = table
        .iter()
        .flat_map(|t| t.values().flatten())
        .map(|(a, b)| usize::from(b - a) + 1)
        .sum();
    Ok((full && covered != 16_384).then(|| format!("{covered} of 16384 slots are assigned")))
}

/// Polls [`unsettled`] until the cluster has settled; an error naming the last reason
/// after [`SETTLE`].
fn settle(ports: &[u16], what: &str) -> Result<(), Error> {
    wait(ports, true, what)
}

fn wait(ports: &[u16], full: bool, what: &str) -> Result<(), Error> {
    let started = Instant::now();
    loop {
        let why = unsettled(ports, full).unwrap_or_else(|e| Some(e.to_string()));
        let Some(why) = why else { return Ok(()) };
        if started.elapsed() > SETTLE {
            return Err(format!(
                "the cluster did not settle within {} s {what}: {why}",
                SETTLE.as_secs()
            )
            .into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Where the example's own nodes keep their files: tmpfs when there is one (a node writes
/// and fsyncs its nodes.conf on every slot change, thousands of times per rebalance).
fn node_dir(port: u16) -> PathBuf {
    let shm = Path::new("/dev/shm");
    let base = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    base.join(format!("tierkit-sharded-users-{port}"))
}

/// Whether the redis-server on `port` is one this example started (in this run or one
/// that was killed): its working directory is [`node_dir`].
fn ours(port: u16) -> bool {
    let dir: Result<Vec<String>, _> = query(port, redis::cmd("CONFIG").arg("GET").arg("dir"));
    dir.is_ok_and(|d| {
        d.get(1)
            .is_some_and(|d| Path::new(d).file_name() == node_dir(port).file_name())
    })
}

/// A redis-server this example started; stopped when dropped, on every exit path.
struct Node {
    port: u16,
    child: Child,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(node_dir(self.port));
    }
}

/// Starts an empty cluster-mode redis-server on 127.0.0.1:`port` (bus port + 10), in its
/// own process group (a Ctrl-C meant for the example does not take slots down with it).
fn start_node(port: u16) -> Result<Node, Error> {
    for p in [port, port + 10] {
        if listening(p) {
            return Err(
                format!("127.0.0.1:{p} is in use by something this example did not start").into(),
            );
        }
    }
    let dir = node_dir(port);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let log = dir.join("redis.log");
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--cluster-enabled", "yes"])
        .args(["--cluster-port", &(port + 10).to_string()])
        // An emptied master stays a master. By default Redis 7 turns a master that loses
        // its last slot into a replica at once, and a rebalance draining two masters then
        // fails halfway ("ERR Please use SETSLOT only with masters": redis-cli still sends
        // CLUSTER SETSLOT to it), possibly leaving a slot open.
        .args(["--cluster-allow-replica-migration", "no"])
        .args(["--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(&dir)
        .arg("--logfile")
        .arg(&log)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot run redis-server (Debian: redis-server): {e}"))?;
    let mut node = Node { port, child };
    let started = Instant::now();
    while query::<String>(port, &redis::cmd("PING")).is_err() {
        let log = || std::fs::read_to_string(&log).unwrap_or_default();
        if node.child.try_wait()?.is_some() {
            return Err(format!("redis-server on {port} exited:\n{}", log()).into());
        }
        if started.elapsed() > Duration::from_secs(10) {
            return Err(format!("redis-server on {port} did not answer in 10 s").into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    node.child.try_wait()?;
    Ok(node)
}

/// Brings the cluster back to its original masters (`seeds`) and nothing else, whatever an
/// earlier run (or this one) left: members on `extra` ports that this example started are
/// drained (a rebalance giving them weight 0), removed (`--cluster del-node`) and shut
/// down; members on `extra` ports that are gone are forgotten; open or uncovered slots are
/// fixed. Any other member is not the example's to remove: an error.
fn reset(seeds: &[u16], extra: &[u16]) -> Result<(), Error> {
    let seed = format!("127.0.0.1:{}", seeds[0]);
    let mut view = nodes(seeds[0])?;
    if view.iter().any(|n| n.open || !seeds.contains(&n.port)) {
        // Left by an earlier run that did not finish: its redis-cli may still be moving
        // slots (a `kill -9` does not reach it).
        quiesce(seeds[0])?;
        view = nodes(seeds[0])?;
    }
    let mut alive = Vec::new();
    let mut gone = Vec::new();
    for n in view.iter().filter(|n| !seeds.contains(&n.port)) {
        let running = my_id(n.port).is_ok_and(|id| id == n.id);
        if !extra.contains(&n.port) || (running && !ours(n.port)) {
            return Err(format!(
                "the cluster has a member this example did not start, 127.0.0.1:{}; \
                 remove it (redis-cli --cluster del-node) or start a fresh cluster",
                n.port
            )
            .into());
        }
        if running {
            alive.push(n);
        } else {
            gone.push(n);
        }
    }
    let members: Vec<u16> = seeds
        .iter()
        .copied()
        .chain(alive.iter().map(|n| n.port))
        .collect();
    for n in &gone {
        println!(
            "  forgetting {} (was 127.0.0.1:{}, no longer running)",
            n.id, n.port
        );
        for &p in &members {
            // "Unknown node" once a node has already forgotten it.
            let _ = query::<()>(p, &cluster(&["FORGET", &n.id]));
        }
    }
    let views = members
        .iter()
        .map(|&p| nodes(p))
        .collect::<Result<Vec<_>, _>>()?;
    let open = views.iter().flatten().any(|n| n.open);
    let covered: usize = views[0].iter().map(NodeLine::owned).sum();
    if open || covered != 16_384 {
        println!("  fixing open or uncovered slots (redis-cli --cluster fix)");
        // Gossip first: fix needs every member to know the others.
        wait(&members, false, "before fixing slots")?;
        redis_cli(&["--cluster", "fix", &seed, "--cluster-yes"])?;
    }
    if !alive.is_empty() && alive.iter().any(|n| n.owned() > 0) {
        settle(&members, "before giving the slots back")?;
        let weights: Vec<String> = alive.iter().map(|n| format!("{}=0", n.id)).collect();
        let mut args = vec!["--cluster", "rebalance", &seed, "--cluster-weight"];
        args.extend(weights.iter().map(String::as_str));
        redis_cli(&args)?;
        settle(&members, "after giving the slots back")?;
    }
    for n in &alive {
        redis_cli(&["--cluster", "del-node", &seed, &n.id])?;
    }
    settle(seeds, "with the original masters")?;
    // del-node leaves a node running (reset, out of the cluster); the example's are its
    // own to stop, as is one that was started and never joined.
    for &port in extra {
        if listening(port) && ours(port) {
            stop(port)?;
        }
    }
    Ok(())
}

/// Waits until the slot table of the node on `port` (owners and open slots) has not
/// changed for a second.
fn quiesce(port: u16) -> Result<(), Error> {
    let started = Instant::now();
    let (mut last, mut since) = (String::new(), Instant::now());
    loop {
        let text: String = query(port, &cluster(&["NODES"]))?;
        let table: String = text
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                format!(
                    "{} {}\n",
                    f.first().unwrap_or(&""),
                    f.get(8..).unwrap_or_default().join(" ")
                )
            })
            .collect();
        if table != last {
            (last, since) = (table, Instant::now());
        } else if since.elapsed() >= Duration::from_secs(1) {
            return Ok(());
        }
        if started.elapsed() > CLI_LIMIT {
            return Err(format!(
                "the slot table kept changing for {} s: is another redis-cli moving slots?",
                CLI_LIMIT.as_secs()
            )
            .into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Shuts down the example's redis-server on `port` and waits until both its ports are free.
fn stop(port: u16) -> Result<(), Error> {
    // The connection closes instead of a reply.
    let _ = query::<()>(port, redis::cmd("SHUTDOWN").arg("NOSAVE"));
    let started = Instant::now();
    while listening(port) || listening(port + 10) {
        if started.elapsed() > Duration::from_secs(10) {
            return Err(format!("redis-server on 127.0.0.1:{port} did not stop").into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// Adds the master on `port` to the cluster of `members` and waits until all of them,
/// the new one included, agree.
fn join(members: &mut Vec<u16>, port: u16) -> Result<Node, Error> {
    let node = start_node(port)?;
    query::<()>(
        members[0],
        &cluster(&[
            "MEET",
            "127.0.0.1",
            &port.to_string(),
            &(port + 10).to_string(),
        ]),
    )?;
    members.push(port);
    settle(members, &format!("after adding 127.0.0.1:{port}"))?;
    Ok(node)
}

fn rebalance(seed: &str, members: &[u16], what: &str) -> Result<(), Error> {
    redis_cli(&[
        "--cluster",
        "rebalance",
        seed,
        "--cluster-use-empty-masters",
    ])?;
    settle(members, what)
}

pub(super) fn run() -> Result<(), Box<dyn std::error::Error>> {
    run_inner().map_err(|e| -> Box<dyn std::error::Error> { e.to_string().into() })
}

fn run_inner() -> Result<(), Error> {
    let seeds = std::env::var("TIERKIT_REDIS_CLUSTER")
        .map_err(|_| format!("TIERKIT_REDIS_CLUSTER is not set: {HOW_TO_RUN}"))?;
    let mut ports = Vec::new();
    for addr in seeds.split(',').map(str::trim).filter(|a| !a.is_empty()) {
        let port = match addr.rsplit_once(':') {
            Some(("127.0.0.1" | "localhost", p)) => p.parse::<u16>().ok(),
            _ => None,
        };
        ports.push(port.ok_or_else(|| {
            format!(
                "TIERKIT_REDIS_CLUSTER: {addr:?} is not 127.0.0.1:<port>; the example \
                 starts its extra masters on loopback beside the cluster's"
            )
        })?);
    }
    let top = *ports.iter().max().ok_or("TIERKIT_REDIS_CLUSTER is empty")?;
    let extra = [top + 1, top + 2];
    if let Some(&p) = ports.iter().find(|&&p| {
        extra.contains(&p) || extra.contains(&(p + 10)) || extra.iter().any(|&e| e + 10 == p)
    }) {
        return Err(format!(
            "port {p} of the cluster collides with the example's own masters on {extra:?} \
             (bus port + 10)"
        )
        .into());
    }
    for &p in &ports {
        query::<String>(p, &redis::cmd("PING")).map_err(|e| {
            format!("cannot reach the Redis Cluster node 127.0.0.1:{p} ({e}); {HOW_TO_RUN}")
        })?;
    }
    let clock = Instant::now();
    println!("preparing the cluster at {seeds}");
    reset(&ports, &extra)?;
    let mut started = Vec::new();
    let result = story(&ports, extra, &mut started);
    // Whatever happened: the slots go back to the original masters and the added ones
    // leave, then (dropping `started`) stop.
    let restoring = Instant::now();
    let restored = reset(&ports, &extra);
    drop(started);
    match (result, restored) {
        (Ok(()), Ok(())) => {
            println!(
                "slots given back to the {} original masters, added masters removed in \
                 {:.1} s; {:.1} s in all",
                ports.len(),
                restoring.elapsed().as_secs_f64(),
                clock.elapsed().as_secs_f64()
            );
            Ok(())
        }
        (Err(e), Ok(())) => Err(e),
        (Ok(()), Err(e)) => Err(format!("could not restore the cluster: {e}").into()),
        (Err(e), Err(r)) => Err(format!("{e}\n(and could not restore the cluster: {r})").into()),
    }
}

fn story(seed_ports: &[u16], extra: [u16; 2], started: &mut Vec<Node>) -> Result<(), Error> {
    let seed = format!("127.0.0.1:{}", seed_ports[0]);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut members = seed_ports.to_vec();
    println!(
        "Redis Cluster at {seed}: {} masters with slots",
        members.len()
    );
    let clock = Instant::now();
    started.push(join(&mut members, extra[0])?);
    rebalance(&seed, &members, "after the first rebalance")?;
    println!(
        "added a master on 127.0.0.1:{} and rebalanced in {:.1} s: {} masters with slots",
        extra[0],
        clock.elapsed().as_secs_f64(),
        members.len()
    );
    let (tx, rx) = std::sync::mpsc::channel();
    let result = rt.block_on(async {
        let client = Arc::new(Client {
            router: ClusterRouter::new(&fetch_topology(&mut connect(&seed).await?).await?),
            conns: tokio::sync::Mutex::new(BTreeMap::new()),
            seed: seed.clone(),
        });
        for user in 0..USERS {
            let key = format!("user:{user}");
            client
                .exec::<()>(&key, redis::cmd("SET").arg(&key).arg(user))
                .await?;
        }
        println!("{USERS} users loaded through the router (keys user:<id>)");
        let detector = Arc::new(HotKeyDetector::<u64>::new(2048)?.sampled(8));
        let stop = Arc::new(AtomicBool::new(false));
        let last = Arc::new(Mutex::new(BTreeMap::<u64, u64>::new()));
        let mut tasks = Vec::new();
        for t in 0..2u64 {
            let (client, detector, stop, last) =
                (client.clone(), detector.clone(), stop.clone(), last.clone());
            tasks.push(tokio::spawn(async move {
                let mut traffic = super::Traffic(0x9e37_79b9 + t);
                let (mut n, mut missing, mut stale) = (0u64, 0u64, 0u64);
                // This client is the only writer of its users (user % 2 == t): a read of
                // one must return exactly its last write.
                let mut mine = BTreeMap::new();
                while !stop.load(Ordering::Relaxed) {
                    let user = traffic.next_user() % USERS;
                    detector.record(&user);
                    let key = format!("user:{user}");
                    if n % 10 == 0 && user % 2 == t {
                        let value = n + 1_000_000 * (t + 1);
                        client
                            .exec::<()>(&key, redis::cmd("SET").arg(&key).arg(value))
                            .await?;
                        mine.insert(user, value);
                        last.lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .insert(user, value);
                    } else {
                        let got = client
                            .exec::<Option<u64>>(&key, redis::cmd("GET").arg(&key))
                            .await?;
                        match got {
                            None => missing += 1,
                            Some(v) if user % 2 == t => {
                                if v != *mine.get(&user).unwrap_or(&user) {
                                    stale += 1;
                                }
                            }
                            Some(_) => {}
                        }
                    }
                    n += 1;
                }
                Ok::<_, Error>((n, missing, stale))
            }));
        }
        let before = client.router.hash_slots()?;
        let grow = {
            let (seed, mut members) = (seed.clone(), members.clone());
            tokio::task::spawn_blocking(move || -> Result<(), Error> {
                // Handed over at once: `run` stops it whatever happens next.
                let _ = tx.send(join(&mut members, extra[1])?);
                let started = Instant::now();
                rebalance(&seed, &members, "after the 4 -> 5 rebalance")?;
                println!(
                    "added a master on 127.0.0.1:{} and rebalanced 4 -> 5 under traffic in \
                     {:.1} s",
                    extra[1],
                    started.elapsed().as_secs_f64()
                );
                Ok(())
            })
        };
        let grown = grow.await.map_err(Error::from).and_then(|r| r);
        stop.store(true, Ordering::Relaxed);
        let (mut requests, mut missing, mut stale) = (0, 0, 0);
        for t in tasks {
            let (n, m, s) = t.await??;
            requests += n;
            missing += m;
            stale += s;
        }
        grown?;
        let router = &client.router;
        let addr_of = |h: &tierkit::shard::HashSlots, s: u16| {
            h.owner(s)
                .and_then(|n| router.node(n))
                .map(|n| n.addr.clone())
        };
        let stale_slots = disagreements(router, seed_ports[0])?;
        router.refresh_from(&mut connect(&seed).await?).await?;
        let after = router.hash_slots()?;
        let moved = (0..16_384u16)
            .filter(|&s| addr_of(&before, s) != addr_of(&after, s))
            .count();
        let wrong_slots = disagreements(router, seed_ports[0])?;
        let top = detector.top(1);
        println!(
            "{requests} requests during the reshard: {missing} reads found nothing, {stale} \
             returned an older value; hot key: user {:?}",
            top.first().map(|h| h.key)
        );
        println!(
            "{moved} of 16384 slots moved ({:.1}%, the minimum is 20.0%); the router \
             disagreed with the cluster on {stale_slots} slots before one refresh, \
             {wrong_slots} after",
            moved as f64 / 163.84
        );
        println!("router: {:?}", router.stats());
        let mut expected: BTreeMap<u64, u64> = (0..USERS).map(|u| (u, u)).collect();
        expected.extend(last.lock().unwrap_or_else(PoisonError::into_inner).iter());
        let mut wrong = 0;
        for (user, value) in &expected {
            let key = format!("user:{user}");
            if client
                .exec::<Option<u64>>(&key, redis::cmd("GET").arg(&key))
                .await?
                != Some(*value)
            {
                wrong += 1;
            }
        }
        println!(
            "verified {} users: {wrong} not at their last acknowledged value",
            expected.len()
        );
        if wrong > 0 || missing > 0 || stale > 0 {
            return Err("data was lost or read stale".into());
        }
        if wrong_slots > 0 {
            return Err("the router disagrees with the cluster after a refresh".into());
        }
        Ok(())
    });
    started.extend(rx.try_iter());
    result
}

/// Slots on which the router's owner differs from the cluster's (`CLUSTER NODES` of the
/// node on `port`, a different command and format from the `CLUSTER SHARDS` it reads).
fn disagreements(router: &ClusterRouter, port: u16) -> Result<usize, Error> {
    let mut owner = vec![0u16; 16_384];
    for n in nodes(port)? {
        for (a, b) in n.slots {
            for s in a..=b {
                owner[usize::from(s)] = n.port;
            }
        }
    }
    Ok((0..16_384u16)
        .filter(|&s| {
            let ours = router
                .slot_owner(s)
                .and_then(|n| router.node(n))
                .and_then(|n| n.addr.rsplit(':').next()?.parse::<u16>().ok());
            ours != Some(owner[usize::from(s)])
        })
        .count())
}
