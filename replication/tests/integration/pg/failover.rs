//! A failover on a PostgreSQL primary + streaming replica of the test's own (ports
//! 25434/25435, built with `TIERKIT_PG_BIN`), so the shared pair survives. Issue 18, findings 1
//! and 4: the primary is stopped with `-m immediate`; writes after detection fail fast (or
//! wait), none reaches a read-only node, the promotion goes through the hook
//! (`pg_promote()`), and the reported lost-write range is exactly the acknowledged writes the
//! new primary lacks, computed from the replica's *received* position.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tierkit_replication::pg::{Node, Probe, Promote, READ_ONLY_SQLSTATE, Write};
use tierkit_replication::{
    Config, Epoch, Error, Event, Intent, MonitorOptions, NodeId, Position, PromotionHook,
    ReplicaSet, monitor,
};

use super::{alter_system, connect, env};

const PRIMARY_PORT: u16 = 25434;
const REPLICA_PORT: u16 = 25435;

/// A command that runs `exe` as the `postgres` user when we are root.
fn as_server_user(exe: &Path) -> Command {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout == b"0\n");
    if root.unwrap_or(false) {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(exe);
        c
    } else {
        Command::new(exe)
    }
}

/// Starts a server, showing its log if it does not come up.
fn start_server(bin: &Path, data: &str, log: &str) {
    let result =
        std::panic::catch_unwind(|| pg(bin, "pg_ctl", &["-D", data, "-l", log, "-w", "start"]));
    if let Err(e) = result {
        eprintln!("{}", std::fs::read_to_string(log).unwrap_or_default());
        std::panic::resume_unwind(e);
    }
}

/// Runs a server program as the `postgres` user when we are root (initdb refuses root).
fn pg(bin: &Path, program: &str, args: &[&str]) {
    let out = as_server_user(&bin.join(program))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A primary and a replica in a scratch directory, stopped (immediately) and removed on drop.
struct Pair {
    bin: PathBuf,
    dir: PathBuf,
}

impl Pair {
    fn primary(&self) -> PathBuf {
        self.dir.join("primary")
    }
    fn replica(&self) -> PathBuf {
        self.dir.join("replica")
    }

    fn start() -> Pair {
        let bin = PathBuf::from(env("TIERKIT_PG_BIN"));
        // Under the servers script's directory (owned by postgres) when there is one.
        let base = std::env::var("TIERKIT_SCRATCH")
            .map(|s| PathBuf::from(s).join("pg"))
            .unwrap_or_else(|_| std::env::temp_dir());
        let dir = base.join(format!("failover-{}", std::process::id()));
        let pair = Pair { bin, dir };
        let d = pair.dir.to_str().unwrap().to_owned();
        mkdir_as_owner(&pair.dir);
        let (p, r) = (
            pair.primary().to_str().unwrap().to_owned(),
            pair.replica().to_str().unwrap().to_owned(),
        );
        pg(
            &pair.bin,
            "initdb",
            &["-D", &p, "-U", "postgres", "--auth=trust", "--no-sync"],
        );
        let conf = format!(
            "listen_addresses = '127.0.0.1'\nport = {PRIMARY_PORT}\nunix_socket_directories = '{d}'\n\
             wal_level = replica\nmax_wal_senders = 4\nhot_standby = on\n"
        );
        let hba = "local all all trust\nhost all all 127.0.0.1/32 trust\n\
                   host replication all 127.0.0.1/32 trust\n";
        write_as_owner(&pair.primary().join("postgresql.auto.conf"), &conf, true);
        write_as_owner(&pair.primary().join("pg_hba.conf"), hba, false);
        let log = format!("{d}/primary.log");
        start_server(&pair.bin, &p, &log);
        pg(
            &pair.bin,
            "pg_basebackup",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &PRIMARY_PORT.to_string(),
                "-U",
                "postgres",
                "-D",
                &r,
                "-R",
                "-X",
                "stream",
                "--no-sync",
            ],
        );
        write_as_owner(
            &pair.replica().join("postgresql.auto.conf"),
            &format!("port = {REPLICA_PORT}\n"),
            true,
        );
        let log = format!("{d}/replica.log");
        start_server(&pair.bin, &r, &log);
        pair
    }

    fn stop_primary_immediately(&self) {
        let p = self.primary().to_str().unwrap().to_owned();
        pg(&self.bin, "pg_ctl", &["-D", &p, "-m", "immediate", "stop"]);
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        for data in [self.primary(), self.replica()] {
            let data = data.to_str().unwrap_or_default().to_owned();
            // Already stopped (the primary) is fine: ignore the status.
            let _ = as_server_user(&self.bin.join("pg_ctl"))
                .args(["-D", &data, "-m", "immediate", "stop"])
                .output();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Appends (or writes) a file owned by the server's user: through `tee` run as that user.
fn write_as_owner(path: &Path, text: &str, append: bool) {
    use std::io::Write as _;
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout == b"0\n");
    let mut cmd = if root.unwrap_or(false) {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--", "tee"]);
        c
    } else {
        Command::new("tee")
    };
    if append {
        cmd.arg("-a");
    }
    let mut child = cmd
        .arg(path)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success());
}

/// Counts the hook's calls, then promotes through `pg_promote()`.
struct CountingPromote(Arc<AtomicU32>);

impl PromotionHook<Node> for CountingPromote {
    type Error = Error;
    async fn promote(&self, node: &Node) -> Result<Option<Position>, Error> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Promote::default().promote(node).await
    }
}

fn conninfo(port: u16) -> String {
    format!("host=127.0.0.1 port={port} user=postgres dbname=postgres")
}

/// One acknowledged write: id, token position, epoch.
type Ack = (i32, Position, Epoch);

async fn write(set: &ReplicaSet<Node>, id: i32) -> Result<Ack, Error> {
    let w = Write::begin(set.route(Intent::Write)?).await?;
    w.execute("INSERT INTO failover_t VALUES ($1, 0)", &[&id])
        .await
        .map_err(Error::from)?;
    let token = w.commit().await?;
    Ok((id, token.position, token.epoch))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_acts_fails_fast_and_reports_exactly_the_lost_writes() {
    // A hung step fails the test (and stops its servers: dropping the future drops the pair).
    tokio::time::timeout(Duration::from_secs(90), failover())
        .await
        .expect("the failover test did not finish in 90 s");
}

async fn failover() {
    let pair = Pair::start();
    let (primary, replica) = (conninfo(PRIMARY_PORT), conninfo(REPLICA_PORT));
    let hook_calls = Arc::new(AtomicU32::new(0));
    let set = Arc::new(
        ReplicaSet::builder()
            .primary(NodeId(0), Node::new(primary.clone()))
            .replica(NodeId(1), Node::new(replica.clone()))
            .promotion_hook(CountingPromote(hook_calls.clone()))
            .config(
                Config::default()
                    .fall(1)
                    .failover_after(Duration::from_millis(300))
                    .quiet_period(Duration::ZERO),
            )
            .build()
            .unwrap(),
    );
    let mut events = set.subscribe();
    let options = MonitorOptions::default()
        .interval(Duration::from_millis(50))
        .timeout(Duration::from_millis(500));
    let probes = tokio::spawn(monitor(set.clone(), Probe, options));
    {
        let w = Write::begin(set.route(Intent::Write).unwrap())
            .await
            .unwrap();
        w.batch_execute("CREATE TABLE failover_t (id int PRIMARY KEY, at int8)")
            .await
            .unwrap();
        w.commit().await.unwrap();
    }
    let mut acked: Vec<Ack> = Vec::new();
    let mut id = 0;
    // Phase A: replicated and replayed.
    for _ in 0..100 {
        id += 1;
        acked.push(write(&set, id).await.unwrap());
    }
    // Phase B: received by the replica but not replayed (a long apply delay).
    let r = connect(&replica).await;
    alter_system(&replica, "recovery_min_apply_delay = '1h'").await;
    let p = connect(&primary).await;
    // Wait for the server to apply the setting (a fresh session sees it once reloaded).
    loop {
        let s: String = connect(&replica)
            .await
            .query_one("SHOW recovery_min_apply_delay", &[])
            .await
            .unwrap()
            .get(0);
        if s == "1h" {
            break;
        }
        tokio::task::yield_now().await;
    }
    for _ in 0..100 {
        id += 1;
        acked.push(write(&set, id).await.unwrap());
    }
    // Wait until the replica has received all of it.
    let sent: tokio_postgres::types::PgLsn = p
        .query_one("SELECT pg_current_wal_insert_lsn()", &[])
        .await
        .unwrap()
        .get(0);
    loop {
        let got: Option<tokio_postgres::types::PgLsn> = r
            .query_one("SELECT pg_last_wal_receive_lsn()", &[])
            .await
            .unwrap()
            .get(0);
        if got.is_some_and(|g| g >= sent) {
            break;
        }
        tokio::task::yield_now().await;
    }
    // Phase C: replication cut (the primary rejects replication connections and ends its
    // WAL sender; the replica's startup process sleeps in the apply delay, so changing its
    // primary_conninfo would not take effect); the primary keeps acknowledging writes that
    // never leave it.
    write_as_owner(
        &pair.primary().join("pg_hba.conf"),
        "local all all trust\nhost replication all 127.0.0.1/32 reject\n\
         host all all 127.0.0.1/32 trust\n",
        false,
    );
    p.batch_execute("SELECT pg_reload_conf()").await.unwrap();
    p.batch_execute("SELECT pg_terminate_backend(pid) FROM pg_stat_replication")
        .await
        .unwrap();
    loop {
        let n: i64 = p
            .query_one("SELECT count(*) FROM pg_stat_replication", &[])
            .await
            .unwrap()
            .get(0);
        if n == 0 {
            break;
        }
        tokio::task::yield_now().await;
    }
    for _ in 0..50 {
        id += 1;
        acked.push(write(&set, id).await.unwrap());
    }
    // The replica's final received and replayed positions, and the set has seen them.
    let row = r
        .query_one(
            "SELECT pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()",
            &[],
        )
        .await
        .unwrap();
    let received = Position(u64::from(row.get::<_, tokio_postgres::types::PgLsn>(0)));
    let replayed = Position(u64::from(row.get::<_, tokio_postgres::types::PgLsn>(1)));
    loop {
        set.request_probe();
        if set.stats()[1].received >= Some(received) {
            break;
        }
        tokio::task::yield_now().await;
    }
    drop((p, r));

    // The primary dies.
    pair.stop_primary_immediately();
    let (mut fail_fast, mut read_only, mut in_flight_errors) = (0u32, 0u32, 0u32);
    let mut after_failover = Vec::new();
    loop {
        id += 1;
        match write(&set, id).await {
            Ok(ack) => {
                after_failover.push(ack);
                if after_failover.len() == 20 {
                    break;
                }
            }
            Err(Error::PrimaryUnavailable { .. } | Error::Promoting { .. } | Error::NoPrimary) => {
                fail_fast += 1;
                // Wait for the topology to change instead of spinning.
                let route = set
                    .route_write_waiting(Duration::from_secs(30))
                    .await
                    .expect("a writable primary within 30 s");
                drop(route);
            }
            Err(Error::Engine { sqlstate, message }) => {
                if sqlstate.as_deref() == Some(READ_ONLY_SQLSTATE) {
                    read_only += 1;
                } else {
                    // Writes that reached the primary as it died, before detection.
                    assert!(
                        fail_fast == 0,
                        "after detection no write may reach a node: {message}"
                    );
                    in_flight_errors += 1;
                }
            }
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    probes.abort();
    assert_eq!(read_only, 0, "a write reached a read-only node");
    assert!(fail_fast > 0, "writes after detection should fail fast");
    assert_eq!(
        hook_calls.load(Ordering::SeqCst),
        1,
        "one promotion, through the hook"
    );
    assert!(after_failover.iter().all(|(_, _, e)| *e == Epoch(2)));

    // Events: down, demoted, started, promoted (in this order).
    let mut seen = Vec::new();
    while let Ok(e) = events.try_recv() {
        seen.push(e);
    }
    let promotion = seen
        .iter()
        .find_map(|e| match e {
            Event::Promoted(p) => Some(*p),
            _ => None,
        })
        .expect("a Promoted event");
    let kinds: Vec<&str> = seen
        .iter()
        .map(|e| match e {
            Event::PrimaryDown { .. } => "down",
            Event::Demoted { .. } => "demoted",
            Event::PromotionStarted { .. } => "started",
            Event::Promoted(_) => "promoted",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, ["down", "demoted", "started", "promoted"]);

    // What is really missing on the new primary, against what was reported.
    let new_primary = connect(&replica).await;
    let present: std::collections::HashSet<i32> = new_primary
        .query("SELECT id FROM failover_t", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    let missing: Vec<i32> = acked
        .iter()
        .filter(|(id, _, _)| !present.contains(id))
        .map(|(id, _, _)| *id)
        .collect();
    let lost = promotion.lost.expect("writes were lost");
    let reported: Vec<i32> = acked
        .iter()
        .filter(|(_, p, _)| lost.contains(*p))
        .map(|(id, _, _)| *id)
        .collect();
    // By the replay position, the received-but-unreplayed writes would have been reported too.
    let by_replay = acked.iter().filter(|(_, p, _)| *p > replayed).count();
    println!(
        "failover: {} acknowledged before the crash, {} missing on the new primary, {} reported \
         lost (range {}..={}), {} by the replay position; {in_flight_errors} writes failed in \
         flight, {fail_fast} failed fast, 0 reached a read-only node; hook called once",
        acked.len(),
        missing.len(),
        reported.len(),
        lost.after.0,
        lost.through.0,
        by_replay
    );
    assert_eq!(reported, missing, "the lost-write report must be exact");
    assert_eq!(missing.len(), 50, "phase C's writes are the lost ones");
    assert!(
        by_replay > missing.len(),
        "replay would have overstated the loss"
    );
    assert!(received > replayed);
    drop(pair);
}

/// Creates a directory the server's user owns.
fn mkdir_as_owner(dir: &Path) {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout == b"0\n");
    let mut cmd = if root.unwrap_or(false) {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--", "mkdir", "-p"]);
        c
    } else {
        let mut c = Command::new("mkdir");
        c.arg("-p");
        c
    };
    assert!(cmd.arg(dir).status().unwrap().success(), "mkdir {dir:?}");
}
