//! An HTTP/1.1 reverse proxy on hyper 1 + tokio, balancing with tierkit-lb through its tower
//! integration, plus a small backend server mode, so a whole topology runs on loopback.
//!
//! ```text
//! # four backends, one 20 ms slower, one failing 1% of requests
//! cargo run --release --example proxy -- --backend 28001 --delay 2 &
//! cargo run --release --example proxy -- --backend 28002 --delay 2 &
//! cargo run --release --example proxy -- --backend 28003 --delay 2 --fail-rate 0.01 &
//! cargo run --release --example proxy -- --backend 28004 --delay 22 &
//! # the proxy in front of them
//! cargo run --release --example proxy -- --listen 28010 \
//!     --backends 127.0.0.1:28001,127.0.0.1:28002,127.0.0.1:28003,127.0.0.1:28004
//! curl -s 127.0.0.1:28010/hello
//! curl -s 127.0.0.1:28010/_tierkit/stats                          # per-backend counters
//! curl -s '127.0.0.1:28010/_tierkit/remove?addr=127.0.0.1:28004'  # drain, then remove
//! curl -s '127.0.0.1:28010/_tierkit/add?addr=127.0.0.1:28004'
//! ```
//!
//! The proxy (`front.rs`): a `tower::retry::Retry` with `tierkit_lb::tower::Retries` around a
//! `BalanceLayer` over one pooled hyper-util client. Per request: the body is buffered (so a
//! retry can resend it), a `Tried` record is attached, the balancer picks a backend with the
//! chosen policy (least latency by default), the request goes there; a connection error, a
//! timeout or a 5xx is a failure of that backend (passive ejection after `--eject-after`
//! failures in a row) and, for idempotent methods, is retried on a backend the request has not
//! tried yet (`--retries`, 0 turns retries off). Active health checks `GET /healthz` every
//! `--check-ms` (rise 2, fall 2); a recovered backend ramps up over a 2 s slow start. Removing
//! a backend through the admin path drains it: no new requests, and the answer comes when its
//! requests in flight have finished (at most 10 s).
//!
//! The backend (`backend.rs`): answers `GET /healthz` at once, and anything else after
//! `--delay` ms with `200 ok` (or `500` with probability `--fail-rate`).
//!
//! `examples/proxy/loadtest.sh` runs this proxy, HAProxy and nginx side by side under wrk.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};

mod backend;
mod front;

/// tierkit HTTP/1.1 reverse proxy (or, with --backend, a test backend).
#[derive(Parser, Debug, Clone)]
#[command(version, about)]
struct Args {
    /// Run as a backend server on this loopback port instead of a proxy.
    #[arg(long, value_name = "PORT")]
    backend: Option<u16>,
    /// Backend mode: milliseconds before each answer.
    #[arg(long, default_value_t = 0, value_name = "MS")]
    delay: u64,
    /// Backend mode: fraction of requests answered with 500 (0..=1).
    #[arg(long, default_value_t = 0.0, value_name = "P")]
    fail_rate: f64,
    /// Proxy mode: loopback port to listen on.
    #[arg(long, default_value_t = 28010, value_name = "PORT")]
    listen: u16,
    /// Proxy mode: backend addresses, comma separated.
    #[arg(long, value_delimiter = ',', value_name = "ADDR,...")]
    backends: Vec<SocketAddr>,
    /// Proxy mode: the balancing policy.
    #[arg(long, value_enum, default_value_t = PolicyArg::LeastLatency)]
    policy: PolicyArg,
    /// Proxy mode: retries of a failed idempotent request, each on another backend (0 = off).
    #[arg(long, default_value_t = 2)]
    retries: usize,
    /// Proxy mode: per-attempt timeout in milliseconds.
    #[arg(long, default_value_t = 2000, value_name = "MS")]
    timeout_ms: u64,
    /// Proxy mode: active health check interval in milliseconds (0 = no active checks).
    #[arg(long, default_value_t = 500, value_name = "MS")]
    check_ms: u64,
    /// Proxy mode: consecutive failures that eject a backend.
    #[arg(long, default_value_t = 3)]
    eject_after: u32,
    /// Worker threads (default: 2 for the proxy, 1 for a backend).
    #[arg(long)]
    threads: Option<usize>,
}

/// The policies the proxy offers.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum PolicyArg {
    /// P2C over peak-EWMA latency x (in flight + 1).
    LeastLatency,
    /// P2C over requests in flight.
    P2c,
    /// Fewest requests in flight (full scan).
    LeastConn,
    /// Round robin.
    RoundRobin,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if !(0.0..=1.0).contains(&args.fail_rate) {
        eprintln!("--fail-rate must be within 0..=1, got {}", args.fail_rate);
        return ExitCode::from(2);
    }
    let threads = args
        .threads
        .unwrap_or(if args.backend.is_some() { 1 } else { 2 })
        .max(1);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match args.backend {
            Some(port) => backend::serve(port, args.delay, args.fail_rate).await,
            None => front::serve(&args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("proxy: {e}");
            ExitCode::FAILURE
        }
    }
}
