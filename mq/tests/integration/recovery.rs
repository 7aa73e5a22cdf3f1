//! Recovery of real files: torn tails, flipped bytes, versions, locks, poisoning.

use std::fs::OpenOptions;
use std::io::{Seek, SeekFrom, Write};

use tierkit_mq::{Durability, Error, Message, Queue, SimDir};

use crate::{TempDir, payload};

fn fill(dir: &std::path::Path, n: u64) -> Queue {
    let q = Queue::builder()
        .durability(Durability::Never)
        .segment_size(4096)
        .build(dir)
        .unwrap();
    let p = q.producer("t").unwrap();
    for i in 0..n {
        assert_eq!(p.send(Message::new(payload(i, 300))).unwrap(), i);
    }
    q
}

fn segments(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    v.sort();
    v
}

#[test]
fn truncated_tail_keeps_the_good_prefix_and_reports_it() {
    let tmp = TempDir::new("trunc");
    drop(fill(tmp.path(), 30));
    let last = segments(tmp.path()).pop().unwrap();
    let len = std::fs::metadata(&last).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(&last)
        .unwrap()
        .set_len(len - 100)
        .unwrap();
    let q = Queue::builder().build(tmp.path()).unwrap();
    let report: Vec<_> = q.recovery_report().tail_damage().collect();
    assert_eq!(report.len(), 1);
    assert_eq!(report[0].1.offset, 29);
    // A record is 16 bytes of header, 23 of fixed body fields and the payload.
    assert_eq!(report[0].1.bytes, 16 + 23 + 300 - 100);
    assert_eq!(q.stats("t").unwrap().log_end, 29);
    let c = q.consumer("t", "g").unwrap();
    for i in 0..29u64 {
        assert_eq!(
            c.try_recv().unwrap().unwrap().payload()[..8],
            i.to_le_bytes()
        );
    }
    // The queue keeps working after the cut.
    assert_eq!(
        q.producer("t").unwrap().send(Message::new("x")).unwrap(),
        29
    );
}

#[test]
fn flipped_byte_in_last_segment_tail_is_cut_and_reported() {
    let tmp = TempDir::new("flip");
    drop(fill(tmp.path(), 30));
    let last = segments(tmp.path()).pop().unwrap();
    let len = std::fs::metadata(&last).unwrap().len();
    let mut f = OpenOptions::new().write(true).open(&last).unwrap();
    f.seek(SeekFrom::Start(len - 50)).unwrap();
    f.write_all(&[0xFF]).unwrap();
    drop(f);
    let q = Queue::builder().build(tmp.path()).unwrap();
    assert_eq!(
        q.recovery_report().tail_damage().next().unwrap().1.offset,
        29
    );
    assert_eq!(q.stats("t").unwrap().log_end, 29);
}

#[test]
fn damage_before_the_tail_is_corruption_not_skipped() {
    let tmp = TempDir::new("mid");
    drop(fill(tmp.path(), 30));
    let first = segments(tmp.path()).remove(0);
    let mut f = OpenOptions::new().write(true).open(&first).unwrap();
    f.seek(SeekFrom::Start(100)).unwrap();
    f.write_all(&[0xAA, 0xBB]).unwrap();
    drop(f);
    let err = Queue::builder().build(tmp.path()).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Corrupt {
                position: 16,
                offset: 0,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn incompatible_version_is_a_typed_error() {
    let tmp = TempDir::new("ver");
    drop(fill(tmp.path(), 2));
    let seg = segments(tmp.path()).remove(0);
    let mut f = OpenOptions::new().write(true).open(&seg).unwrap();
    f.seek(SeekFrom::Start(4)).unwrap();
    f.write_all(&9u32.to_le_bytes()).unwrap();
    drop(f);
    let err = Queue::builder().build(tmp.path()).unwrap_err();
    assert!(
        matches!(
            err,
            Error::IncompatibleVersion {
                found: 9,
                supported: 2,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn second_open_is_refused_until_the_first_closes() {
    let tmp = TempDir::new("lock");
    let q = Queue::builder().build(tmp.path()).unwrap();
    assert!(matches!(
        Queue::builder().build(tmp.path()),
        Err(Error::AlreadyOpen)
    ));
    drop(q);
    Queue::builder().build(tmp.path()).unwrap();
}

#[test]
fn failed_fsync_poisons_the_handle() {
    let dir = SimDir::new();
    let q = Queue::builder().build_with(dir.handle()).unwrap();
    let p = q.producer("t").unwrap();
    p.send(Message::new("a")).unwrap();
    dir.set_fail_sync(true);
    assert!(matches!(p.send(Message::new("b")), Err(Error::Io { .. })));
    dir.set_fail_sync(false);
    // Never retried: the handle stays poisoned even though fsync would now succeed.
    assert!(matches!(
        p.send(Message::new("c")),
        Err(Error::Poisoned { .. })
    ));
    drop((p, q));
    dir.crash(1);
    let q = Queue::builder().build_with(dir.handle()).unwrap();
    assert!(q.stats("t").unwrap().log_end >= 1);
}

#[test]
fn segments_roll_and_all_records_are_read_back_after_reopen() {
    let tmp = TempDir::new("roll");
    drop(fill(tmp.path(), 100));
    assert!(segments(tmp.path()).len() > 5);
    let q = Queue::builder().build(tmp.path()).unwrap();
    assert!(q.recovery_report().is_clean());
    let c = q.consumer("t", "g").unwrap();
    for i in 0..100u64 {
        let d = c.try_recv().unwrap().unwrap();
        assert_eq!((d.offset(), &d.payload()[..8]), (i, &i.to_le_bytes()[..]));
    }
    assert!(c.try_recv().unwrap().is_none());
}

#[test]
fn flipped_byte_mid_last_segment_keeps_the_prefix_and_flags_intact_records_after() {
    let tmp = TempDir::new("midlast");
    let q = Queue::builder()
        .durability(Durability::Never)
        .build(tmp.path())
        .unwrap();
    let p = q.producer("t").unwrap();
    for i in 0..30 {
        p.send(Message::new(payload(i, 300))).unwrap();
    }
    drop((p, q));
    let seg = segments(tmp.path()).pop().unwrap();
    // Inside the payload of the record at offset 5: 16 B segment header + 5 records of 339 B.
    let pos = 16 + 5 * 339 + 100;
    let mut f = OpenOptions::new().write(true).open(&seg).unwrap();
    f.seek(SeekFrom::Start(pos)).unwrap();
    f.write_all(&[0x5A]).unwrap();
    drop(f);
    // By default the damage is an error and nothing is cut: the records after it survive.
    let len = std::fs::metadata(&seg).unwrap().len();
    match Queue::builder().build(tmp.path()) {
        Err(tierkit_mq::Error::Corrupt { offset, .. }) => assert_eq!(offset, 5),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert_eq!(
        std::fs::metadata(&seg).unwrap().len(),
        len,
        "nothing was cut"
    );
    // An operator who accepts the loss opens with repair: the good prefix stays, reported.
    let q = Queue::builder()
        .repair_damaged_tail(true)
        .build(tmp.path())
        .unwrap();
    let d = *q.recovery_report().tail_damage().next().unwrap().1;
    assert_eq!(
        (d.offset, d.reason, d.intact_records_after),
        (5, "checksum mismatch", true)
    );
    assert_eq!(q.stats("t").unwrap().log_end, 5);
}

#[test]
fn ack_journal_survives_restarts_compacts_and_cuts_a_torn_tail() {
    let tmp = TempDir::new("journal");
    let n = 5_000u64; // more than one journal compaction (every 4,096 records)
    {
        let q = Queue::builder()
            .durability(Durability::Never)
            .build(tmp.path())
            .unwrap();
        let p = q.producer("t").unwrap();
        for i in 0..n + 10 {
            p.send(Message::new(payload(i, 16))).unwrap();
        }
        let c = q.consumer("t", "g").unwrap();
        for _ in 0..n {
            let d = c.try_recv().unwrap().unwrap();
            c.ack(&d).unwrap();
        }
    }
    let journal = tmp.path().join("t.g.ack");
    let len = std::fs::metadata(&journal).unwrap().len();
    assert!(len < 4_096 * 17, "journal not compacted: {len} bytes");
    // A crash mid-append leaves a partial record: reopening cuts it and keeps the rest.
    OpenOptions::new()
        .append(true)
        .open(&journal)
        .unwrap()
        .write_all(&[1, 2, 3, 4, 5])
        .unwrap();
    let q = Queue::builder().build(tmp.path()).unwrap();
    let c = q.consumer("t", "g").unwrap();
    let rest: Vec<u64> = std::iter::from_fn(|| c.try_recv().unwrap().map(|d| d.offset())).collect();
    assert_eq!(rest, (n..n + 10).collect::<Vec<_>>());
    // A 20-byte header, then whole 17-byte records; the cut is reported.
    assert_eq!((std::fs::metadata(&journal).unwrap().len() - 20) % 17, 0);
    assert!(q.recovery_report().repairs().iter().any(|r| matches!(
        r,
        tierkit_mq::Repair::JournalDamage {
            damaged_records: 0,
            torn_bytes: 5,
            ..
        }
    )));
}

/// Sizes of the segment files of topic `t` in `dir`, oldest first.
fn segment_sizes(dir: &SimDir) -> Vec<u64> {
    // Names carry the zero-padded base offset, so name order is log order.
    let mut names: Vec<String> = dir
        .file_names()
        .into_iter()
        .filter(|n| n.starts_with("t.") && n.ends_with(".seg"))
        .collect();
    names.sort();
    names.iter().map(|n| dir.file_len(n).unwrap()).collect()
}

#[test]
fn segments_hold_what_fits_and_an_oversized_record_alone() {
    const SEG: u64 = 4096;
    let dir = SimDir::new();
    let appends = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counted = std::sync::Arc::clone(&appends);
    let handle = crate::HookDir::around(dir.handle(), move |op, name| {
        // Segment files are created as `.seg.tmp` (the header's append) and renamed.
        if op == "append" && name.contains(".seg") {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        Ok(())
    });
    let queue = Queue::builder()
        .durability(Durability::Never)
        .segment_size(SEG)
        .max_record_size(3 * SEG as usize)
        .build_with(handle)
        .unwrap();
    let producer = queue.producer("t").unwrap();
    // Payload lengths, one `Vec` per `send_batch`. A record is 39 bytes more than its payload,
    // a segment starts with a 16-byte header: 981 bytes make records of 1,020, four of which
    // fill a segment to the byte; 5,000 bytes is a record larger than a segment.
    let batches: Vec<Vec<usize>> = vec![
        vec![981; 4],
        vec![981],
        vec![1000; 10],
        vec![5000],
        vec![100, 5000, 100],
        vec![5000, 5000],
        vec![3000, 981, 100, 4000],
        vec![981; 3],
        vec![981],
        vec![61; 40],
    ];
    // The model: a record goes into the last segment unless that segment has records and
    // would pass `SEG`; a batch is one write per segment it touches (plus one for the
    // header of each new segment).
    let mut model: Vec<u64> = vec![16];
    let mut records_in_last = 0;
    let mut offset = 0u64;
    for batch in &batches {
        let mut touched = 0u64;
        let mut last_touched = None;
        let msgs: Vec<Message> = batch
            .iter()
            .map(|&len| {
                let size = len as u64 + 39;
                if records_in_last > 0 && model.last().unwrap() + size > SEG {
                    model.push(16);
                    records_in_last = 0;
                }
                *model.last_mut().unwrap() += size;
                records_in_last += 1;
                if last_touched != Some(model.len()) {
                    touched += 1;
                    last_touched = Some(model.len());
                }
                offset += 1;
                Message::new(payload(offset - 1, len))
            })
            .collect();
        let before = appends.load(std::sync::atomic::Ordering::SeqCst);
        let segments_before = segment_sizes(&dir).len() as u64;
        let first = producer.send_batch(&msgs).unwrap();
        assert_eq!(first, offset - batch.len() as u64);
        assert_eq!(
            appends.load(std::sync::atomic::Ordering::SeqCst) - before,
            touched + model.len() as u64 - segments_before,
            "batch {batch:?}: one write per segment"
        );
        assert_eq!(segment_sizes(&dir), model, "after batch {batch:?}");
    }
    // The model is what the spec says: every segment fits, or holds one record alone.
    let sizes = segment_sizes(&dir);
    assert!(
        sizes.contains(&SEG),
        "a segment filled to the byte: {sizes:?}"
    );
    assert_eq!(sizes.iter().filter(|&&s| s == 16 + 5039).count(), 4);
    assert!(
        sizes.iter().all(|&s| s <= SEG || s == 16 + 5039),
        "{sizes:?}"
    );
    drop((producer, queue));
    let queue = Queue::builder().build_with(dir.handle()).unwrap();
    assert!(queue.recovery_report().is_clean());
    let c = queue.consumer("t", "g").unwrap();
    let lens: Vec<usize> = batches.concat();
    for (i, len) in lens.iter().enumerate() {
        let d = c.try_recv().unwrap().unwrap();
        assert_eq!(d.offset(), i as u64);
        assert_eq!(d.payload()[..], payload(i as u64, *len)[..]);
    }
    assert!(c.try_recv().unwrap().is_none());
}

#[test]
fn a_record_damaged_after_open_fails_its_read_with_corrupt() {
    // Damage while the queue is open (recovery already ran): the length field of record 1
    // claims more or fewer bytes than the record has. 50-byte payloads make 89-byte records
    // (73-byte bodies) after the 16-byte segment header.
    for claimed in [73u32 + 8, 73 + 16, 73 - 8] {
        let dir = SimDir::new();
        let queue = Queue::builder()
            .durability(Durability::Never)
            .build_with(dir.handle())
            .unwrap();
        let producer = queue.producer("t").unwrap();
        for i in 0..3 {
            producer.send(Message::new(payload(i, 50))).unwrap();
        }
        dir.corrupt(
            "t.00000000000000000000.seg",
            16 + 89,
            &claimed.to_le_bytes(),
        );
        let consumer = queue.consumer("t", "g").unwrap();
        assert_eq!(consumer.try_recv().unwrap().unwrap().offset(), 0);
        match consumer.try_recv() {
            Err(Error::Corrupt { offset: 1, .. }) => {}
            other => panic!("length {claimed}: {other:?}"),
        }
    }
}

#[test]
fn a_fold_of_the_ack_journal_makes_its_acks_durable_without_a_journal_fsync() {
    // `COMPACT_EVERY` in `journal.rs`: the journal is folded into a snapshot (written and
    // fsynced) once it holds this many records.
    const EVERY: u64 = 4096;
    let queue = Queue::builder().build_in_memory().unwrap();
    let producer = queue.producer("t").unwrap();
    let consumer = queue.consumer("t", "g").unwrap();
    let msgs: Vec<Message> = (0..=EVERY).map(|i| Message::new(payload(i, 8))).collect();
    producer.send_batch(&msgs).unwrap();
    let deliveries: Vec<_> = (0..=EVERY)
        .map(|_| consumer.try_recv().unwrap().unwrap())
        .collect();
    let fsyncs = || queue.stats("t").unwrap().groups[0].journal_fsyncs;
    consumer.ack_batch(&deliveries[..1]).unwrap();
    assert_eq!(fsyncs(), 1);
    // The 4,096th record folds the journal: the snapshot is durable, so is the ack.
    consumer.ack_batch(&deliveries[1..EVERY as usize]).unwrap();
    assert_eq!(fsyncs(), 1);
    consumer.ack(&deliveries[EVERY as usize]).unwrap();
    assert_eq!(fsyncs(), 2);
    assert_eq!(queue.stats("t").unwrap().groups[0].committed, EVERY + 1);
}
