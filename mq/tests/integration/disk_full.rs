//! A full disk (simulated ENOSPC, and a real 256 KiB tmpfs when this process may mount one):
//! every send either returns an offset that survives a reopen, or `DiskFull` with the message;
//! nothing poisons the handle; sends and acks work again once space is freed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::time::Duration;

use tierkit_mq::{Durability, Error, ManualClock, Message, Queue, Repair, SimDir};

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
        // Reopen: the journal's record count now comes from replaying it.
        drop((producer, consumer, queue));
        dir.kill_process();
        let queue = open(&dir, durability);
        let producer = queue.producer("t").unwrap();
        let consumer = queue.consumer("t", "g").unwrap();
        let second = consumer.try_recv().unwrap().unwrap();
        assert_eq!(second.offset(), 1);
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

#[test]
fn a_full_disk_returns_the_message_of_a_single_send_but_none_for_a_batch() {
    for durability in POLICIES {
        let dir = SimDir::new();
        let queue = open(&dir, durability);
        let producer = queue.producer("t").unwrap();
        dir.set_capacity(Some(dir.used_bytes() + 100));
        // A batch's error cannot name one message: the caller keeps the batch.
        let batch = [Message::new(payload(0, 300)), Message::new(payload(1, 300))];
        match producer.send_batch(&batch) {
            Err(Error::DiskFull {
                op: "append",
                message: None,
            }) => {}
            other => panic!("{durability:?}: {other:?}"),
        }
        match producer.send(Message::new(payload(2, 300))) {
            Err(Error::DiskFull {
                op: "append",
                message: Some(m),
            }) => assert_eq!(m.payload()[..], payload(2, 300)[..]),
            other => panic!("{durability:?}: {other:?}"),
        }
    }
}

#[test]
fn a_failed_cut_of_a_journal_write_poisons_and_says_whether_the_disk_was_full() {
    for (kind, op) in [
        (
            std::io::ErrorKind::StorageFull,
            "cutting a partial ack journal write (disk full)",
        ),
        (
            std::io::ErrorKind::Other,
            "cutting a partial ack journal write",
        ),
    ] {
        let armed = Arc::new(AtomicBool::new(false));
        let hook_armed = Arc::clone(&armed);
        let handle = crate::HookDir::around(SimDir::new().handle(), move |what, name| match what {
            "append" | "truncate" if name.contains(".ack") && hook_armed.load(SeqCst) => {
                Err(std::io::Error::from(if what == "append" {
                    std::io::ErrorKind::StorageFull
                } else {
                    kind
                }))
            }
            _ => Ok(()),
        });
        let queue = Queue::builder().build_with(handle).unwrap();
        let producer = queue.producer("t").unwrap();
        let consumer = queue.consumer("t", "g").unwrap();
        producer.send(Message::new("a")).unwrap();
        producer.send(Message::new("b")).unwrap();
        consumer
            .ack(&consumer.try_recv().unwrap().unwrap())
            .unwrap();
        armed.store(true, SeqCst);
        let second = consumer.try_recv().unwrap().unwrap();
        match consumer.ack(&second) {
            Err(Error::Poisoned { op: got }) => assert_eq!(got, op),
            other => panic!("{kind:?}: {other:?}"),
        }
        // The journal's state is unknown: the handle stays poisoned.
        armed.store(false, SeqCst);
        assert!(matches!(
            producer.send(Message::new("c")),
            Err(Error::Poisoned { op: got }) if got == op
        ));
    }
}

#[test]
fn a_failed_fold_of_the_journal_is_retried_after_as_many_records_again() {
    // `COMPACT_EVERY` in `journal.rs`: records between folds of the journal into a snapshot.
    const EVERY: u64 = 4096;
    let dir = SimDir::new();
    let full = Arc::new(AtomicBool::new(false));
    let snapshot_writes = Arc::new(AtomicU64::new(0));
    let (hook_full, hook_writes) = (Arc::clone(&full), Arc::clone(&snapshot_writes));
    let handle = crate::HookDir::around(dir.handle(), move |what, name| {
        if what == "create" && name.ends_with(".grp.tmp") {
            hook_writes.fetch_add(1, SeqCst);
            if hook_full.load(SeqCst) {
                return Err(std::io::Error::from(std::io::ErrorKind::StorageFull));
            }
        }
        Ok(())
    });
    let clock = ManualClock::starting_at_unix_millis(1_000_000);
    let queue = Queue::builder()
        .durability(Durability::Never)
        .clock(clock)
        .build_with(handle)
        .unwrap();
    let producer = queue.producer("t").unwrap();
    let consumer = queue.consumer("t", "g").unwrap();
    let msgs: Vec<Message> = (0..2 * EVERY)
        .map(|i| Message::new(payload(i, 8)))
        .collect();
    producer.send_batch(&msgs).unwrap();
    let deliveries: Vec<_> = (0..2 * EVERY)
        .map(|_| consumer.try_recv().unwrap().unwrap())
        .collect();
    let journal_records = || (dir.file_len("t.g.ack").unwrap() - 20) / 17;
    // The fold at `EVERY` records fails; the acks themselves succeed.
    full.store(true, SeqCst);
    consumer.ack_batch(&deliveries[..EVERY as usize]).unwrap();
    assert_eq!(snapshot_writes.load(SeqCst), 1, "the fold was tried");
    assert_eq!(journal_records(), EVERY);
    assert!(!dir.file_names().contains(&"t.g.grp".to_owned()));
    // Space again: the next fold waits for another `EVERY` records, not the next ack.
    full.store(false, SeqCst);
    consumer
        .ack_batch(&deliveries[EVERY as usize..EVERY as usize + 1])
        .unwrap();
    assert_eq!(snapshot_writes.load(SeqCst), 1, "no fold before its time");
    assert_eq!(journal_records(), EVERY + 1);
    consumer
        .ack_batch(&deliveries[EVERY as usize + 1..2 * EVERY as usize - 1])
        .unwrap();
    assert_eq!(journal_records(), 2 * EVERY - 1);
    consumer
        .ack_batch(&deliveries[2 * EVERY as usize - 1..])
        .unwrap();
    assert_eq!(snapshot_writes.load(SeqCst), 2, "the fold ran at 2 x EVERY");
    assert_eq!(journal_records(), 0);
    assert!(dir.file_names().contains(&"t.g.grp".to_owned()));
    drop((producer, consumer, queue));
    let queue = Queue::builder().build_with(dir.handle()).unwrap();
    assert!(queue.recovery_report().is_clean());
    assert_eq!(queue.stats("t").unwrap().groups[0].committed, 2 * EVERY);
}
