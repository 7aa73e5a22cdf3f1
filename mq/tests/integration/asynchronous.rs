//! The async API in a tokio runtime, and group commit of acknowledgements.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use tierkit_mq::{Message, Queue, SimDir, StorageDir, StorageFile};

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
