//! Size and age retention: the log stays bounded even when a group never acknowledges.

use std::time::Duration;

use tierkit_mq::{Error, ManualClock, Message, Queue, SimDir};

use crate::payload;

const SEG: u64 = 4096;

#[test]
fn size_retention_bounds_the_log_and_lagging_groups_skip_what_was_lost() {
    let dir = SimDir::new();
    let queue = Queue::builder()
        .segment_size(SEG)
        .retention_bytes(3 * SEG)
        .build_with(dir.handle())
        .unwrap();
    let slow = queue.consumer("t", "slow").unwrap();
    let fast = queue.consumer("t", "fast").unwrap();
    let producer = queue.producer("t").unwrap();
    for i in 0..300 {
        producer.send(Message::new(payload(i, 200))).unwrap();
        let d = fast.try_recv().unwrap().expect("fast keeps up");
        fast.ack(&d).unwrap();
        let s = queue.stats("t").unwrap();
        assert!(
            s.bytes <= 4 * SEG,
            "at most the limit plus the active segment: {s:?}"
        );
    }
    let s = queue.stats("t").unwrap();
    assert!(s.log_start > 0 && s.log_end == 300, "{s:?}");
    let slow_stats = s.groups.iter().find(|g| g.group == "slow").unwrap();
    assert_eq!(
        slow_stats.retention_dropped, s.log_start,
        "nothing was acked"
    );
    assert_eq!(slow_stats.committed, s.log_start);
    assert_eq!(slow_stats.depth, 300 - s.log_start);
    let fast_stats = s.groups.iter().find(|g| g.group == "fast").unwrap();
    assert_eq!((fast_stats.retention_dropped, fast_stats.depth), (0, 0));
    // The slow group resumes at the oldest stored message, then reads on in order.
    let d = slow.try_recv().unwrap().unwrap();
    assert_eq!(d.offset(), s.log_start);
    assert_eq!(d.payload()[..8], s.log_start.to_le_bytes());
    slow.ack(&d).unwrap();

    // After a restart the group still starts at what is stored.
    drop((slow, fast, producer, queue));
    let queue = Queue::builder()
        .segment_size(SEG)
        .retention_bytes(3 * SEG)
        .build_with(dir.handle())
        .unwrap();
    let slow = queue.consumer("t", "slow").unwrap();
    assert_eq!(slow.try_recv().unwrap().unwrap().offset(), s.log_start + 1);
}

#[test]
fn age_retention_deletes_segments_whose_newest_message_is_too_old() {
    let clock = ManualClock::new(1_000_000);
    let queue = Queue::builder()
        .segment_size(SEG)
        .retention_age(Duration::from_secs(60))
        .clock(clock.clone())
        .build_in_memory()
        .unwrap();
    let _group = queue.consumer("t", "never-acks").unwrap();
    let producer = queue.producer("t").unwrap();
    for i in 0..100 {
        producer.send(Message::new(payload(i, 100))).unwrap();
    }
    queue.apply_retention().unwrap();
    assert_eq!(queue.stats("t").unwrap().log_start, 0, "nothing is old yet");

    clock.advance(Duration::from_secs(61));
    for i in 100..110 {
        producer.send(Message::new(payload(i, 100))).unwrap();
    }
    queue.apply_retention().unwrap();
    let s = queue.stats("t").unwrap();
    // Segments holding only old messages are gone; the one shared with new messages stays.
    assert!(s.log_start > 0 && s.log_start <= 100, "{s:?}");
    let g = &s.groups[0];
    assert_eq!(g.retention_dropped, s.log_start);

    clock.advance(Duration::from_secs(61));
    queue.apply_retention().unwrap();
    let s = queue.stats("t").unwrap();
    // The active segment stays even when all of it is old.
    assert!(s.bytes <= SEG, "only the active segment is left: {s:?}");
    assert_eq!(s.log_end, 110);
    assert_eq!(s.groups[0].depth, 110 - s.log_start);
}

#[test]
fn zero_retention_age_is_refused() {
    let r = Queue::builder()
        .retention_age(Duration::ZERO)
        .build_in_memory();
    assert!(matches!(r, Err(Error::InvalidConfig { .. })));
}
