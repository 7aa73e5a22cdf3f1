//! Delivery semantics: groups, acks, nacks, timeouts, dead letters, delays, restart, retention.

use std::collections::BTreeSet;
use std::time::Duration;

use tierkit_mq::{Bytes, DEAD_LETTER_REASON, Durability, Error, ManualClock, Message, Queue};

use crate::{TempDir, payload};

fn queue(clock: &ManualClock) -> Queue {
    Queue::builder()
        .clock(clock.clone())
        .visibility_timeout(Duration::from_secs(30))
        .max_deliveries(3)
        .build_in_memory()
        .unwrap()
}

fn send_n(q: &Queue, n: u64) {
    let p = q.producer("t").unwrap();
    for i in 0..n {
        p.send(Message::new(payload(i, 16))).unwrap();
    }
}

#[test]
fn groups_fan_out_and_consumers_in_a_group_compete() {
    let clock = ManualClock::starting_at_unix_millis(1_000);
    let q = queue(&clock);
    send_n(&q, 10);
    let (a1, a2) = (q.consumer("t", "a").unwrap(), q.consumer("t", "a").unwrap());
    let b = q.consumer("t", "b").unwrap();
    let mut got_a = BTreeSet::new();
    for i in 0..10u32 {
        let c = if i.is_multiple_of(2) { &a1 } else { &a2 };
        let d = c.try_recv().unwrap().unwrap();
        assert!(got_a.insert(d.offset()));
        c.ack(&d).unwrap();
    }
    assert!(a1.try_recv().unwrap().is_none() && a2.try_recv().unwrap().is_none());
    let got_b: BTreeSet<u64> = std::iter::from_fn(|| b.try_recv().unwrap())
        .map(|d| d.offset())
        .collect();
    assert_eq!(got_a, (0..10).collect());
    assert_eq!(got_b, (0..10).collect());
}

#[test]
fn visibility_timeout_redelivers_and_stale_ack_is_refused() {
    let clock = ManualClock::starting_at_unix_millis(1_000);
    let q = queue(&clock);
    send_n(&q, 1);
    let c = q.consumer("t", "g").unwrap();
    let first = c.try_recv().unwrap().unwrap();
    assert!(c.try_recv().unwrap().is_none(), "in flight: invisible");
    clock.advance(Duration::from_secs(29));
    assert!(c.try_recv().unwrap().is_none());
    clock.advance(Duration::from_secs(1));
    let second = c.try_recv().unwrap().unwrap();
    assert_eq!((second.offset(), second.delivery_count()), (0, 2));
    assert!(matches!(
        c.ack(&first),
        Err(Error::NotInFlight { offset: 0 })
    ));
    c.ack(&second).unwrap();
    let s = q.stats("t").unwrap();
    assert_eq!((s.groups[0].depth, s.groups[0].redeliveries), (0, 1));
}

#[test]
fn nack_redelivers_after_its_delay() {
    let clock = ManualClock::starting_at_unix_millis(1_000);
    let q = queue(&clock);
    send_n(&q, 1);
    let c = q.consumer("t", "g").unwrap();
    let d = c.try_recv().unwrap().unwrap();
    c.nack(&d, Duration::from_secs(5)).unwrap();
    assert!(c.try_recv().unwrap().is_none());
    clock.advance(Duration::from_secs(5));
    assert_eq!(c.try_recv().unwrap().unwrap().delivery_count(), 2);
}

#[test]
fn max_deliveries_moves_the_message_to_the_dead_letter_topic() {
    let clock = ManualClock::starting_at_unix_millis(1_000);
    let q = queue(&clock);
    send_n(&q, 2);
    let c = q.consumer("t", "g").unwrap();
    for attempt in 1..=3 {
        let d = c.try_recv().unwrap().unwrap();
        assert_eq!((d.offset(), d.delivery_count()), (0, attempt));
        c.nack(&d, Duration::ZERO).unwrap();
    }
    // The fourth delivery would exceed max_deliveries = 3: offset 0 is dead-lettered.
    let next = c.try_recv().unwrap().unwrap();
    assert_eq!(next.offset(), 1);
    let dlq = q
        .consumer(&Queue::dead_letter_topic("t", "g"), "ops")
        .unwrap();
    let dead = dlq.try_recv().unwrap().unwrap();
    assert_eq!(dead.payload()[..8], 0u64.to_le_bytes());
    assert!(dead.message().header(DEAD_LETTER_REASON).is_some());
    let s = q.stats("t").unwrap();
    assert_eq!((s.groups[0].dead_lettered, s.groups[0].committed), (1, 1));
}

#[test]
fn delayed_messages_wait_for_their_time() {
    let clock = ManualClock::starting_at_unix_millis(1_000);
    let q = queue(&clock);
    let p = q.producer("t").unwrap();
    p.send(Message::new("later").deliver_not_before(11_000))
        .unwrap();
    p.send(Message::new("now")).unwrap();
    let c = q.consumer("t", "g").unwrap();
    assert_eq!(&c.try_recv().unwrap().unwrap().payload()[..], b"now");
    assert!(c.try_recv().unwrap().is_none());
    clock.advance(Duration::from_secs(10));
    assert_eq!(&c.try_recv().unwrap().unwrap().payload()[..], b"later");
}

#[test]
fn acks_survive_a_restart_and_unacked_messages_come_back() {
    let tmp = TempDir::new("restart");
    let q = Queue::builder().build(tmp.path()).unwrap();
    send_n(&q, 10);
    let c = q.consumer("t", "g").unwrap();
    for _ in 0..10 {
        let d = c.try_recv().unwrap().unwrap();
        if d.offset().is_multiple_of(2) {
            c.ack(&d).unwrap();
        }
    }
    drop((c, q));
    let q = Queue::builder().build(tmp.path()).unwrap();
    let c = q.consumer("t", "g").unwrap();
    let again: Vec<u64> = std::iter::from_fn(|| c.try_recv().unwrap())
        .map(|d| d.offset())
        .collect();
    assert_eq!(again, vec![1, 3, 5, 7, 9]);
    assert_eq!(q.stats("t").unwrap().groups[0].depth, 5);
}

#[test]
fn retention_deletes_segments_every_group_acknowledged() {
    let q = Queue::builder()
        .durability(Durability::Never)
        .segment_size(4096)
        .build_in_memory()
        .unwrap();
    let (a, b) = (q.consumer("t", "a").unwrap(), q.consumer("t", "b").unwrap());
    let p = q.producer("t").unwrap();
    for i in 0..100 {
        p.send(Message::new(payload(i, 200))).unwrap();
    }
    let before = q.stats("t").unwrap().bytes;
    let drain = |c: &tierkit_mq::Consumer| {
        let ds: Vec<_> = std::iter::from_fn(|| c.try_recv().unwrap()).collect();
        c.ack_batch(&ds).unwrap();
    };
    drain(&a);
    assert_eq!(
        q.stats("t").unwrap().log_start,
        0,
        "group b still needs everything"
    );
    drain(&b);
    let s = q.stats("t").unwrap();
    assert!(s.log_start > 80 && s.bytes < before / 4, "{s:?}");
}

#[test]
fn quota_and_oversize_refuse_and_return_the_message() {
    let q = Queue::builder()
        .disk_quota(8192)
        .max_record_size(1024)
        .build_in_memory()
        .unwrap();
    let p = q.producer("t").unwrap();
    let err = p.send(Message::new(vec![7u8; 2000])).unwrap_err();
    assert!(matches!(err, Error::Oversize { max: 1024, .. }));
    assert_eq!(err.into_message().unwrap().payload().len(), 2000);
    let mut refused = None;
    for _ in 0..100 {
        if let Err(e) = p.send(Message::new(vec![1u8; 900])) {
            refused = Some(e);
            break;
        }
    }
    let err = refused.expect("the quota is reached");
    assert!(matches!(err, Error::QuotaExceeded { quota: 8192, .. }));
    assert_eq!(err.into_message().unwrap().payload().len(), 900);
}

#[test]
fn stats_report_depth_in_flight_and_oldest_age() {
    let clock = ManualClock::starting_at_unix_millis(1_000);
    let q = queue(&clock);
    send_n(&q, 3);
    let c = q.consumer("t", "g").unwrap();
    let _d = c.try_recv().unwrap().unwrap();
    clock.advance(Duration::from_millis(2_500));
    let g = &q.stats("t").unwrap().groups[0];
    assert_eq!(
        (g.depth, g.in_flight, g.oldest_unacked_age_ms),
        (3, 1, Some(2_500))
    );
}

#[test]
fn recv_timeout_wakes_on_a_send_from_another_thread() {
    let q = Queue::builder().build_in_memory().unwrap();
    let c = q.consumer("t", "g").unwrap();
    let q2 = q.clone();
    let t = std::thread::spawn(move || q2.producer("t").unwrap().send(Message::new("hi")).unwrap());
    let d = c.recv_timeout(Duration::from_secs(30)).unwrap().unwrap();
    assert_eq!(d.offset(), t.join().unwrap());
}

#[test]
fn invalid_names_and_config_are_errors() {
    assert!(matches!(
        Queue::builder().max_deliveries(0).build_in_memory(),
        Err(Error::InvalidConfig { .. })
    ));
    let q = Queue::builder().build_in_memory().unwrap();
    assert!(matches!(q.producer("a/b"), Err(Error::InvalidName { .. })));
    assert!(matches!(
        q.consumer("t", ""),
        Err(Error::InvalidName { .. })
    ));
}

#[test]
fn async_recv_waits_for_a_send_and_is_cancellation_safe() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        let q = Queue::builder().build_in_memory().unwrap();
        let c = q.consumer("t", "g").unwrap();
        // A recv cancelled before any message exists takes nothing.
        let cancelled = tokio::time::timeout(Duration::from_millis(1), c.recv()).await;
        assert!(cancelled.is_err());
        let p = q.producer("t").unwrap();
        let (off, d) = tokio::join!(p.send_async(Message::new("a")), c.recv());
        assert_eq!(d.unwrap().offset(), off.unwrap());
    });
}

#[test]
fn concurrent_always_producers_share_fsyncs_and_get_distinct_durable_offsets() {
    let dir = tierkit_mq::SimDir::new();
    let q = Queue::builder().build_with(dir.handle()).unwrap();
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let p = q.producer("t").unwrap();
            std::thread::spawn(move || {
                (0..100)
                    .map(|_| p.send(Message::new("m")).unwrap())
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut all: Vec<u64> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    all.sort_unstable();
    assert_eq!(all, (0..800).collect::<Vec<_>>());
    let s = q.stats("t").unwrap();
    assert_eq!((s.durable_end, s.log_end), (800, 800));
    assert!(s.fsyncs <= 800);
    // Everything acknowledged to a producer survives a power loss.
    drop(q);
    dir.crash(3);
    assert_eq!(
        Queue::builder()
            .build_with(dir.handle())
            .unwrap()
            .stats("t")
            .unwrap()
            .log_end,
        800
    );
}

#[test]
fn full_disk_refuses_the_send_returns_the_message_and_keeps_the_log_whole() {
    let dir = tierkit_mq::SimDir::new();
    let q = Queue::builder()
        .durability(Durability::Never)
        .build_with(dir.handle())
        .unwrap();
    let p = q.producer("t").unwrap();
    p.send(Message::new("first")).unwrap();
    dir.set_capacity(Some(
        dir.file_len("t.00000000000000000000.seg").unwrap() + 30,
    ));
    let err = p.send(Message::new(vec![9u8; 100])).unwrap_err();
    assert!(matches!(err, Error::DiskFull { .. }), "{err}");
    assert_eq!(err.into_message().unwrap().payload().len(), 100);
    dir.set_capacity(None);
    assert_eq!(p.send(Message::new("after")).unwrap(), 1);
    drop((p, q));
    dir.kill_process();
    let q = Queue::builder().build_with(dir.handle()).unwrap();
    assert!(
        q.recovery_report().is_clean(),
        "the partial write was cut before reopening"
    );
    let c = q.consumer("t", "g").unwrap();
    let got: Vec<_> = std::iter::from_fn(|| c.try_recv().unwrap())
        .map(|d| d.payload().clone())
        .collect();
    assert_eq!(got, vec![Bytes::from("first"), Bytes::from("after")]);
}
