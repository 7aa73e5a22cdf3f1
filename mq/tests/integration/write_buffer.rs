//! The write buffer (`QueueBuilder::write_buffer`): what a process crash may lose, what
//! consumers see, and what a failed write keeps.

use std::time::{Duration, Instant};

use tierkit_mq::{Durability, Error, Message, Queue, SimDir};

use crate::{TempDir, payload};

const HOUR: Duration = Duration::from_secs(3600);

fn buffered(dir: &SimDir, bytes: usize) -> Queue {
    Queue::builder()
        .durability(Durability::Never)
        .write_buffer(bytes, HOUR)
        .build_with(dir.handle())
        .unwrap()
}

/// Every record in the reopened log, checked against the offset its payload carries.
fn log_offsets(queue: &Queue) -> Vec<u64> {
    let consumer = queue.consumer("t", "check").unwrap();
    let mut out = Vec::new();
    while let Some(d) = consumer.try_recv().unwrap() {
        assert_eq!(d.payload()[..8], d.offset().to_le_bytes(), "payload mix-up");
        out.push(d.offset());
    }
    out
}

#[test]
fn a_process_crash_loses_at_most_the_buffered_suffix() {
    const LEN: usize = 40;
    const BUFFER: usize = 1000;
    for total in [0u64, 7, 60, 199, 200] {
        let dir = SimDir::new();
        let queue = buffered(&dir, BUFFER);
        let producer = queue.producer("t").unwrap();
        let mut flushed = 0;
        for i in 0..total {
            assert_eq!(producer.send(Message::new(payload(i, LEN))).unwrap(), i);
            if i == 100 {
                queue.flush().unwrap();
                flushed = i + 1;
            }
        }
        // kill -9: no destructor runs, the buffer is never written.
        std::mem::forget((producer, queue));
        dir.kill_process();

        let queue = buffered(&dir, BUFFER);
        let offsets = log_offsets(&queue);
        let end = offsets.len() as u64;
        assert_eq!(offsets, (0..end).collect::<Vec<_>>(), "the log is a prefix");
        assert!(end >= flushed, "flushed records survive: {end} < {flushed}");
        assert!(end <= total);
        // Each lost record held at least LEN bytes, and at most BUFFER bytes were waiting.
        assert!(
            (total - end) as usize * LEN < BUFFER,
            "{total} sent, {end} kept: more than the buffer was lost"
        );
    }
}

#[test]
fn consumers_read_records_still_in_the_buffer_and_drop_writes_them() {
    let dir = SimDir::new();
    let queue = buffered(&dir, 1 << 20);
    let producer = queue.producer("t").unwrap();
    let consumer = queue.consumer("t", "g").unwrap();
    for i in 0..3 {
        producer.send(Message::new(payload(i, 100))).unwrap();
    }
    for i in 0..3u64 {
        let d = consumer
            .try_recv()
            .unwrap()
            .expect("buffered record delivered");
        assert_eq!((d.offset(), &d.payload()[..8]), (i, &i.to_le_bytes()[..]));
    }
    assert!(consumer.try_recv().unwrap().is_none());
    // Records appended after a read keep their offsets.
    assert_eq!(producer.send(Message::new(payload(3, 100))).unwrap(), 3);
    drop((producer, consumer, queue));
    dir.kill_process();
    let queue = buffered(&dir, 1 << 20);
    assert_eq!(
        log_offsets(&queue),
        [0, 1, 2, 3],
        "a clean drop writes the buffer"
    );
}

#[test]
fn a_failed_buffered_write_keeps_earlier_sends_and_fails_only_its_own() {
    let dir = SimDir::new();
    let queue = buffered(&dir, 256);
    let producer = queue.producer("t").unwrap();
    dir.set_capacity(Some(1)); // the disk is full from now on
    let mut returned = Vec::new();
    let mut failed = None;
    for i in 0..10u64 {
        match producer.send(Message::new(payload(i, 60))) {
            Ok(off) => returned.push(off),
            Err(e) => {
                assert!(matches!(e, Error::DiskFull { .. }), "{e:?}");
                let back = e.into_message().expect("the refused message comes back");
                assert_eq!(back.payload()[..8], i.to_le_bytes());
                failed = Some(i);
                break;
            }
        }
    }
    let failed = failed.expect("the buffer filled and its write failed");
    assert_eq!(returned, (0..failed).collect::<Vec<_>>());
    assert!(
        queue.flush().is_err(),
        "still full: the records stay buffered"
    );
    dir.set_capacity(None);
    queue.flush().unwrap();
    // The refused message took no offset.
    assert_eq!(
        producer.send(Message::new(payload(failed, 60))).unwrap(),
        failed
    );
    drop((producer, queue)); // writes the buffer
    dir.kill_process();
    let queue = buffered(&dir, 256);
    assert_eq!(log_offsets(&queue), (0..=failed).collect::<Vec<_>>());
}

#[test]
fn the_background_thread_writes_the_buffer_within_its_delay() {
    let tmp = TempDir::new("wbuf");
    let queue = Queue::builder()
        .durability(Durability::Never)
        .write_buffer(1 << 20, Duration::from_millis(5))
        .build(tmp.path())
        .unwrap();
    let seg = tmp.path().join("t.00000000000000000000.seg");
    let producer = queue.producer("t").unwrap();
    let empty = std::fs::metadata(&seg).unwrap().len();
    producer.send(Message::new(payload(0, 100))).unwrap();
    // Generous bound: only a stuck thread fails this, not a slow machine.
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::fs::metadata(&seg).unwrap().len() == empty {
        assert!(Instant::now() < deadline, "the buffer was never written");
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(std::fs::metadata(&seg).unwrap().len() > empty + 100);
}

#[test]
fn invalid_write_buffer_settings_are_refused() {
    let too_short = Queue::builder()
        .write_buffer(4096, Duration::from_micros(10))
        .build_in_memory();
    assert!(matches!(too_short, Err(Error::InvalidConfig { .. })));
    let too_big = Queue::builder()
        .write_buffer(2 << 30, Duration::from_millis(1))
        .build_in_memory();
    assert!(matches!(too_big, Err(Error::InvalidConfig { .. })));
}

#[test]
fn a_partial_write_of_the_buffer_is_cut_off_before_the_next_write() {
    // 99-byte records, a 256-byte buffer: the first two wait in it. The write that fails
    // (the third send's, which fills the buffer, or a flush's) stops after 100 bytes; the
    // file must be cut back so that the next write lands where its records belong.
    for via_flush in [false, true] {
        let dir = SimDir::new();
        let queue = buffered(&dir, 256);
        let producer = queue.producer("t").unwrap();
        assert_eq!(producer.send(Message::new(payload(0, 60))).unwrap(), 0);
        assert_eq!(producer.send(Message::new(payload(1, 60))).unwrap(), 1);
        dir.set_capacity(Some(dir.used_bytes() + 100));
        let err = if via_flush {
            queue.flush().unwrap_err()
        } else {
            producer.send(Message::new(payload(2, 60))).unwrap_err()
        };
        assert!(matches!(err, Error::DiskFull { .. }), "{err:?}");
        assert_eq!(dir.file_len("t.00000000000000000000.seg"), Some(16));
        dir.set_capacity(None);
        assert_eq!(producer.send(Message::new(payload(2, 60))).unwrap(), 2);
        queue.flush().unwrap();
        assert_eq!(
            dir.file_len("t.00000000000000000000.seg"),
            Some(16 + 3 * 99)
        );
        drop((producer, queue));
        dir.kill_process();
        let queue = buffered(&dir, 256);
        assert!(queue.recovery_report().is_clean());
        assert_eq!(log_offsets(&queue), [0, 1, 2]);
    }
}
