//! Exhaustive check of the migration protocol (see `model.rs`).
//!
//! ```text
//! cargo run -p tierkit-shard --release --example protocol_check -- --variant fixed
//! cargo run -p tierkit-shard --release --example protocol_check -- --variant target-first --expect-violation
//! ```
//!
//! Exits 0 when the outcome is the expected one (no violation, or a violation with
//! `--expect-violation`), 1 otherwise, 2 on bad arguments.

use std::process::ExitCode;
use std::time::Instant;

mod model;

use model::{Scenario, Variant, explore};

fn main() -> ExitCode {
    let mut variant = Variant::Fixed;
    let mut scenario = Scenario::full();
    let mut expect_violation = false;
    let mut max_states = 50_000_000u64;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--variant" => match args.next().as_deref().and_then(Variant::parse) {
                Some(v) => variant = v,
                None => return usage(),
            },
            "--small" => scenario = Scenario::small(),
            "--large" => scenario = Scenario::large(),
            "--expect-violation" => expect_violation = true,
            "--max-states" => match args.next().and_then(|n| n.parse().ok()) {
                Some(n) => max_states = n,
                None => return usage(),
            },
            _ => return usage(),
        }
    }
    let started = Instant::now();
    println!(
        "protocol_check: variant {variant:?}, clients {:?}",
        scenario.clients
    );
    let report = explore(variant, &scenario, max_states);
    println!(
        "explored {} states, {} complete executions checked, in {:.1} s",
        report.states,
        report.finals,
        started.elapsed().as_secs_f64()
    );
    match (&report.violation, expect_violation) {
        (None, false) => {
            println!("PASS: no lost write, no resurrected delete, no stale or backward read");
            ExitCode::SUCCESS
        }
        (Some((what, path)), expect) => {
            println!(
                "VIOLATION: {what}\ncounterexample ({} transitions):",
                path.len()
            );
            for step in path {
                println!("  {step}");
            }
            if expect {
                println!("PASS: the broken variant fails the check, as it must");
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        (None, true) => {
            println!("FAIL: the broken variant passed; the check cannot tell it apart");
            ExitCode::FAILURE
        }
    }
}

fn usage() -> ExitCode {
    eprintln!(
        "usage: protocol_check [--variant fixed|target-first|target-first-drained|no-drain] [--small|--large] [--expect-violation] [--max-states N]"
    );
    ExitCode::from(2)
}
