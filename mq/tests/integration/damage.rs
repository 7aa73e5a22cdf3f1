//! Damage found at open: every kind lands in the typed recovery report (or fails the open),
//! never silently; and settings changed on reopen never turn stored records into damage.

use std::collections::BTreeSet;

use tierkit_mq::{Durability, Error, Message, Queue, Repair, SimDir, StorageDir};

use crate::payload;

fn open(dir: &SimDir) -> Queue {
    Queue::builder()
        .durability(Durability::Always)
        .segment_size(4096)
        .build_with(dir.handle())
        .unwrap()
}

/// 40 messages over several segments; the even ones acknowledged by group "g".
fn fill(dir: &SimDir) {
    let queue = open(dir);
    let producer = queue.producer("t").unwrap();
    for i in 0..40 {
        producer.send(Message::new(payload(i, 300))).unwrap();
    }
    let consumer = queue.consumer("t", "g").unwrap();
    for _ in 0..40 {
        let d = consumer.try_recv().unwrap().unwrap();
        if d.offset().is_multiple_of(2) {
            consumer.ack(&d).unwrap();
        }
    }
}

fn remaining(queue: &Queue) -> BTreeSet<u64> {
    let c = queue.consumer("t", "g").unwrap();
    std::iter::from_fn(|| c.try_recv().unwrap().map(|d| d.offset())).collect()
}

fn odd() -> BTreeSet<u64> {
    (0..40u64).filter(|o| !o.is_multiple_of(2)).collect()
}

#[test]
fn a_flipped_byte_in_the_ack_journal_is_reported_and_costs_at_most_its_own_record() {
    // Every byte of a record in the middle of the journal (20-byte header, 17-byte records).
    for byte in 0..17 {
        let dir = SimDir::new();
        fill(&dir);
        let pos = 20 + 5 * 17 + byte;
        dir.corrupt("t.g.ack", pos, &[0xA5 ^ byte as u8]);
        let queue = open(&dir);
        let report = queue.recovery_report();
        assert!(
            report.repairs().contains(&Repair::JournalDamage {
                topic: "t".into(),
                group: "g".into(),
                damaged_records: 1,
                torn_bytes: 0,
            }),
            "byte {byte}: {report:?}"
        );
        // Only the ack in the damaged record (offset 10) may come back.
        let mut expected = odd();
        expected.insert(10);
        assert_eq!(remaining(&queue), expected, "byte {byte}");
        // Folded into a fresh snapshot: the next open is clean.
        drop(queue);
        dir.kill_process();
        assert!(open(&dir).recovery_report().is_clean());
    }
}

#[test]
fn a_damaged_journal_header_fails_the_open() {
    let dir = SimDir::new();
    fill(&dir);
    dir.corrupt("t.g.ack", 9, &[0xFF]);
    let err = Queue::builder().build_with(dir.handle()).unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");
}

#[test]
fn missing_group_files_are_reported() {
    // Enough acks for a fold: a snapshot (.grp) and a journal (.ack) both exist.
    let fill_folded = |dir: &SimDir| {
        let queue = open(dir);
        let producer = queue.producer("t").unwrap();
        let batch: Vec<Message> = (0..64).map(|i| Message::new(payload(i, 8))).collect();
        for _ in 0..80 {
            producer.send_batch(&batch).unwrap();
        }
        let consumer = queue.consumer("t", "g").unwrap();
        for _ in 0..4_200 {
            let d = consumer.try_recv().unwrap().unwrap();
            consumer.ack(&d).unwrap();
        }
    };
    let dir = SimDir::new();
    fill_folded(&dir);
    dir.delete("t.g.ack");
    let queue = open(&dir);
    assert!(
        queue
            .recovery_report()
            .repairs()
            .contains(&Repair::JournalMissing {
                topic: "t".into(),
                group: "g".into()
            }),
        "{:?}",
        queue.recovery_report()
    );
    drop(queue);

    let dir = SimDir::new();
    fill_folded(&dir);
    dir.delete("t.g.grp");
    let queue = open(&dir);
    assert!(
        queue
            .recovery_report()
            .repairs()
            .contains(&Repair::StateMissing {
                topic: "t".into(),
                group: "g".into()
            }),
        "{:?}",
        queue.recovery_report()
    );
}

#[test]
fn a_deleted_first_segment_is_reported_with_the_unacknowledged_count() {
    let dir = SimDir::new();
    fill(&dir);
    let first = "t.00000000000000000000.seg";
    assert!(dir.file_names().iter().any(|n| n == first));
    dir.delete(first);
    let queue = open(&dir);
    let start = queue.stats("t").unwrap().log_start;
    assert!(start > 2);
    let missing = queue
        .recovery_report()
        .repairs()
        .iter()
        .find_map(|r| match r {
            Repair::MessagesMissing {
                from,
                to,
                unacknowledged,
                ..
            } => Some((*from, *to, *unacknowledged)),
            _ => None,
        })
        .expect("the missing messages are reported");
    // Offset 0 was acknowledged (committed = 1); the odd offsets below `start` were not.
    assert_eq!(
        missing,
        (
            1,
            start,
            (1..start).filter(|o| !o.is_multiple_of(2)).count() as u64
        )
    );
}

#[test]
fn retention_is_not_mistaken_for_a_deleted_segment() {
    let dir = SimDir::new();
    let queue = Queue::builder()
        .segment_size(4096)
        .retention_bytes(8192)
        .build_with(dir.handle())
        .unwrap();
    let _slow = queue.consumer("t", "slow").unwrap();
    let fast = queue.consumer("t", "fast").unwrap();
    let producer = queue.producer("t").unwrap();
    for i in 0..100 {
        producer.send(Message::new(payload(i, 300))).unwrap();
        let d = fast.try_recv().unwrap().unwrap();
        fast.ack(&d).unwrap();
    }
    let start = queue.stats("t").unwrap().log_start;
    assert!(start > 0);
    drop((_slow, fast, producer, queue));
    dir.kill_process();
    let queue = open(&dir);
    assert!(
        queue.recovery_report().is_clean(),
        "{:?}",
        queue.recovery_report()
    );
    assert_eq!(
        queue
            .consumer("t", "slow")
            .unwrap()
            .try_recv()
            .unwrap()
            .unwrap()
            .offset(),
        start
    );
}

#[test]
fn an_empty_or_headerless_last_segment_is_removed_and_reported() {
    for len in [0usize, 7] {
        let dir = SimDir::new();
        fill(&dir);
        let last = dir
            .file_names()
            .into_iter()
            .filter(|n| n.ends_with(".seg"))
            .max()
            .unwrap();
        let end = {
            let q = open(&dir);
            q.stats("t").unwrap().log_end
        };
        dir.kill_process();
        // A segment file with an incomplete header after the last one.
        let next = format!("t.{end:020}.seg");
        let f = dir.open(&next, true).unwrap();
        f.append(&b"TKMQ\x02\x00\x00"[..len]).unwrap();
        f.sync().unwrap();
        dir.sync_dir().unwrap();
        let queue = open(&dir);
        assert!(
            queue
                .recovery_report()
                .repairs()
                .contains(&Repair::HeaderlessSegment {
                    topic: "t".into(),
                    file: next.clone(),
                    bytes: len as u64
                }),
            "{len}: {:?}",
            queue.recovery_report()
        );
        assert!(!dir.file_names().contains(&next), "{len}: removed at open");
        assert_eq!(remaining(&queue), odd());
        assert_eq!(
            queue
                .producer("t")
                .unwrap()
                .send(Message::new("x"))
                .unwrap(),
            end
        );
        let _ = last;
    }
}

#[test]
fn a_lower_max_record_size_on_reopen_keeps_every_stored_record() {
    let dir = SimDir::new();
    {
        let queue = open(&dir);
        let producer = queue.producer("t").unwrap();
        for i in 0..10 {
            producer.send(Message::new(payload(i, 2000))).unwrap();
        }
    }
    dir.kill_process();
    let queue = Queue::builder()
        .max_record_size(1024)
        .build_with(dir.handle())
        .unwrap();
    assert!(queue.recovery_report().is_clean());
    let c = queue.consumer("t", "g").unwrap();
    for i in 0..10u64 {
        let d = c.try_recv().unwrap().unwrap();
        assert_eq!((d.offset(), &d.payload()[..8]), (i, &i.to_le_bytes()[..]));
    }
    // New sends obey the new limit, and the error names it.
    let err = queue
        .producer("t")
        .unwrap()
        .send(Message::new(payload(10, 2000)))
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Oversize {
                what: "record",
                max: 1024,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn oversize_names_the_limit_that_was_exceeded() {
    let queue = Queue::builder().build_in_memory().unwrap();
    let producer = queue.producer("t").unwrap();
    let long_name = "h".repeat(70_000);
    let err = producer
        .send(Message::new("x").with_header(long_name, "v"))
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Oversize {
                what: "header name",
                size: 70_000,
                max: 65_535,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("65535"), "{err}");
}

#[test]
fn a_failed_fsync_poisons_and_the_error_says_what_failed() {
    let dir = SimDir::new();
    let queue = open(&dir);
    let producer = queue.producer("t").unwrap();
    producer.send(Message::new("a")).unwrap();
    dir.set_fail_sync(true);
    assert!(producer.send(Message::new("b")).is_err());
    dir.set_fail_sync(false);
    let err = producer.send(Message::new("c")).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Poisoned {
                op: "an fsync of the log"
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("fsync of the log"), "{err}");
}

#[test]
fn a_read_only_open_inspects_without_writing() {
    let dir = SimDir::new();
    fill(&dir);
    dir.kill_process();
    // A torn tail: reported, not cut.
    let last = dir
        .file_names()
        .into_iter()
        .filter(|n| n.ends_with(".seg"))
        .max()
        .unwrap();
    let len = dir.file_len(&last).unwrap();
    dir.cut(&last, len as usize - 10);
    dir.set_read_only(true);
    let queue = Queue::builder()
        .read_only(true)
        .build_with(dir.handle())
        .unwrap();
    assert_eq!(queue.recovery_report().tail_damage().count(), 1);
    assert_eq!(dir.file_len(&last), Some(len - 10), "nothing was cut");
    let c = queue.consumer("t", "g").unwrap();
    let d = c.try_recv().unwrap().unwrap();
    assert_eq!(d.offset(), 1);
    assert!(matches!(c.ack(&d), Err(Error::ReadOnly { .. })));
    assert!(matches!(queue.producer("t"), Err(Error::ReadOnly { .. })));
    assert!(matches!(queue.flush(), Err(Error::ReadOnly { .. })));
    drop((c, queue));
    dir.set_read_only(false);
    // A writer then repairs it.
    let queue = open(&dir);
    assert_eq!(queue.recovery_report().tail_damage().count(), 1);
    assert_eq!(queue.stats("t").unwrap().log_end, 39);
}

#[test]
fn a_read_only_open_works_on_a_read_only_mount() {
    let tmp = crate::TempDir::new("romount");
    if !crate::mount_tmpfs(tmp.path(), "1m") {
        return;
    }
    let path = tmp.path().join("q");
    let result = std::panic::catch_unwind(|| {
        {
            let queue = Queue::builder().build(&path).unwrap();
            let producer = queue.producer("t").unwrap();
            for i in 0..5 {
                producer.send(Message::new(payload(i, 100))).unwrap();
            }
        }
        let ro = std::process::Command::new("mount")
            .args(["-o", "remount,ro"])
            .arg(tmp.path())
            .status()
            .unwrap();
        assert!(ro.success());
        let queue = Queue::builder().read_only(true).build(&path).unwrap();
        assert!(queue.recovery_report().is_clean());
        assert_eq!(queue.stats("t").unwrap().log_end, 5);
        let c = queue.consumer("t", "g").unwrap();
        assert_eq!(c.try_recv().unwrap().unwrap().offset(), 0);
        assert!(matches!(queue.producer("t"), Err(Error::ReadOnly { .. })));
        drop((c, queue));
        // A writer cannot open it, and says why.
        assert!(Queue::builder().build(&path).is_err());
    });
    let _ = std::process::Command::new("umount")
        .arg(tmp.path())
        .status();
    if let Err(p) = result {
        std::panic::resume_unwind(p);
    }
}

#[test]
fn a_group_ahead_of_a_log_shortened_by_a_power_loss_is_reported() {
    let hour = std::time::Duration::from_secs(3600);
    let mut checked = 0;
    for seed in 0..20 {
        let dir = SimDir::new();
        let queue = Queue::builder()
            .durability(Durability::Interval(hour))
            .build_with(dir.handle())
            .unwrap();
        let producer = queue.producer("t").unwrap();
        for i in 0..5 {
            producer.send(Message::new(payload(i, 50))).unwrap();
        }
        queue.flush().unwrap(); // offsets 0..5 are durable
        for i in 5..10 {
            producer.send(Message::new(payload(i, 50))).unwrap();
        }
        // The group acknowledges offset 5 only (its journal is fsynced; the log is not).
        let consumer = queue.consumer("t", "g").unwrap();
        let five = std::iter::from_fn(|| consumer.try_recv().unwrap())
            .find(|d| d.offset() == 5)
            .unwrap();
        consumer.ack(&five).unwrap();
        dir.crash(seed);
        drop((producer, consumer, queue));
        let queue = open(&dir);
        if queue.stats("t").unwrap().log_end != 5 {
            continue; // this seed kept some unsynced bytes
        }
        checked += 1;
        assert!(
            queue
                .recovery_report()
                .repairs()
                .contains(&Repair::GroupAheadOfLog {
                    topic: "t".into(),
                    group: "g".into(),
                    committed: 0,
                    log_end: 5,
                }),
            "seed {seed}: {:?}",
            queue.recovery_report()
        );
        // The acknowledgement of the lost offset 5 does not leak onto the next record there.
        let p = queue.producer("t").unwrap();
        assert_eq!(p.send(Message::new(payload(5, 50))).unwrap(), 5);
        let c = queue.consumer("t", "g").unwrap();
        let offsets: Vec<u64> =
            std::iter::from_fn(|| c.try_recv().unwrap().map(|d| d.offset())).collect();
        assert_eq!(offsets, [0, 1, 2, 3, 4, 5]);
    }
    assert!(checked > 0, "some seed lost the unsynced tail");
}

#[test]
fn a_topic_with_an_empty_segment_reopens_clean() {
    let dir = SimDir::new();
    drop(open(&dir).producer("t").unwrap());
    dir.kill_process();
    let queue = open(&dir);
    assert!(
        queue.recovery_report().is_clean(),
        "{:?}",
        queue.recovery_report()
    );
    assert_eq!(queue.stats("t").unwrap().log_end, 0);
}

#[test]
fn a_record_carrying_the_wrong_offset_is_not_accepted() {
    let dir = SimDir::new();
    {
        let queue = open(&dir);
        let producer = queue.producer("t").unwrap();
        for i in 0..3 {
            producer.send(Message::new(payload(i, 40))).unwrap();
        }
    }
    dir.kill_process();
    // Append a second copy of the last record: intact, but it carries offset 2 where 3 belongs
    // (what a second writer would leave).
    let seg = "t.00000000000000000000.seg";
    let len = dir.file_len(seg).unwrap();
    let rec = 16 + 23 + 40;
    let f = dir.open(seg, false).unwrap();
    let mut last = vec![0u8; rec];
    f.read_exact_at(&mut last, len - rec as u64).unwrap();
    f.append(&last).unwrap();
    f.sync().unwrap();
    let queue = open(&dir);
    assert_eq!(queue.stats("t").unwrap().log_end, 3);
    let (_, damage) = queue
        .recovery_report()
        .tail_damage()
        .next()
        .expect("reported");
    assert_eq!(
        (damage.offset, damage.reason),
        (3, "record carries an unexpected offset")
    );
}

#[test]
fn a_group_file_that_exists_but_cannot_be_opened_fails_the_open() {
    let dir = SimDir::new();
    fill(&dir);
    for (file, op) in [
        ("t.g.grp", "open group state"),
        ("t.g.ack", "open ack journal"),
    ] {
        // Only "not found" means missing; any other error (here: permission denied) must
        // not pass for a missing file, which would be reported and replaced.
        let handle = crate::HookDir::around(dir.handle(), move |what, name| {
            if what == "open" && name == file {
                Err(std::io::Error::from(std::io::ErrorKind::PermissionDenied))
            } else {
                Ok(())
            }
        });
        match Queue::builder().build_with(handle) {
            Err(Error::Io { op: got, source }) => {
                assert_eq!(got, op);
                assert_eq!(source.kind(), std::io::ErrorKind::PermissionDenied);
            }
            other => panic!("{file}: {other:?}"),
        }
    }
    // Nothing was touched: the queue opens clean.
    let queue = open(&dir);
    assert!(queue.recovery_report().is_clean());
    assert_eq!(remaining(&queue), odd());
}

#[test]
fn opening_an_undamaged_queue_writes_nothing() {
    // Recovery repairs only what it finds damaged: a clean open changes no file (it works
    // on a full disk too), so it succeeds with the power cut before the first write.
    let dir = SimDir::new();
    fill(&dir);
    dir.power_cut_after(0);
    let queue = open(&dir);
    assert!(queue.recovery_report().is_clean());
    let s = queue.stats("t").unwrap();
    assert_eq!((s.log_end, s.groups[0].committed), (40, 1));
}

#[test]
fn a_journal_with_more_damaged_records_than_intact_ones_is_reported_with_the_count() {
    let dir = SimDir::new();
    fill(&dir);
    // 20 records, the acks of 0, 2, ..., 38: damage the first 19 (a byte of each offset).
    assert_eq!(dir.file_len("t.g.ack"), Some(20 + 20 * 17));
    for record in 0..19 {
        dir.corrupt("t.g.ack", 20 + record * 17 + 3, &[0xFF]);
    }
    let queue = open(&dir);
    let report = queue.recovery_report();
    assert!(
        report.repairs().contains(&Repair::JournalDamage {
            topic: "t".into(),
            group: "g".into(),
            damaged_records: 19,
            torn_bytes: 0,
        }),
        "{report:?}"
    );
    // Only the ack of 38 survives.
    let mut expected = odd();
    expected.extend((0..38).step_by(2));
    assert_eq!(remaining(&queue), expected);
    drop(queue);
    dir.kill_process();
    assert!(open(&dir).recovery_report().is_clean());
}
