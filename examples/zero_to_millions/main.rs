//! From zero to millions of users, measured: one run takes a small service (user profiles,
//! sessions, photo uploads) from a single server to a sharded, replicated, cached,
//! queue-decoupled system, stage by stage, and prints what each step bought.
//!
//! ```text
//! cargo run --release --example zero_to_millions
//! cargo run --release --example zero_to_millions -- --stage 3 --users 128 --report journey.html
//! ```
//!
//! Simulated users are tokio tasks; the web servers are tokio tasks behind `tierkit::lb`; every
//! database node is a real SQLite file in a temporary directory. The workload is deterministic
//! by `--seed`; the timings are whatever this machine measures.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

mod journey;

/// From zero to millions of users, stage by stage, measured.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Run only this stage (1-10; repeatable). Stage 9 gathers the others, so it runs all.
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=10))]
    stage: Vec<u8>,
    /// Concurrent simulated users.
    #[arg(long)]
    users: Option<usize>,
    /// Requests per stage.
    #[arg(long)]
    requests: Option<u64>,
    /// User profiles in the database.
    #[arg(long)]
    profiles: Option<u64>,
    /// The longest a stage's load may run, in seconds (a stage that hits it stops early).
    #[arg(long, value_parser = parse_secs)]
    duration: Option<Duration>,
    /// Seed of the simulated workload.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Tiny sizes (what CI runs).
    #[arg(long)]
    quick: bool,
    /// Write a self-contained HTML report here.
    #[arg(long)]
    report: Option<PathBuf>,
    /// No progress bars.
    #[arg(long)]
    no_progress: bool,
}

fn parse_secs(s: &str) -> Result<Duration, String> {
    let s = s.trim_end_matches('s');
    s.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v > 0.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| format!("`{s}` is not a number of seconds"))
}

fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let cli = Cli::parse();
    let mut opts = if cli.quick {
        journey::Options::quick(cli.seed)
    } else {
        journey::Options {
            seed: cli.seed,
            ..journey::Options::default()
        }
    };
    if let Some(u) = cli.users {
        opts.users = u.max(1);
    }
    if let Some(r) = cli.requests {
        opts.requests = r.max(1);
    }
    if let Some(p) = cli.profiles {
        opts.profiles = p.max(opts.users as u64).max(16);
    }
    if let Some(d) = cli.duration {
        opts.duration = d;
    }
    opts.stages = cli.stage;
    opts.progress = !cli.no_progress;
    println!(
        "tierkit: from zero to millions — {} users, {} requests per stage, {} profiles, seed {}\n",
        opts.users, opts.requests, opts.profiles, opts.seed
    );
    let report = journey::run(&opts)?;
    println!("\n{}", journey::report::stage_notes(&report));
    if let Some(d) = &report.dashboard {
        println!("stage 9 dashboard: every component's stats()\n");
        println!("{}", journey::report::dashboard_table(d));
    }
    println!("{}", journey::report::summary_table(&report));
    println!("total run time {:.1?}", report.elapsed);
    if let Some(path) = cli.report {
        journey::ensure_parent(&path)?;
        std::fs::write(&path, journey::report::html(&report))?;
        println!("report written to {}", path.display());
    }
    Ok(())
}
