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
    let clock = ManualClock::starting_at_unix_millis(1_000_000);
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

#[test]
fn a_send_at_the_disk_quota_waits_for_acks_to_free_space() {
    const QUOTA: u64 = 4 * SEG;
    let queue = Queue::builder()
        .segment_size(SEG)
        .disk_quota(QUOTA)
        .disk_quota_wait(Duration::from_secs(60))
        .build_in_memory()
        .unwrap();
    let consumer = queue.consumer("t", "g").unwrap();
    let producer = queue.producer("t").unwrap();
    // 60 x ~1 KiB is far more than the quota: the producer can only finish if it waits.
    let sender = std::thread::spawn(move || {
        (0..60u64)
            .map(|i| producer.send(Message::new(payload(i, 900))))
            .collect::<Vec<_>>()
    });
    let mut got = 0u64;
    while got < 60 {
        if let Some(d) = consumer.recv_timeout(Duration::from_secs(60)).unwrap() {
            assert_eq!(d.offset(), got);
            consumer.ack(&d).unwrap();
            got += 1;
        }
        assert!(queue.stats("t").unwrap().bytes <= QUOTA);
    }
    let results = sender.join().unwrap();
    for (i, r) in results.into_iter().enumerate() {
        assert_eq!(r.unwrap(), i as u64, "every send got through, in order");
    }
}

#[test]
fn a_send_at_the_disk_quota_gives_up_after_its_wait_and_returns_the_message() {
    let queue = Queue::builder()
        .segment_size(SEG)
        .disk_quota(2 * SEG)
        .disk_quota_wait(Duration::from_millis(50))
        .build_in_memory()
        .unwrap();
    let _group = queue.consumer("t", "never-acks").unwrap();
    let producer = queue.producer("t").unwrap();
    let start = std::time::Instant::now();
    let err = (0..100u64)
        .find_map(|i| producer.send(Message::new(payload(i, 900))).err())
        .expect("the quota is reached");
    assert!(
        start.elapsed() >= Duration::from_millis(50),
        "it waited first"
    );
    assert!(matches!(err, Error::QuotaExceeded { .. }), "{err:?}");
    assert_eq!(err.into_message().unwrap().payload().len(), 900);
}

#[test]
fn retention_counts_only_the_unacknowledged_messages_it_drops() {
    let queue = Queue::builder()
        .segment_size(SEG)
        .retention_bytes(2 * SEG)
        .build_in_memory()
        .unwrap();
    let group = queue.consumer("t", "g").unwrap();
    let producer = queue.producer("t").unwrap();
    // 10 records per segment; the group acks the odd offsets among the first 10 only.
    for i in 0..10 {
        producer.send(Message::new(payload(i, 350))).unwrap();
    }
    for _ in 0..10 {
        let d = group.try_recv().unwrap().unwrap();
        if !d.offset().is_multiple_of(2) {
            group.ack(&d).unwrap();
        }
    }
    for i in 10..60 {
        producer.send(Message::new(payload(i, 350))).unwrap();
    }
    // Six segments of 3,906 bytes: size retention keeps the last two, from offset 40. Above
    // it, the group acks 40 and 41 and nacks 42 before retention runs.
    let mut held = Vec::new();
    while let Some(d) = group.try_recv().unwrap() {
        if d.offset() >= 40 {
            held.push(d);
        }
        if held.len() == 3 {
            break;
        }
    }
    group.ack(&held[0]).unwrap();
    group.ack(&held[1]).unwrap();
    group.nack(&held[2], Duration::ZERO).unwrap();
    queue.apply_retention().unwrap();
    let s = queue.stats("t").unwrap();
    let g = &s.groups[0];
    assert_eq!(s.log_start, 40, "{s:?}");
    // Dropped: everything below the new start except the 5 acknowledged odd offsets.
    assert_eq!(g.retention_dropped, 40 - 5, "{s:?}");
    // 40 and 41 were acknowledged: the group is past them.
    assert_eq!(g.committed, 42);
    // 42 keeps its delivery count.
    let again = group.try_recv().unwrap().unwrap();
    assert_eq!((again.offset(), again.delivery_count()), (42, 2));
}

#[test]
fn the_disk_quota_admits_a_send_that_reaches_it_exactly() {
    // A 100-byte payload makes a 139-byte record; the log starts with a 16-byte header.
    let quota = 16 + 3 * 139;
    let queue = Queue::builder()
        .disk_quota(quota)
        .build_in_memory()
        .unwrap();
    let producer = queue.producer("t").unwrap();
    for i in 0..3 {
        assert_eq!(producer.send(Message::new(payload(i, 100))).unwrap(), i);
    }
    assert_eq!(queue.stats("t").unwrap().bytes, quota);
    match producer.send(Message::new(payload(3, 1))) {
        Err(Error::QuotaExceeded {
            used,
            quota: q,
            message,
        }) => {
            assert_eq!((used, q), (quota, quota));
            assert_eq!(message.payload()[..], payload(3, 1)[..]);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_send_that_rolls_a_segment_runs_size_retention() {
    let queue = Queue::builder()
        .segment_size(SEG)
        .retention_bytes(SEG)
        .build_in_memory()
        .unwrap();
    let producer = queue.producer("t").unwrap();
    // Ten 389-byte records fill a segment (3,906 bytes); the eleventh starts a second one,
    // and the two together pass the limit: the roll's send deletes the first segment
    // before it returns (the background run is a second away).
    for i in 0..10 {
        producer.send(Message::new(payload(i, 350))).unwrap();
    }
    assert_eq!(queue.stats("t").unwrap().log_start, 0);
    producer.send(Message::new(payload(10, 350))).unwrap();
    let s = queue.stats("t").unwrap();
    assert_eq!(
        (s.log_start, s.log_end, s.bytes),
        (10, 11, 16 + 389),
        "{s:?}"
    );
}

/// Sends `n` messages of 350 bytes (389-byte records, ten to a segment of `SEG`).
fn send_records(queue: &Queue, from: u64, n: u64) {
    let producer = queue.producer("t").unwrap();
    for i in from..from + n {
        assert_eq!(producer.send(Message::new(payload(i, 350))).unwrap(), i);
    }
}

#[test]
fn size_retention_keeps_a_log_of_exactly_its_limit() {
    // Full segments of 3,906 bytes and one record (405 bytes with its segment's header) in
    // the last: 21 records make 8,217 bytes, 31 make 12,123.
    for (records, limit, start) in [
        (21, 8217, 0),
        (21, 8216, 10),
        (31, 8217, 10),
        (31, 4311, 20),
        (31, 4310, 30),
    ] {
        // Sent without retention, so that one run has to delete several segments.
        let dir = SimDir::new();
        let builder = || Queue::builder().segment_size(SEG);
        send_records(&builder().build_with(dir.handle()).unwrap(), 0, records);
        let queue = builder()
            .retention_bytes(limit)
            .build_with(dir.handle())
            .unwrap();
        queue.apply_retention().unwrap();
        let s = queue.stats("t").unwrap();
        let bytes = (records - 1) / 10 * 3906 + 405 - start / 10 * 3906;
        assert_eq!(
            (s.log_start, s.bytes),
            (start, bytes),
            "{records} records, {limit}"
        );
    }
}

#[test]
fn age_retention_keeps_a_segment_of_exactly_its_age() {
    let clock = ManualClock::starting_at_unix_millis(1_000_000);
    let queue = Queue::builder()
        .segment_size(SEG)
        .retention_age(Duration::from_millis(1000))
        .clock(clock.clone())
        .build_in_memory()
        .unwrap();
    send_records(&queue, 0, 11);
    // The newest message of the first segment is exactly 1,000 ms old: it stays.
    clock.advance(Duration::from_millis(1000));
    queue.apply_retention().unwrap();
    assert_eq!(queue.stats("t").unwrap().log_start, 0);
    clock.advance(Duration::from_millis(1));
    queue.apply_retention().unwrap();
    assert_eq!(queue.stats("t").unwrap().log_start, 10);
}

#[test]
fn a_segment_every_group_acknowledged_to_its_last_record_is_deleted() {
    let queue = Queue::builder()
        .segment_size(SEG)
        .build_in_memory()
        .unwrap();
    let consumer = queue.consumer("t", "g").unwrap();
    send_records(&queue, 0, 15);
    let first_nine: Vec<_> = (0..9)
        .map(|_| consumer.try_recv().unwrap().unwrap())
        .collect();
    consumer.ack_batch(&first_nine).unwrap();
    assert_eq!(
        queue.stats("t").unwrap().log_start,
        0,
        "offset 9 is not acked"
    );
    let tenth = consumer.try_recv().unwrap().unwrap();
    consumer.ack(&tenth).unwrap();
    let s = queue.stats("t").unwrap();
    assert_eq!((s.log_start, s.bytes), (10, 16 + 5 * 389));
}

#[test]
fn segments_deleted_by_retention_stay_deleted_after_a_power_loss() {
    let dir = SimDir::new();
    let queue = Queue::builder()
        .segment_size(SEG)
        .retention_bytes(SEG)
        .build_with(dir.handle())
        .unwrap();
    send_records(&queue, 0, 11);
    assert_eq!(queue.stats("t").unwrap().log_start, 10);
    dir.crash(1);
    drop(queue);
    let queue = Queue::builder()
        .segment_size(SEG)
        .build_with(dir.handle())
        .unwrap();
    let s = queue.stats("t").unwrap();
    assert_eq!((s.log_start, s.log_end), (10, 11), "{s:?}");
}

#[test]
fn retention_forgets_the_delivery_counts_it_deletes_and_keeps_the_others() {
    let clock = ManualClock::starting_at_unix_millis(1_000_000);
    let queue = Queue::builder()
        .segment_size(SEG)
        .retention_age(Duration::from_millis(1000))
        .clock(clock.clone())
        .build_in_memory()
        .unwrap();
    send_records(&queue, 0, 30);
    let group = queue.consumer("t", "g").unwrap();
    let delivered: Vec<_> = (0..26)
        .map(|_| group.try_recv().unwrap().unwrap())
        .collect();
    // Offsets 5 and 25 wait for their second delivery, 20 and 21 are acknowledged; then age
    // retention deletes the first two segments (offsets 0 to 19): the group moves past them
    // and past the acknowledged 20 and 21.
    group.nack(&delivered[5], Duration::ZERO).unwrap();
    group.nack(&delivered[25], Duration::ZERO).unwrap();
    group.ack_batch(&delivered[20..22]).unwrap();
    clock.advance(Duration::from_millis(1001));
    queue.apply_retention().unwrap();
    let s = queue.stats("t").unwrap();
    assert_eq!((s.log_start, s.groups[0].committed), (20, 22), "{s:?}");
    let again = group.try_recv().unwrap().unwrap();
    assert_eq!((again.offset(), again.delivery_count()), (25, 2));
    for offset in 26..30 {
        let d = group.try_recv().unwrap().unwrap();
        assert_eq!((d.offset(), d.delivery_count()), (offset, 1));
    }
    assert!(
        group.try_recv().unwrap().is_none(),
        "20 to 24 are in flight"
    );
}
