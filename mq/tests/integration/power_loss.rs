//! Simulated power losses at thousands of seeded points.

use std::collections::BTreeSet;

use tierkit_mq::{Durability, Message, Queue, SimDir};

use crate::payload;

fn rng(state: &mut u64) -> u64 {
    *state = state
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    *state >> 33
}

/// Runs a workload of sends, batches, receives and acks, cutting the power after a seeded
/// number of storage operations, then checks what the reopened queue holds.
///
/// With `buffered`, appends gather in a 1 KiB write buffer (its timer never fires here), so
/// records reach the simulated OS only when the buffer fills, at a roll, a flush or an fsync.
fn run(seed: u64, durability: Durability, buffered: bool) {
    let dir = SimDir::new();
    let mut r = seed.wrapping_add(1);
    // A first life may have left data; a second life continues after a clean reopen.
    let mut builder = Queue::builder().durability(durability).segment_size(4096);
    if buffered {
        builder = builder.write_buffer(1024, std::time::Duration::from_secs(3600));
    }
    let queue = builder.build_with(dir.handle()).unwrap();
    let producer = queue.producer("t").unwrap();
    let consumer = queue.consumer("t", "g").unwrap();
    dir.power_cut_after(rng(&mut r) % 300);
    let mut returned = BTreeSet::new();
    let mut acked = BTreeSet::new();
    // Acks that returned an error: cut power mid-ack, and the record may or may not have
    // reached the disk (as for a send that fails); either outcome is allowed.
    let mut ack_unknown = BTreeSet::new();
    let mut flushed_end = 0;
    for _ in 0..120 {
        match rng(&mut r) % 10 {
            0..=4 => {
                let next = queue.stats("t").unwrap().log_end;
                let len = 8 + (rng(&mut r) % 700) as usize;
                if let Ok(off) = producer.send(Message::new(payload(next, len))) {
                    assert_eq!(off, next);
                    returned.insert(off);
                }
            }
            5 => {
                let next = queue.stats("t").unwrap().log_end;
                let batch: Vec<Message> = (0..4)
                    .map(|i| Message::new(payload(next + i, 100)))
                    .collect();
                if let Ok(first) = producer.send_batch(&batch) {
                    returned.extend(first..first + 4);
                }
            }
            6 | 7 => {
                if let Ok(Some(d)) = consumer.try_recv() {
                    if consumer.ack(&d).is_ok() {
                        acked.insert(d.offset());
                    } else {
                        ack_unknown.insert(d.offset());
                    }
                }
            }
            8 => {
                if queue.flush().is_ok() {
                    flushed_end = queue.stats("t").unwrap().log_end;
                }
            }
            _ => {
                let _ = consumer.try_recv();
            }
        }
    }
    drop((producer, consumer, queue));
    dir.crash(seed);

    let queue = Queue::builder()
        .durability(durability)
        .build_with(dir.handle())
        .unwrap();
    let stats = queue.stats("t").unwrap();
    let end = stats.log_end;
    // The log is a prefix of what was written, every record intact.
    let consumer = queue.consumer("t", "g").unwrap();
    let mut seen = BTreeSet::new();
    while let Some(d) = consumer.try_recv().unwrap() {
        assert_eq!(
            d.payload()[..8],
            d.offset().to_le_bytes(),
            "seed {seed}: payload mix-up"
        );
        assert!(
            seen.insert(d.offset()),
            "seed {seed}: delivered twice in one pass"
        );
        consumer.ack(&d).unwrap();
    }
    let must_keep = match durability {
        Durability::Always => returned.last().map_or(0, |o| o + 1),
        _ => flushed_end,
    };
    assert!(
        end >= must_keep,
        "seed {seed}: lost messages: log end {end} < {must_keep}"
    );
    if matches!(durability, Durability::Always) {
        for a in &acked {
            assert!(
                !seen.contains(a),
                "seed {seed}: acked offset {a} delivered again"
            );
        }
        for o in &returned {
            assert!(
                acked.contains(o) || seen.contains(o) || ack_unknown.contains(o),
                "seed {seed}: offset {o} neither acked nor redelivered"
            );
        }
    }
    for o in 0..end {
        assert!(
            o < stats.log_start
                || acked.contains(&o)
                || ack_unknown.contains(&o)
                || seen.contains(&o)
                || !matches!(durability, Durability::Always),
            "seed {seed}: offset {o} missing"
        );
    }
}

#[test]
fn always_loses_nothing_returned_over_seeded_power_cuts() {
    for seed in 0..1500 {
        run(seed, Durability::Always, false);
    }
}

#[test]
fn always_with_a_write_buffer_loses_nothing_returned() {
    for seed in 0..800 {
        run(seed, Durability::Always, true);
    }
}

#[test]
fn never_and_interval_keep_a_prefix_and_everything_flushed() {
    let hour = std::time::Duration::from_secs(3600);
    for seed in 0..600 {
        for buffered in [false, true] {
            run(seed, Durability::Never, buffered);
            run(seed, Durability::Interval(hour), buffered);
        }
    }
}
