//! Load-balancing policies compared in virtual time: the same seeded workload through round
//! robin, random, least connections, P2C least request, least latency and weighted round robin.
//!
//! ```text
//! cargo run --release --example lb_sim              # 200,000 requests per scenario and policy
//! cargo run --release --example lb_sim -- --quick   # 20,000 (CI)
//! cargo run --release --example lb_sim -- --seed 7
//! ```
//!
//! Each backend is a server with one worker and a FIFO queue; requests arrive as a Poisson
//! process at a share of the pool's capacity; the balancer (a real `tierkit_lb::Balancer` on a
//! `MockClock`) picks per request and learns from each response (`tierkit_lb::sim`). The
//! scenarios:
//!
//! - A: 10 equal backends (10 ms) at 70% load;
//! - B: 8 x 10 ms + 2 x 20 ms at 70% of the total capacity;
//! - C: 9 x 10 ms + one sick backend of 100 ms at 70% of capacity;
//! - D: one of 10 backends fails fast (an error after 1 ms), no outlier detection;
//! - E: a cold backend (10x slower, warming over 10 s) joins at 10 s, slow start off and on;
//! - F: one backend fails fast from 5 s to 10 s, with outlier detection; does it get its share
//!   back afterwards (share in the window 15-25 s)?
//!
//! Times are response times (queueing + service) of successful requests; `unstable` means some
//! backend was offered more than it can serve, or the backlog was still growing at the end.

use std::process::ExitCode;
use std::time::Instant;

use tierkit::lb::sim;

struct Args {
    requests: u64,
    seed: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        requests: sim::DEFAULT_REQUESTS,
        seed: 1,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--quick" => args.requests = 20_000,
            "--seed" => {
                let v = it.next().ok_or("--seed needs a value")?;
                args.seed = v.parse().map_err(|e| format!("--seed {v}: {e}"))?;
            }
            "--requests" => {
                let v = it.next().ok_or("--requests needs a value")?;
                args.requests = v.parse().map_err(|e| format!("--requests {v}: {e}"))?;
            }
            "-h" | "--help" => {
                return Err("usage: lb_sim [--quick] [--seed N] [--requests N]".to_owned());
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let started = Instant::now();
    println!(
        "tierkit-lb policy simulator: {} requests per scenario and policy, seed {}\n",
        args.requests, args.seed
    );
    for scenario in sim::standard() {
        let scenario = scenario.requests(args.requests).seed(args.seed);
        println!(
            "{} -- {} ({:.0} req/s offered)",
            scenario.name(),
            scenario.description(),
            scenario.arrival_rate()
        );
        match scenario.compare() {
            Ok(reports) => println!("{}", sim::table(&reports)),
            Err(e) => {
                eprintln!("{}: {e}", scenario.name());
                return ExitCode::FAILURE;
            }
        }
    }
    println!(
        "(wall time {:.1} s; virtual time is deterministic by seed)",
        started.elapsed().as_secs_f64()
    );
    ExitCode::SUCCESS
}
