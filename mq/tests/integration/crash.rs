//! SIGKILL crash test: a child process produces and acks with `Durability::Always`; the parent
//! kills it at seeded random moments and checks the queue after each kill.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use tierkit_mq::{Durability, Message, Queue};

use crate::{TempDir, scaled};

const CHILD_ENV: &str = "TIERKIT_MQ_CRASH_CHILD";

/// The child's body: run only by the parent, which re-invokes this test binary with
/// `CHILD_ENV` and `--ignored`; run any other way it fails instead of passing untested.
#[test]
#[ignore = "child process body; run by crash::sigkill_loses_nothing_returned_and_keeps_acks"]
fn crash_child_mode() {
    let dir = std::env::var(CHILD_ENV).unwrap_or_else(|_| {
        panic!("{CHILD_ENV} is unset: this is the child half of a two-process test, not a test on its own")
    });
    let run: u64 = std::env::var("TIERKIT_MQ_CRASH_RUN")
        .unwrap()
        .parse()
        .unwrap();
    let queue = Queue::builder()
        .durability(Durability::Always)
        .segment_size(8192)
        .max_deliveries(1_000_000)
        .build(&dir)
        .unwrap();
    let producer = queue.producer("t").unwrap();
    let consumer = queue.consumer("t", "w").unwrap();
    let out = std::io::stdout();
    let sender = std::thread::spawn(move || {
        for seq in 0u64.. {
            let id = format!("{run}:{seq}");
            let off = producer.send(Message::new(id.clone())).unwrap();
            let mut o = out.lock();
            writeln!(o, "@@sent {off} {id}").unwrap();
            o.flush().unwrap();
        }
    });
    let out = std::io::stdout();
    loop {
        if let Some(d) = consumer.recv_timeout(Duration::from_millis(5)).unwrap() {
            // Leave every third message unacknowledged: it must come back after the kill.
            if !d.offset().is_multiple_of(3) {
                {
                    let mut o = out.lock();
                    writeln!(o, "@@acking {}", d.offset()).unwrap();
                    o.flush().unwrap();
                }
                consumer.ack(&d).unwrap();
                let mut o = out.lock();
                writeln!(o, "@@acked {}", d.offset()).unwrap();
                o.flush().unwrap();
            }
        }
        if sender.is_finished() {
            break;
        }
    }
}

#[test]
fn sigkill_loses_nothing_returned_and_keeps_acks() {
    let tmp = TempDir::new("sigkill");
    let exe = std::env::current_exe().unwrap();
    let mut rng = 0x5EED_u64;
    let mut sent: BTreeMap<u64, String> = BTreeMap::new();
    let mut acked: BTreeSet<u64> = BTreeSet::new();
    let mut acking: BTreeSet<u64> = BTreeSet::new();
    for run in 0..scaled(55) {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "crash::crash_child_mode",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, tmp.path())
            .env("TIERKIT_MQ_CRASH_RUN", run.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut lines = Vec::new();
            let mut r = BufReader::new(stdout);
            let mut buf = Vec::new();
            while r.read_until(b'\n', &mut buf).unwrap_or(0) > 0 {
                if buf.ends_with(b"\n") {
                    lines.push(String::from_utf8_lossy(&buf).trim_end().to_owned());
                }
                buf.clear();
            }
            lines
        });
        rng = rng.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        std::thread::sleep(Duration::from_millis(20 + (rng >> 33) % 50));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        for line in reader.join().unwrap() {
            // libtest may print its own text before ours on the same line.
            let Some(at) = line.find("@@") else { continue };
            let mut parts = line[at + 2..].split(' ');
            match (parts.next(), parts.next(), parts.next()) {
                (Some("sent"), Some(off), Some(id)) => {
                    assert!(
                        sent.insert(off.parse().unwrap(), id.to_owned()).is_none(),
                        "offset reused"
                    );
                }
                (Some("acking"), Some(off), None) => {
                    acking.insert(off.parse().unwrap());
                }
                (Some("acked"), Some(off), None) => {
                    acked.insert(off.parse().unwrap());
                }
                _ => {}
            }
        }
        check(tmp.path(), &sent, &acked, &acking);
    }
    assert!(
        sent.len() > 20,
        "the child made progress: {} sends",
        sent.len()
    );
    assert!(!acked.is_empty());
}

/// `acking`: acks the child started; one cut short by the kill may or may not have landed.
fn check(
    dir: &std::path::Path,
    sent: &BTreeMap<u64, String>,
    acked: &BTreeSet<u64>,
    acking: &BTreeSet<u64>,
) {
    let queue = Queue::builder()
        .max_deliveries(1_000_000)
        .build(dir)
        .unwrap();
    // Every returned send is in the log, once, at its offset.
    let audit = queue.consumer("t", "audit").unwrap();
    let mut ids = BTreeSet::new();
    let mut log = BTreeMap::new();
    while let Some(d) = audit.try_recv().unwrap() {
        let id = String::from_utf8(d.payload().to_vec()).unwrap();
        assert!(ids.insert(id.clone()), "{id} appears twice in the log");
        log.insert(d.offset(), id);
    }
    for (off, id) in sent {
        assert_eq!(
            log.get(off),
            Some(id),
            "send of {id} at {off} returned but is missing"
        );
    }
    // Acknowledged messages stay acknowledged; every unacknowledged one is delivered again.
    let workers = queue.consumer("t", "w").unwrap();
    let mut again = BTreeSet::new();
    while let Some(d) = workers.try_recv().unwrap() {
        assert!(
            !acked.contains(&d.offset()),
            "acked offset {} delivered again",
            d.offset()
        );
        again.insert(d.offset());
    }
    for off in log.keys() {
        assert!(
            acking.contains(off) || again.contains(off),
            "unacked offset {off} not redelivered"
        );
    }
}
