//! A full disk (simulated ENOSPC, and a real 256 KiB tmpfs when this process may mount one):
//! every send either returns an offset that survives a reopen, or `DiskFull` with the message;
//! nothing poisons the handle; sends and acks work again once space is freed.

use std::collections::BTreeMap;
use std::time::Duration;

use tierkit_mq::{Durability, Error, Message, Queue, Repair, SimDir};

use crate::{TempDir, mount_tmpfs, payload};

const POLICIES: [Durability; 3] = [
    Durability::Always,
    Durability::Interval(Duration::from_secs(3600)),
    Durability::Never,
];

fn open(dir: &SimDir, durability: Durability) -> Queue {
    Queue::builder()
        .durability(durability)
        .segment_size(4096)
        .build_with(dir.handle())
        .unwrap()
}

/// Every offset in `sent` is in the reopened log with its payload.
fn assert_readable(queue: &Queue, sent: &BTreeMap<u64, Vec<u8>>, what: &str) {
    let audit = queue.consumer("t", "audit").unwrap();
    let mut log = BTreeMap::new();
    while let Some(d) = audit.try_recv().unwrap() {
        log.insert(d.offset(), d.payload().to_vec());
    }
    for (off, p) in sent {
        assert_eq!(
            log.get(off),
            Some(p),
            "{what}: acknowledged offset {off} unreadable"
        );
    }
}

#[test]
fn a_full_disk_at_segment_rolls_refuses_sends_and_the_queue_reopens_under_every_policy() {
    for durability in POLICIES {
        // A record is 939 bytes, a segment holds 4 (3,772 bytes with its header): at 3,760
        // and 7,530 bytes the disk fills exactly at a roll, elsewhere mid-segment.
        for extra in [40u64, 3000, 3760, 5000, 7530, 9000] {
            let dir = SimDir::new();
            let queue = open(&dir, durability);
            let producer = queue.producer("t").unwrap();
            dir.set_capacity(Some(dir.used_bytes() + extra));
            let mut sent = BTreeMap::new();
            let mut refused_at_roll = 0;
            for i in 0..40u64 {
                let p = payload(i, 900);
                match producer.send(Message::new(p.clone())) {
                    Ok(off) => {
                        sent.insert(off, p);
                    }
                    Err(Error::DiskFull { op, message }) => {
                        let back = message.expect("the refused message comes back");
                        assert_eq!(back.payload()[..], p[..], "{durability:?}");
                        refused_at_roll += u32::from(op == "segment roll");
                    }
                    Err(e) => panic!("{durability:?}/{extra}: {e}"),
                }
            }
            assert!(
                sent.len() < 40,
                "{durability:?}/{extra}: the disk filled up"
            );
            if extra == 3760 || extra == 7530 {
                assert!(
                    refused_at_roll > 0,
                    "{durability:?}/{extra}: a roll hit the limit"
                );
            }
            // A process crash with the disk still full: the queue must open and hold
            // everything acknowledged.
            drop((producer, queue));
            dir.kill_process();
            let queue = open(&dir, durability);
            let what = format!("{durability:?}/{extra} reopened while full");
            assert_readable(&queue, &sent, &what);
            assert!(
                queue
                    .recovery_report()
                    .repairs()
                    .iter()
                    .all(|r| matches!(r, Repair::HeaderlessSegment { .. })),
                "{what}: {:?}",
                queue.recovery_report()
            );
            // Space is freed: sends work again, on the same handle's successor and after.
            dir.set_capacity(None);
            let producer = queue.producer("t").unwrap();
            for i in 0..20u64 {
                let p = payload(100 + i, 900);
                let off = producer.send(Message::new(p.clone())).unwrap();
                sent.insert(off, p);
            }
            drop((producer, queue));
            dir.kill_process();
            let queue = open(&dir, durability);
            assert_readable(
                &queue,
                &sent,
                &format!("{durability:?}/{extra} after freeing"),
            );
            assert!(queue.recovery_report().is_clean());
        }
    }
}

#[test]
fn a_full_disk_fails_an_ack_without_poisoning_and_the_ack_can_be_retried() {
    for durability in POLICIES {
        let dir = SimDir::new();
        let queue = open(&dir, durability);
        let producer = queue.producer("t").unwrap();
        let consumer = queue.consumer("t", "g").unwrap();
        for i in 0..3 {
            producer.send(Message::new(payload(i, 50))).unwrap();
        }
        queue.flush().unwrap();
        let first = consumer.try_recv().unwrap().unwrap();
        consumer.ack(&first).unwrap(); // creates the journal
        let second = consumer.try_recv().unwrap().unwrap();
        dir.set_capacity(Some(dir.used_bytes() + 5)); // less than one 17-byte record
        let err = consumer.ack(&second).unwrap_err();
        assert!(
            matches!(
                err,
                Error::DiskFull {
                    op: "ack journal append",
                    ..
                }
            ),
            "{durability:?}: {err}"
        );
        dir.set_capacity(None);
        // Not poisoned: sends and the same ack work now.
        producer.send(Message::new(payload(3, 50))).unwrap();
        consumer.ack(&second).unwrap();
        drop((producer, consumer, queue));
        dir.kill_process();
        let queue = open(&dir, durability);
        assert!(
            queue.recovery_report().is_clean(),
            "{:?}",
            queue.recovery_report()
        );
        let consumer = queue.consumer("t", "g").unwrap();
        let left: Vec<u64> =
            std::iter::from_fn(|| consumer.try_recv().unwrap().map(|d| d.offset())).collect();
        assert_eq!(
            left,
            [2, 3],
            "{durability:?}: acked offsets 0 and 1 stay acked"
        );
    }
}

#[test]
fn a_real_256k_tmpfs_fills_up_and_every_acknowledged_message_survives() {
    for durability in POLICIES {
        let tmp = TempDir::new("tmpfs");
        if !mount_tmpfs(tmp.path(), "256k") {
            return;
        }
        let path = tmp.path().join("q");
        let result = std::panic::catch_unwind(|| {
            let queue = Queue::builder()
                .durability(durability)
                .segment_size(4096)
                .build(&path)
                .unwrap();
            let producer = queue.producer("t").unwrap();
            let mut sent = BTreeMap::new();
            let mut full = 0;
            for i in 0..400u64 {
                let p = payload(i, 1000);
                match producer.send(Message::new(p.clone())) {
                    Ok(off) => {
                        sent.insert(off, p);
                    }
                    Err(Error::DiskFull { message, .. }) => {
                        assert!(message.is_some());
                        full += 1;
                    }
                    Err(e) => panic!("{durability:?}: {e}"),
                }
            }
            assert!(full > 0, "{durability:?}: 400 KB do not fit in 256 KiB");
            drop((producer, queue));
            let queue = Queue::builder().build(&path).unwrap();
            assert_readable(&queue, &sent, &format!("tmpfs {durability:?}"));
            drop(queue);
            // More space: sends work again.
            let remount = std::process::Command::new("mount")
                .args(["-o", "remount,size=2m"])
                .arg(tmp.path())
                .status()
                .unwrap();
            assert!(remount.success());
            let queue = Queue::builder().build(&path).unwrap();
            let producer = queue.producer("t").unwrap();
            for i in 0..50u64 {
                let p = payload(1000 + i, 1000);
                sent.insert(producer.send(Message::new(p.clone())).unwrap(), p);
            }
            drop((producer, queue));
            let queue = Queue::builder().build(&path).unwrap();
            assert_readable(
                &queue,
                &sent,
                &format!("tmpfs {durability:?} after remount"),
            );
        });
        let _ = std::process::Command::new("umount")
            .arg(tmp.path())
            .status();
        if let Err(p) = result {
            std::panic::resume_unwind(p);
        }
    }
}
