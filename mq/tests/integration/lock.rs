//! One owner per directory, across processes, whatever happens to files in it; and the lock
//! is free the moment the last handle is dropped.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use tierkit_mq::{Durability, Error, Message, Queue, SimDir};

use crate::TempDir;

const HOLDER_ENV: &str = "TIERKIT_MQ_LOCK_HOLDER_DIR";

/// The child's body: opens the queue, says so, and holds it until its stdin closes.
/// Run only by `a_second_process_is_refused_even_after_lock_files_are_deleted`.
#[test]
#[ignore = "child process body; run by lock::a_second_process_is_refused_even_after_lock_files_are_deleted"]
fn lock_holder_child() {
    let dir = std::env::var(HOLDER_ENV).unwrap_or_else(|_| {
        panic!("{HOLDER_ENV} is unset: this is the child half of a two-process test, not a test on its own")
    });
    let queue = Queue::builder().build(&dir).unwrap();
    queue
        .producer("t")
        .unwrap()
        .send(Message::new("held"))
        .unwrap();
    println!("@@ready");
    std::io::stdout().flush().unwrap();
    let mut line = String::new();
    while std::io::stdin().read_line(&mut line).unwrap_or(0) > 0 {}
    drop(queue);
}

#[test]
fn a_second_process_is_refused_even_after_lock_files_are_deleted() {
    let tmp = TempDir::new("lock2p");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "lock::lock_holder_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(HOLDER_ENV, tmp.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while !line.contains("@@ready") {
        line.clear();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "the child exited before opening the queue"
        );
    }
    assert!(matches!(
        Queue::builder().build(tmp.path()),
        Err(Error::AlreadyOpen)
    ));
    // The operator's habit: delete anything that looks like a stale lock file.
    for entry in std::fs::read_dir(tmp.path()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_lowercase();
        if name.contains("lock") {
            std::fs::remove_file(&path).unwrap();
        }
    }
    std::fs::write(tmp.path().join("LOCK"), b"").unwrap();
    std::fs::remove_file(tmp.path().join("LOCK")).unwrap();
    assert!(
        matches!(Queue::builder().build(tmp.path()), Err(Error::AlreadyOpen)),
        "exclusion must not depend on a file that can be unlinked"
    );
    assert!(matches!(
        Queue::builder().read_only(true).build(tmp.path()),
        Err(Error::AlreadyOpen)
    ));
    drop(child.stdin.take()); // the child drops its queue and exits
    assert!(child.wait().unwrap().success());
    let queue = Queue::builder().build(tmp.path()).unwrap();
    assert_eq!(queue.stats("t").unwrap().log_end, 1);
}

#[test]
fn reopening_right_after_drop_succeeds_every_time() {
    let tmp = TempDir::new("reopen");
    // Another thread keeps forking processes: a child holds copies of this process's file
    // handles (the lock's too) until it execs, so closing the lock's handle is not enough.
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let forker = {
        let done = std::sync::Arc::clone(&done);
        std::thread::spawn(move || {
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = Command::new("true").status();
            }
        })
    };
    for i in 0..40u64 {
        let queue = Queue::builder()
            .durability(Durability::Interval(Duration::from_millis(5)))
            .write_buffer(4096, Duration::from_millis(1))
            .retention_bytes(1 << 30)
            .build(tmp.path())
            .unwrap_or_else(|e| panic!("reopen {i}: {e}"));
        let producer = queue.producer("t").unwrap();
        assert_eq!(producer.send(Message::new("x")).unwrap(), i);
        let consumer = queue.consumer("t", "g").unwrap();
        let q2 = queue.clone();
        drop(queue);
        // Other handles keep it open; the last one closes it.
        assert!(matches!(
            Queue::builder().build(tmp.path()),
            Err(Error::AlreadyOpen)
        ));
        drop((producer, consumer, q2));
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    forker.join().unwrap();
}

#[test]
fn dropping_a_queue_joins_its_background_threads() {
    fn mq_threads() -> usize {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
            .filter(|name| name.starts_with("tierkit-mq-"))
            .count()
    }
    // Run in a child process: other tests of this binary start queues too.
    if std::env::var_os("TIERKIT_MQ_THREADS_CHILD").is_none() {
        let out = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "lock::dropping_a_queue_joins_its_background_threads",
                "--test-threads=1",
            ])
            .env("TIERKIT_MQ_THREADS_CHILD", "1")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("1 passed"));
        return;
    }
    for _ in 0..20 {
        let queue = Queue::builder()
            .durability(Durability::Interval(Duration::from_secs(3600)))
            .write_buffer(4096, Duration::from_secs(3600))
            .retention_age(Duration::from_secs(3600))
            .build_in_memory()
            .unwrap();
        // Threads name themselves once they run.
        let mut spins = 0u64;
        while mq_threads() < 3 {
            std::thread::yield_now();
            spins += 1;
            assert!(spins < 10_000_000, "the three threads never started");
        }
        drop(queue);
        // `join` returns when a thread has finished, which the kernel signals a moment before
        // it removes the thread from /proc/self/task: allow that moment. A thread that was not
        // woken sleeps for its hour-long interval and is still there after it.
        let gone_by = std::time::Instant::now() + Duration::from_secs(5);
        while mq_threads() > 0 && std::time::Instant::now() < gone_by {
            std::thread::yield_now();
        }
        assert_eq!(mq_threads(), 0, "threads outlived their queue");
    }
}

#[test]
fn dropping_a_queue_waits_for_a_running_background_presync() {
    // A presync thread starts once 8 MiB were written to a segment without an fsync. Its
    // fsync is held until the directory is unlocked (or 2 s pass, if it never is): a queue
    // that joins the thread before releasing the lock runs into the 2 s; one that does not
    // unlocks while the fsync still waits.
    #[derive(Default)]
    struct Seen {
        presync_started: bool,
        presync_done: bool,
        unlocked: bool,
        unlocked_during_presync: bool,
    }
    let seen = Arc::new((Mutex::new(Seen::default()), Condvar::new()));
    let hook_seen = Arc::clone(&seen);
    let handle = crate::HookDir::around(SimDir::new().handle(), move |op, _| {
        let (lock, cv) = &*hook_seen;
        let presync = std::thread::current().name() == Some("tierkit-mq-presync");
        match op {
            "sync" if presync => {
                let mut s = lock.lock().unwrap();
                s.presync_started = true;
                cv.notify_all();
                let (mut s, _) = cv
                    .wait_timeout_while(s, Duration::from_secs(2), |s| !s.unlocked)
                    .unwrap();
                s.unlocked_during_presync = s.unlocked;
                s.presync_done = true;
                cv.notify_all();
            }
            "unlock" => {
                lock.lock().unwrap().unlocked = true;
                cv.notify_all();
            }
            _ => {}
        }
        Ok(())
    });
    let queue = Queue::builder()
        .durability(Durability::Never)
        .build_with(handle)
        .unwrap();
    let producer = queue.producer("t").unwrap();
    producer.send(Message::new(vec![7u8; 9 << 20])).unwrap();
    let (lock, cv) = &*seen;
    let (s, _) = cv
        .wait_timeout_while(lock.lock().unwrap(), Duration::from_secs(60), |s| {
            !s.presync_started
        })
        .unwrap();
    assert!(s.presync_started, "9 MiB unsynced start a presync");
    drop(s);
    drop((producer, queue));
    let s = cv
        .wait_while(lock.lock().unwrap(), |s| !s.presync_done)
        .unwrap();
    assert!(s.unlocked, "the queue closed");
    assert!(
        !s.unlocked_during_presync,
        "the lock was released while a background fsync was running"
    );
}

#[test]
fn without_fsyncs_per_send_the_active_segment_is_presynced_every_8_mib() {
    // Under `Never` the only fsyncs of a topic are the first segment's header (at creation)
    // and a background one whenever 8 MiB were written to a segment since its last. Dropping
    // the queue joins a running presync, so the count after the drop is exact.
    const PRESYNC: usize = 8 << 20;
    for (record_sizes, syncs) in [
        (vec![1_000; 1_000], 1),
        (vec![PRESYNC - 1_000, 999], 1),
        (vec![PRESYNC - 1_000, 1_000], 2),
    ] {
        let dir = SimDir::new();
        let queue = Queue::builder()
            .durability(Durability::Never)
            .max_record_size(PRESYNC)
            .build_with(dir.handle())
            .unwrap();
        let producer = queue.producer("t").unwrap();
        for size in &record_sizes {
            // A record is its payload and 39 bytes.
            producer.send(Message::new(vec![1u8; size - 39])).unwrap();
        }
        drop((producer, queue));
        assert_eq!(dir.sync_count(), syncs, "records of {record_sizes:?} bytes");
    }
}
