//! The async API in a tokio runtime, and group commit of acknowledgements.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use tierkit_mq::{ManualClock, Message, Queue, SimDir, StorageDir, StorageFile};

use crate::HookDir;

/// A directory whose ack-journal fsyncs wait at a gate once armed, and are counted.
#[derive(Debug, Clone)]
struct GatedDir {
    inner: Arc<dyn StorageDir>,
    armed: Arc<AtomicBool>,
    gate: Arc<(Mutex<bool>, Condvar)>,
    ack_syncs: Arc<AtomicU64>,
}

#[derive(Debug)]
struct GatedFile {
    inner: Arc<dyn StorageFile>,
    journal: bool,
    dir: GatedDir,
}

impl StorageFile for GatedFile {
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }
    fn read_exact_at(&self, buf: &mut [u8], pos: u64) -> io::Result<()> {
        self.inner.read_exact_at(buf, pos)
    }
    fn append(&self, data: &[u8]) -> io::Result<()> {
        self.inner.append(data)
    }
    fn truncate(&self, len: u64) -> io::Result<()> {
        self.inner.truncate(len)
    }
    fn sync(&self) -> io::Result<()> {
        if self.journal && self.dir.armed.load(Ordering::SeqCst) {
            self.dir.ack_syncs.fetch_add(1, Ordering::SeqCst);
            let (open, cv) = &*self.dir.gate;
            let mut open = open.lock().unwrap();
            while !*open {
                open = cv.wait(open).unwrap();
            }
        }
        self.inner.sync()
    }
}

impl StorageDir for GatedDir {
    fn list(&self) -> io::Result<Vec<String>> {
        self.inner.list()
    }
    fn open(&self, name: &str, create: bool) -> io::Result<Arc<dyn StorageFile>> {
        Ok(Arc::new(GatedFile {
            inner: self.inner.open(name, create)?,
            journal: name.contains(".ack"),
            dir: self.clone(),
        }))
    }
    fn remove(&self, name: &str) -> io::Result<()> {
        self.inner.remove(name)
    }
    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        self.inner.rename(from, to)
    }
    fn sync_dir(&self) -> io::Result<()> {
        self.inner.sync_dir()
    }
    fn try_lock(&self) -> io::Result<bool> {
        self.inner.try_lock()
    }
    fn unlock(&self) {
        self.inner.unlock();
    }
}

#[test]
fn concurrent_acks_share_one_journal_fsync() {
    const N: u64 = 64;
    let sim = SimDir::new();
    let dir = GatedDir {
        inner: sim.handle(),
        armed: Arc::new(AtomicBool::new(false)),
        gate: Arc::new((Mutex::new(false), Condvar::new())),
        ack_syncs: Arc::new(AtomicU64::new(0)),
    };
    let queue = Queue::builder().build_with(Arc::new(dir.clone())).unwrap();
    let producer = queue.producer("t").unwrap();
    let consumer = queue.consumer("t", "g").unwrap();
    for i in 0..=N {
        producer.send(Message::new(format!("m{i}"))).unwrap();
    }
    // One ack first: the journal exists before the gate is armed.
    consumer
        .ack(&consumer.try_recv().unwrap().unwrap())
        .unwrap();
    let deliveries: Vec<_> = (0..N)
        .map(|_| consumer.try_recv().unwrap().unwrap())
        .collect();
    dir.armed.store(true, Ordering::SeqCst);
    let ackers: Vec<_> = deliveries
        .into_iter()
        .map(|d| {
            let c = consumer.clone();
            std::thread::spawn(move || c.ack(&d))
        })
        .collect();
    // Every ack appends its record before it waits for an fsync: wait until all 64 are in
    // the journal (20-byte header, 17-byte records), then open the gate.
    let full = 20 + 17 * (N + 1);
    let mut spins = 0u64;
    while sim.file_len("t.g.ack") != Some(full) {
        std::thread::yield_now();
        spins += 1;
        assert!(spins < 100_000_000, "the acks never appended");
    }
    *dir.gate.0.lock().unwrap() = true;
    dir.gate.1.notify_all();
    for a in ackers {
        a.join().unwrap().unwrap();
    }
    let syncs = dir.ack_syncs.load(Ordering::SeqCst);
    // The first leader's fsync started before the others appended; one more covers them all.
    assert!(
        syncs <= 2,
        "{N} concurrent acks took {syncs} journal fsyncs"
    );
    let stats = queue.stats("t").unwrap();
    assert_eq!(
        stats.groups[0].journal_fsyncs,
        1 + syncs,
        "the first ack's fsync, then these"
    );
    assert!(consumer.try_recv().unwrap().is_none());
}

#[test]
fn async_recv_is_woken_by_a_send_from_another_thread_and_acks_do_not_block() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        let queue = Queue::builder().build_in_memory().unwrap();
        let consumer = queue.consumer("t", "g").unwrap();
        let workers: Vec<_> = (0..8)
            .map(|_| {
                let c = consumer.clone();
                tokio::spawn(async move {
                    let d = c.recv().await.unwrap();
                    c.ack_async(&d).await.unwrap();
                    d.offset()
                })
            })
            .collect();
        let producer = queue.producer("t").unwrap();
        let sender = std::thread::spawn(move || {
            (0..8)
                .map(|i| producer.send(Message::new(vec![i])).unwrap())
                .collect::<Vec<_>>()
        });
        let mut got = Vec::new();
        for w in workers {
            got.push(w.await.unwrap());
        }
        got.sort_unstable();
        assert_eq!(got, sender.join().unwrap());
        assert_eq!(queue.stats("t").unwrap().groups[0].depth, 0);
    });
}

#[test]
fn async_recv_wakes_for_a_delayed_message_when_it_is_due() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        let queue = Queue::builder().build_in_memory().unwrap();
        let consumer = queue.consumer("t", "g").unwrap();
        let now = tierkit_mq::Clock::unix_millis(&tierkit_mq::SystemClock);
        queue
            .producer("t")
            .unwrap()
            .send(Message::new("later").deliver_not_before(now + 30))
            .unwrap();
        let d = tokio::time::timeout(Duration::from_secs(30), consumer.recv())
            .await
            .expect("woken by its timer")
            .unwrap();
        assert_eq!(&d.payload()[..], b"later");
        consumer
            .nack_async(&d, Duration::from_millis(20))
            .await
            .unwrap();
        let again = consumer.recv().await.unwrap();
        assert_eq!(again.delivery_count(), 2);
        consumer.ack_batch_async(vec![again]).await.unwrap();
    });
}

/// A queue on a [`HookDir`] whose hook runs `hook` for every file sync (`"sync <file>"`,
/// `"sync_dir "`) while `armed`; `max_deliveries(1)` and a manual clock.
/// Two messages are sent and offset 0 is delivered once and nacked, so the next receive
/// dead-letters it (its fsyncs are the armed ones) and then finds offset 1.
fn dead_letter_setup(
    rt: &tokio::runtime::Runtime,
    armed: &Arc<AtomicBool>,
    hook: impl Fn(&str) -> io::Result<()> + Send + Sync + 'static,
) -> (Queue, tierkit_mq::Consumer) {
    let armed = Arc::clone(armed);
    let dir = HookDir::around(SimDir::new().handle(), move |op, name| {
        if armed.load(Ordering::SeqCst) && (op == "sync" || op == "sync_dir") {
            return hook(&format!("{op} {name}"));
        }
        Ok(())
    });
    let queue = Queue::builder()
        .clock(ManualClock::starting_at_unix_millis(1_000))
        .max_deliveries(1)
        .build_with(dir)
        .unwrap();
    let consumer = queue.consumer("t", "g").unwrap();
    rt.block_on(async {
        let producer = queue.producer("t").unwrap();
        producer.send_async(Message::new("doomed")).await.unwrap();
        producer.send_async(Message::new("fine")).await.unwrap();
        let first = consumer.recv().await.unwrap();
        assert_eq!((first.offset(), first.delivery_count()), (0, 1));
        consumer.nack_async(&first, Duration::ZERO).await.unwrap();
    });
    (queue, consumer)
}

/// Whether a hooked sync is one of the group's ack journal (`t.g.ack`; the handle is named
/// `t.g.ack.tmp` when this process created the journal: it is written, then renamed).
fn is_journal_sync(what: &str) -> bool {
    what.starts_with("sync t.g.ack")
}

fn current_thread_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
}

#[test]
fn async_recv_dead_letters_on_the_blocking_pool_not_the_runtime_thread() {
    // A current-thread runtime: `block_on` polls every task on this very thread.
    let rt = current_thread_runtime();
    let runtime_thread = std::thread::current().id();
    let armed = Arc::new(AtomicBool::new(false));
    let syncs = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&syncs);
    let (queue, consumer) = dead_letter_setup(&rt, &armed, move |what| {
        seen.lock()
            .unwrap()
            .push((what.to_owned(), std::thread::current().id()));
        Ok(())
    });
    armed.store(true, Ordering::SeqCst);
    let next = rt.block_on(consumer.recv()).unwrap();
    armed.store(false, Ordering::SeqCst);
    assert_eq!((next.offset(), next.delivery_count()), (1, 1));
    let syncs = syncs.lock().unwrap().clone();
    assert!(
        syncs.iter().any(|(what, _)| is_journal_sync(what)),
        "the dead letter's ack was fsynced: {syncs:?}"
    );
    let on_runtime: Vec<_> = syncs
        .iter()
        .filter(|(_, thread)| *thread == runtime_thread)
        .map(|(what, _)| what)
        .collect();
    assert!(
        on_runtime.is_empty(),
        "recv() fsynced on the runtime thread: {on_runtime:?} (all: {syncs:?})"
    );
    let s = queue.stats("t").unwrap();
    assert_eq!((s.groups[0].dead_lettered, s.groups[0].committed), (1, 1));
    let dlq = queue
        .consumer(&Queue::dead_letter_topic("t", "g"), "ops")
        .unwrap();
    assert_eq!(&dlq.try_recv().unwrap().unwrap().payload()[..], b"doomed");
}

#[test]
fn async_recv_dropped_while_a_dead_letter_is_fsynced_takes_no_delivery() {
    let rt = current_thread_runtime();
    let runtime_thread = std::thread::current().id();
    let armed = Arc::new(AtomicBool::new(false));
    let gate = Arc::new((Mutex::new(false), Condvar::new()));
    let held = Arc::new(AtomicBool::new(false));
    let (g, h) = (Arc::clone(&gate), Arc::clone(&held));
    let (queue, consumer) = dead_letter_setup(&rt, &armed, move |what| {
        // Hold the journal's fsync at the gate, off the runtime thread only (on it, this
        // would hang the test instead of failing it).
        if is_journal_sync(what) && std::thread::current().id() != runtime_thread {
            h.store(true, Ordering::SeqCst);
            let (open, cv) = &*g;
            let open = open.lock().unwrap();
            let _unused = cv
                .wait_timeout_while(open, Duration::from_secs(30), |open| !*open)
                .unwrap();
        }
        Ok(())
    });
    armed.store(true, Ordering::SeqCst);
    rt.block_on(async {
        let mut recv = Box::pin(consumer.recv());
        while !held.load(Ordering::SeqCst) {
            tokio::select! {
                biased;
                r = &mut recv => panic!("recv returned while the dead letter's fsync was held: {r:?}"),
                () = tokio::time::sleep(Duration::from_millis(1)) => {}
            }
        }
        drop(recv);
    });
    // The future is gone: no delivery was taken, although the dead-lettering goes on.
    assert_eq!(queue.stats("t").unwrap().groups[0].in_flight, 0);
    *gate.0.lock().unwrap() = true;
    gate.1.notify_all();
    let next = rt.block_on(consumer.recv()).unwrap();
    assert_eq!((next.offset(), next.delivery_count()), (1, 1));
    let mut spins = 0u64;
    while queue.stats("t").unwrap().groups[0].journal_fsyncs < 2 {
        std::thread::sleep(Duration::from_millis(1));
        spins += 1;
        assert!(spins < 30_000, "the dead letter's fsync never finished");
    }
    let s = queue.stats("t").unwrap();
    assert_eq!((s.groups[0].dead_lettered, s.groups[0].committed), (1, 1));
}

#[test]
fn a_failed_dead_letter_fsync_fails_the_receive_and_takes_no_delivery() {
    let rt = current_thread_runtime();
    for use_async in [false, true] {
        let armed = Arc::new(AtomicBool::new(false));
        let (queue, consumer) = dead_letter_setup(&rt, &armed, |what| {
            if is_journal_sync(what) {
                return Err(io::Error::other("injected journal fsync failure"));
            }
            Ok(())
        });
        armed.store(true, Ordering::SeqCst);
        let got = if use_async {
            rt.block_on(consumer.recv()).map(Some)
        } else {
            consumer.try_recv()
        };
        assert!(
            matches!(got, Err(tierkit_mq::Error::Io { .. })),
            "async {use_async}: {got:?}"
        );
        // Offset 1 was not handed out: the error did not strand it in flight.
        assert_eq!(
            queue.stats("t").unwrap().groups[0].in_flight,
            0,
            "async {use_async}"
        );
    }
}

#[test]
fn async_recv_of_a_ready_message_does_not_wait_for_the_blocking_pool() {
    // The pool's only thread is busy: a receive that needed it would wait (and time out).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .max_blocking_threads(1)
        .build()
        .unwrap();
    let queue = Queue::builder().build_in_memory().unwrap();
    let consumer = queue.consumer("t", "g").unwrap();
    queue
        .producer("t")
        .unwrap()
        .send(Message::new("ready"))
        .unwrap();
    let gate = Arc::new((Mutex::new(false), Condvar::new()));
    let g = Arc::clone(&gate);
    rt.block_on(async {
        let busy = tokio::task::spawn_blocking(move || {
            let (open, cv) = &*g;
            let open = open.lock().unwrap();
            let _unused = cv
                .wait_timeout_while(open, Duration::from_secs(30), |open| !*open)
                .unwrap();
        });
        let got = tokio::time::timeout(Duration::from_secs(10), consumer.recv()).await;
        *gate.0.lock().unwrap() = true;
        gate.1.notify_all();
        busy.await.unwrap();
        let d = got.expect("recv waited for the blocking pool").unwrap();
        assert_eq!(&d.payload()[..], b"ready");
    });
}
