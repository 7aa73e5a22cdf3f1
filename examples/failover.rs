//! Failover in real time: a client pool balances over 4 in-process web servers; one is killed
//! mid-run and comes back later on the same port.
//!
//! ```text
//! cargo run --release --example failover             # ~4 s
//! cargo run --release --example failover -- --quick  # ~2.5 s (CI)
//! ```
//!
//! - 4 servers: tokio `TcpListener`s on 127.0.0.1 (ephemeral ports) answering a tiny HTTP/1.1
//!   `200 OK` after ~1 ms of "work"; one connection per request.
//! - 8 client tasks pick with a `Balancer` (P2C least request) with passive outlier detection
//!   (3 consecutive failures eject for 300 ms, growing), active `TcpConnect` health checks every
//!   100 ms (rise 2, fall 2) and a 500 ms slow start for a server that returns. Each request
//!   reports success (with its latency) or failure on its lease; a failed request is retried
//!   once on another server (`Context::exclude`).
//! - The killed server's accept task is aborted (dropping its listener and open connections);
//!   later a new listener binds the same address.
//!
//! Every 250 ms a row shows requests served per server, failed attempts (each recovered by the
//! retry unless counted as a failed request too) and the killed server's state as the balancer
//! sees it: its share drops to 0 once detected and ramps back after it returns.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use tierkit::lb::{
    Backend, BackendId, Balancer, CheckConfig, Context, Health, OutlierDetection,
    PowerOfTwoChoices, SlowStart, TcpConnect,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

const SERVERS: usize = 4;
const CLIENTS: usize = 8;
/// The server that is killed and restarted.
const VICTIM: usize = 2;
const TICK: Duration = Duration::from_millis(250);
/// Each client's pause between requests (with ~1 ms per request and tokio's 1 ms timer,
/// about 1,000 requests per second in all).
const PACE: Duration = Duration::from_millis(4);
const REQUEST_TIMEOUT: Duration = Duration::from_millis(500);

/// A backend as the balancer holds it.
#[derive(Debug)]
struct Server {
    index: usize,
    addr: SocketAddr,
}

type Lb = Balancer<Server, PowerOfTwoChoices>;

/// A listener with `SO_REUSEADDR`, so a restarted server can bind its old port while
/// connections of its previous life linger in `TIME_WAIT`.
fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// Accepts connections until aborted; aborting drops the listener and every open connection.
async fn serve(listener: TcpListener) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    conns.spawn(respond(stream));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(1)).await,
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

/// Reads one request head and answers `200 OK` after ~1 ms of work.
async fn respond(mut stream: TcpStream) {
    let mut buf = [0u8; 1024];
    let mut len = 0;
    loop {
        match stream.read(&mut buf[len..]).await {
            Ok(0) | Err(_) => return, // a health check's connect, or a client gone
            Ok(n) => {
                len += n;
                if buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
                if len == buf.len() {
                    return;
                }
            }
        }
    }
    tokio::time::sleep(Duration::from_millis(1)).await;
    let _ = stream
        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        .await;
}

/// One HTTP request; true for a `200` within the timeout.
async fn request(addr: SocketAddr) -> bool {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await?;
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n")
            .await?;
        let mut response = Vec::with_capacity(128);
        stream.read_to_end(&mut response).await?;
        Ok::<_, std::io::Error>(response.starts_with(b"HTTP/1.1 200"))
    };
    matches!(
        tokio::time::timeout(REQUEST_TIMEOUT, exchange).await,
        Ok(Ok(true))
    )
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    served: [AtomicU64; SERVERS],
    failed_attempts: AtomicU64,
    failed_requests: AtomicU64,
    /// Failed attempts after the balancer first took the killed server out of rotation.
    failed_after_detection: AtomicU64,
    detected: AtomicBool,
    stop: AtomicBool,
}

/// A client: pick, send, report on the lease; retry a failure once elsewhere.
async fn client(lb: Arc<Lb>, c: Arc<Counters>) {
    while !c.stop.load(Ordering::Relaxed) {
        c.requests.fetch_add(1, Ordering::Relaxed);
        let mut failed: Option<[BackendId; 1]> = None;
        let mut ok = false;
        for _attempt in 0..2 {
            let picked = match &failed {
                Some(ids) => lb.pick(&Context::new().exclude(ids)),
                None => lb.pick(&Context::new()),
            };
            let Ok(lease) = picked else { break };
            let started = Instant::now();
            if request(lease.addr).await {
                c.served[lease.index].fetch_add(1, Ordering::Relaxed);
                lease.success(started.elapsed());
                ok = true;
                break;
            }
            failed = Some([lease.id()]);
            lease.failure();
            c.failed_attempts.fetch_add(1, Ordering::Relaxed);
            if c.detected.load(Ordering::Relaxed) {
                c.failed_after_detection.fetch_add(1, Ordering::Relaxed);
            }
        }
        if !ok {
            c.failed_requests.fetch_add(1, Ordering::Relaxed);
        }
        tokio::time::sleep(PACE).await;
    }
}

fn victim_state(lb: &Lb) -> String {
    let stats = lb.stats();
    let Some(b) = stats
        .backends
        .iter()
        .find(|b| b.id == BackendId(VICTIM as u64))
    else {
        return "removed".to_owned();
    };
    let health = match b.health {
        Health::Healthy => "healthy",
        Health::Unhealthy => "unhealthy",
        Health::Ejected => "ejected",
        _ => "other",
    };
    if b.eligible && b.effective_weight < f64::from(b.weight) {
        format!(
            "{health}, slow start {:.0}%",
            100.0 * b.effective_weight / f64::from(b.weight)
        )
    } else {
        health.to_owned()
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let quick = match std::env::args().nth(1).as_deref() {
        None => false,
        Some("--quick") => true,
        Some(other) => {
            eprintln!("unknown argument {other:?}; usage: failover [--quick]");
            return ExitCode::FAILURE;
        }
    };
    // Ticks (of 250 ms) at which the victim dies and returns, and the run's length.
    let (kill_tick, restart_tick, ticks) = if quick { (3, 6, 10) } else { (4, 9, 16) };

    // The pool.
    let mut addrs = Vec::new();
    let mut tasks: Vec<JoinHandle<()>> = Vec::new();
    for _ in 0..SERVERS {
        let listener = match listen(SocketAddr::from(([127, 0, 0, 1], 0))) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("bind: {e}");
                return ExitCode::FAILURE;
            }
        };
        let Ok(addr) = listener.local_addr() else {
            return ExitCode::FAILURE;
        };
        addrs.push(addr);
        tasks.push(tokio::spawn(serve(listener)));
    }
    let built = Balancer::builder()
        .policy(PowerOfTwoChoices::new())
        .backends(
            addrs
                .iter()
                .enumerate()
                .map(|(index, &addr)| Backend::new(index as u64, Server { index, addr })),
        )
        .outlier_detection(
            OutlierDetection::new()
                .consecutive_failures(3)
                .base_ejection(Duration::from_millis(300))
                .max_ejection(Duration::from_secs(2)),
        )
        .slow_start(SlowStart::new(Duration::from_millis(500)))
        .build();
    let lb = match built {
        Ok(lb) => Arc::new(lb),
        Err(e) => {
            eprintln!("balancer: {e}");
            return ExitCode::FAILURE;
        }
    };
    let checks = lb.spawn_health_checks(
        TcpConnect::new(|s: &Server| s.addr),
        CheckConfig::new(Duration::from_millis(100)).rise(2).fall(2),
    );
    let checks = match checks {
        Ok(h) => h,
        Err(e) => {
            eprintln!("health checks: {e}");
            return ExitCode::FAILURE;
        }
    };
    let counters = Arc::new(Counters::default());
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| tokio::spawn(client(Arc::clone(&lb), Arc::clone(&counters))))
        .collect();

    // Detection watch: when does the balancer stop choosing the killed server?
    let killed_at: Arc<OnceLock<Instant>> = Arc::default();
    let detected_after = {
        let (lb, c, killed_at) = (
            Arc::clone(&lb),
            Arc::clone(&counters),
            Arc::clone(&killed_at),
        );
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(2)).await;
                let Some(&t) = killed_at.get() else { continue };
                let out = lb
                    .members()
                    .iter()
                    .any(|m| m.id() == BackendId(VICTIM as u64) && m.health() != Health::Healthy);
                if out {
                    c.detected.store(true, Ordering::Relaxed);
                    return t.elapsed();
                }
            }
        })
    };

    println!(
        "4 servers on {}; {CLIENTS} clients; s{VICTIM} is killed at {} ms and restarted at {} ms\n",
        addrs
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        kill_tick * 250,
        restart_tick * 250
    );
    println!(
        "{:>7} {:>6} {:>6} {:>6} {:>6} {:>9} {:>8}  s{VICTIM} as the balancer sees it",
        "t (ms)", "s0", "s1", "s2", "s3", "failed@1", "failed"
    );
    let start = Instant::now();
    let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + TICK, TICK);
    let mut last = [0u64; SERVERS + 2];
    let mut restarted_at: Option<Instant> = None;
    let mut back_after: Option<Duration> = None;
    let mut zero_share_seen = false;
    for tick in 1..=ticks {
        interval.tick().await;
        let now = [
            counters.served[0].load(Ordering::Relaxed),
            counters.served[1].load(Ordering::Relaxed),
            counters.served[2].load(Ordering::Relaxed),
            counters.served[3].load(Ordering::Relaxed),
            counters.failed_attempts.load(Ordering::Relaxed),
            counters.failed_requests.load(Ordering::Relaxed),
        ];
        let d: Vec<u64> = now.iter().zip(&last).map(|(a, b)| a - b).collect();
        last = now;
        if tick > kill_tick && restarted_at.is_none() && d[VICTIM] == 0 {
            zero_share_seen = true;
        }
        if let (Some(r), None) = (restarted_at, back_after)
            && d[VICTIM] > 0
        {
            back_after = Some(r.elapsed());
        }
        let event = if tick == kill_tick {
            "  <- killed"
        } else if tick == restart_tick {
            "  <- restarted"
        } else {
            ""
        };
        println!(
            "{:>7} {:>6} {:>6} {:>6} {:>6} {:>9} {:>8}  {}{event}",
            start.elapsed().as_millis(),
            d[0],
            d[1],
            d[2],
            d[3],
            d[4],
            d[5],
            victim_state(&lb)
        );
        if tick == kill_tick {
            tasks[VICTIM].abort();
            let _ = killed_at.set(Instant::now());
        }
        if tick == restart_tick {
            match listen(addrs[VICTIM]) {
                Ok(listener) => {
                    tasks[VICTIM] = tokio::spawn(serve(listener));
                    restarted_at = Some(Instant::now());
                }
                Err(e) => {
                    eprintln!("restart on {}: {e}", addrs[VICTIM]);
                    return ExitCode::FAILURE;
                }
            }
        }
    }
    counters.stop.store(true, Ordering::Relaxed);
    for c in clients {
        let _ = c.await;
    }
    checks.abort();
    let detection = if detected_after.is_finished() {
        detected_after.await.ok()
    } else {
        detected_after.abort();
        None
    };
    for t in &tasks {
        t.abort();
    }

    let stats = lb.stats();
    let victim = &stats.backends[VICTIM];
    let c = &counters;
    println!(
        "\nrequests {}, failed attempts {} (retried elsewhere), failed requests {} (both attempts failed)",
        c.requests.load(Ordering::Relaxed),
        c.failed_attempts.load(Ordering::Relaxed),
        c.failed_requests.load(Ordering::Relaxed)
    );
    println!(
        "s{VICTIM}: out of rotation {} after the kill; failed attempts after that: {}; \
         ejections by outlier detection: {}",
        detection.map_or_else(|| "never".to_owned(), |d| format!("{} ms", d.as_millis())),
        c.failed_after_detection.load(Ordering::Relaxed),
        victim.ejections
    );
    println!(
        "s{VICTIM}: serving again in the row ending {} after the restart; final state: {}",
        back_after.map_or_else(|| "never".to_owned(), |d| format!("{} ms", d.as_millis())),
        victim_state(&lb)
    );
    if detection.is_some() && zero_share_seen && back_after.is_some() {
        println!("OK: the killed server's share dropped to 0 and recovered");
        ExitCode::SUCCESS
    } else {
        println!("UNEXPECTED: the killed server was not taken out, or did not come back");
        ExitCode::FAILURE
    }
}
