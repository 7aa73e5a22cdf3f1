//! Settings: out-of-range values are refused by `build`, and `Duration::MAX` means "no
//! deadline" everywhere (never an `Instant` overflow).

use std::time::Duration;

use tierkit_mq::{Durability, Error, Message, Queue};

use crate::payload;

#[test]
fn out_of_range_settings_are_refused_consistently() {
    let refused = |b: tierkit_mq::QueueBuilder, what: &str| match b.build_in_memory() {
        Err(Error::InvalidConfig { what: w, .. }) => assert!(w.contains(what), "{w} vs {what}"),
        other => panic!("{what}: expected InvalidConfig, got {other:?}"),
    };
    refused(Queue::builder().disk_quota(0), "disk_quota");
    refused(Queue::builder().retention_bytes(0), "retention_bytes");
    refused(
        Queue::builder().visibility_timeout(Duration::from_micros(1)),
        "visibility_timeout",
    );
    refused(
        Queue::builder().durability(Durability::Interval(Duration::from_micros(1))),
        "durability interval",
    );
    refused(
        Queue::builder().durability(Durability::Interval(Duration::ZERO)),
        "durability interval",
    );
    refused(
        Queue::builder().retention_age(Duration::ZERO),
        "retention_age",
    );
    refused(Queue::builder().max_deliveries(0), "max_deliveries");
    refused(Queue::builder().segment_size(100), "segment_size");
    // The smallest accepted values work.
    Queue::builder()
        .disk_quota(16)
        .retention_bytes(1)
        .visibility_timeout(Duration::from_millis(1))
        .durability(Durability::Interval(Duration::from_millis(1)))
        .build_in_memory()
        .unwrap();
}

#[test]
fn duration_max_means_no_deadline_everywhere() {
    let queue = Queue::builder()
        .durability(Durability::Interval(Duration::MAX))
        .write_buffer(4096, Duration::MAX)
        .visibility_timeout(Duration::MAX)
        .retention_age(Duration::MAX)
        .segment_size(4096)
        .disk_quota(3 * 4096)
        .disk_quota_wait(Duration::MAX)
        .build_in_memory()
        .unwrap();
    let consumer = queue.consumer("t", "g").unwrap();
    let producer = queue.producer("t").unwrap();
    // Far more than the quota: the sender can only finish because it waits for the acks.
    let sender = std::thread::spawn(move || {
        (0..40u64)
            .map(|i| producer.send(Message::new(payload(i, 900))).unwrap())
            .collect::<Vec<_>>()
    });
    for i in 0..40u64 {
        let d = consumer.recv_timeout(Duration::MAX).unwrap().unwrap();
        assert_eq!(d.offset(), i);
        consumer.ack(&d).unwrap();
    }
    assert_eq!(sender.join().unwrap(), (0..40).collect::<Vec<_>>());
    // A nack "forever" is never redelivered before a restart.
    let producer = queue.producer("t").unwrap();
    producer.send(Message::new("last")).unwrap();
    let d = consumer.recv_timeout(Duration::MAX).unwrap().unwrap();
    consumer.nack(&d, Duration::MAX).unwrap();
    assert!(
        consumer
            .recv_timeout(Duration::from_millis(20))
            .unwrap()
            .is_none()
    );
}
