//! Load-balancing policies compared in virtual time: the same seeded workload through round
//! robin, random, least connections, P2C least request, least latency and weighted round robin.
//!
//! ```text
//! cargo run --release --example lb_sim              # 200,000 requests per scenario and policy
//! cargo run --release --example lb_sim -- --quick   # 20,000 (CI)
//! cargo run --release --example lb_sim -- --seed 7
//! cargo run --release --example lb_sim -- --situations           # the default-policy table
//! cargo run --release --example lb_sim -- --situations --quick   # CI: run twice and diffed
//! ```
//!
//! `--situations` runs every candidate policy (the default `LeastLatency::new()`, the
//! full-information reference `LeastLatency::full_scan()`, 2 and 8 choices, P2C least request,
//! least connections, round robin, random, smooth WRR) in the seven situations (a)-(g) of
//! `tierkit_lb::sim::situations` and prints each p99 as a ratio to the reference's, the error
//! rate with a fast-failing backend, and whether the policy meets the bounds everywhere (p99 <=
//! 1.2x the reference, stable, errors <= 0.2%), then the per-situation tables. The output is a
//! function of the seed only (no wall time), so two runs are byte-identical.
//!
//! Each backend is a server with one worker and a FIFO queue; requests arrive as a Poisson
//! process at a share of the pool's capacity; the balancer (a real `tierkit_lb::Balancer` on a
//! `ManualClock`) picks per request and learns from each response (`tierkit_lb::sim`). The
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
    situations: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        requests: sim::DEFAULT_REQUESTS,
        seed: 1,
        situations: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--quick" => args.requests = 20_000,
            "--situations" => args.situations = true,
            "--seed" => {
                let v = it.next().ok_or("--seed needs a value")?;
                args.seed = v.parse().map_err(|e| format!("--seed {v}: {e}"))?;
            }
            "--requests" => {
                let v = it.next().ok_or("--requests needs a value")?;
                args.requests = v.parse().map_err(|e| format!("--requests {v}: {e}"))?;
            }
            "-h" | "--help" => {
                return Err(
                    "usage: lb_sim [--situations] [--quick] [--seed N] [--requests N]".to_owned(),
                );
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
    if args.situations {
        return situations(&args);
    }
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

/// The default-policy table; prints nothing that depends on the wall clock.
fn situations(args: &Args) -> ExitCode {
    println!(
        "tierkit-lb situations (a)-(g): {} requests per situation and policy, seed {}\n",
        args.requests, args.seed
    );
    let runs = match sim::run_situations(args.requests, args.seed) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("situations: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("p99 / p99 of the full-information policy (inf = unstable):\n");
    println!("{}", sim::situation_table(&runs));
    for run in &runs {
        println!(
            "{} -- {} ({:.0} req/s offered)",
            run.scenario.name(),
            run.scenario.description(),
            run.scenario.arrival_rate()
        );
        println!("{}", sim::table(&run.reports));
    }
    ExitCode::SUCCESS
}
