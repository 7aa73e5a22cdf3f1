//! A simulated file system that forgets what was not fsynced.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;

use crate::storage::{StorageDir, StorageFile};

#[derive(Debug, Default)]
struct FileData {
    /// Bytes known to be on stable storage.
    durable: Vec<u8>,
    /// What a reader sees now (the page cache).
    current: Vec<u8>,
    /// Start of the most recent unsynced write, for tearing.
    last_write_start: Option<usize>,
}

#[derive(Debug, Default)]
struct State {
    files: HashMap<u64, FileData>,
    names: BTreeMap<String, u64>,
    durable_names: BTreeMap<String, u64>,
    next_id: u64,
    locked: bool,
    /// Bumped by every crash: handles from before it are dead (their process is gone).
    epoch: u64,
    /// Every mutating operation fails with `ReadOnlyFilesystem` (a read-only mount).
    read_only: bool,
    syncs: u64,
    /// Mutating operations left before the simulated power cut.
    ops_left: Option<u64>,
    /// Total bytes all files may hold; appends beyond it fail with `StorageFull`.
    capacity: Option<u64>,
}

/// An in-memory directory that models a power loss.
///
/// Every write lands in a "page cache"; [`StorageFile::sync`] copies a file's bytes to "stable
/// storage" and [`StorageDir::sync_dir`] does the same for the directory's names. [`SimDir::crash`]
/// throws away everything not synced, keeping a seeded prefix of the last unsynced write of each
/// file (a torn write), as a power loss would. It is also the in-memory backend of
/// [`QueueBuilder::build_in_memory`](crate::QueueBuilder::build_in_memory).
///
/// A crash ([`SimDir::crash`], [`SimDir::kill_process`]) also kills every handle made by
/// [`SimDir::handle`] before it, as it would kill the process that held them: their operations
/// fail from then on, so a queue still open on them cannot write after the crash (its `Drop`
/// does nothing), and the test opens a new queue on a new handle.
///
/// # Examples
/// ```
/// use tierkit_mq::{Durability, Message, Queue, SimDir};
/// let dir = SimDir::new();
/// let queue = Queue::builder().durability(Durability::Always).build_with(dir.handle())?;
/// queue.producer("jobs")?.send(Message::new("resize"))?;
/// dir.crash(7); // the power goes while the queue is open: no destructor runs first
/// drop(queue);
/// let queue = Queue::builder().build_with(dir.handle())?;
/// assert_eq!(queue.stats("jobs")?.log_end, 1);
/// # Ok::<(), tierkit_mq::Error>(())
/// ```
#[derive(Clone, Default)]
pub struct SimDir {
    state: Arc<Mutex<State>>,
    fail_sync: Arc<AtomicBool>,
    /// `Some(epoch)` for a handle: it works only until the next crash.
    epoch: Option<u64>,
}

impl fmt::Debug for SimDir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimDir").finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct SimFile {
    id: u64,
    dir: SimDir,
}

impl SimDir {
    /// An empty directory.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// A handle for [`QueueBuilder::build_with`](crate::QueueBuilder::build_with), alive until
    /// the next crash.
    #[must_use]
    pub fn handle(&self) -> Arc<dyn StorageDir> {
        let epoch = self.state.lock().epoch;
        Arc::new(Self {
            epoch: Some(epoch),
            ..self.clone()
        })
    }

    /// Fails when this is a handle from before a crash.
    fn alive(&self) -> io::Result<()> {
        match self.epoch {
            Some(e) if e != self.state.lock().epoch => Err(io::Error::other(
                "simulated crash: this handle's process is gone",
            )),
            _ => Ok(()),
        }
    }

    /// Makes the directory read-only (or writable again): every mutating operation then fails
    /// with `ReadOnlyFilesystem`, like a read-only mount.
    pub fn set_read_only(&self, read_only: bool) {
        self.state.lock().read_only = read_only;
    }

    /// Simulates a power loss: unsynced bytes and names are lost, and each file keeps a
    /// `seed`-chosen prefix of its last unsynced write. Also releases the directory lock.
    pub fn crash(&self, seed: u64) {
        let mut st = self.state.lock();
        st.epoch += 1;
        let mut rng = seed ^ 0x9E37_79B9_7F4A_7C15;
        st.names = st.durable_names.clone();
        let live: Vec<u64> = st.names.values().copied().collect();
        st.files.retain(|id, _| live.contains(id));
        for data in st.files.values_mut() {
            let mut kept = data.durable.clone();
            if let Some(start) = data.last_write_start
                && start >= kept.len()
                && start <= data.current.len()
            {
                // Bytes between the durable end and the last write may or may not have reached
                // the disk; keep them only if the torn-write draw says so.
                rng = splitmix(rng);
                if rng.is_multiple_of(2) {
                    kept.extend_from_slice(&data.current[data.durable.len()..start]);
                    rng = splitmix(rng);
                    let last = &data.current[start..];
                    let keep = usize::try_from(rng % (last.len() as u64 + 1)).unwrap_or(0);
                    kept.extend_from_slice(&last[..keep]);
                }
            }
            // Test-only mutants of this simulated disk (`.ci/checks.d/mq.sh`): the power-loss
            // suite must fail with either of them.
            #[cfg(tierkit_mutant = "keep_unsynced")]
            kept.clone_from(&data.current);
            #[cfg(tierkit_mutant = "drop_synced")]
            kept.truncate(data.durable.len().saturating_sub(1));
            data.current.clone_from(&kept);
            data.durable = kept;
            data.last_write_start = None;
        }
        st.locked = false;
        st.ops_left = None;
    }

    /// Cuts the power after `ops` more mutating operations (writes, truncations, syncs,
    /// creations, renames, removals): from then on each of them fails, as if the machine had
    /// stopped mid-operation. [`SimDir::crash`] restores power.
    pub fn power_cut_after(&self, ops: u64) {
        self.state.lock().ops_left = Some(ops);
    }

    /// Limits the bytes all files may hold together (`None`: unlimited). An append that would
    /// pass the limit writes a part of its bytes, then fails with `StorageFull`, like a full
    /// disk.
    pub fn set_capacity(&self, bytes: Option<u64>) {
        self.state.lock().capacity = bytes;
    }

    fn tick(&self) -> io::Result<()> {
        self.alive()?;
        let mut st = self.state.lock();
        if st.read_only {
            return Err(io::Error::from(io::ErrorKind::ReadOnlyFilesystem));
        }
        match &mut st.ops_left {
            Some(0) => Err(io::Error::other("simulated power cut")),
            Some(n) => {
                *n -= 1;
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Simulates a process crash (not a power loss): everything written survives, the lock is
    /// released, and handles made before it stop working.
    pub fn kill_process(&self) {
        let mut st = self.state.lock();
        st.locked = false;
        st.epoch += 1;
    }

    /// Makes every following `sync` fail (or succeed again), to test fsync-failure handling.
    pub fn set_fail_sync(&self, fail: bool) {
        self.fail_sync.store(fail, Ordering::SeqCst);
    }

    /// How many file syncs succeeded so far.
    #[must_use]
    pub fn sync_count(&self) -> u64 {
        self.state.lock().syncs
    }

    /// Overwrites bytes of `name` (both cached and durable copies) for corruption tests.
    pub fn corrupt(&self, name: &str, pos: usize, bytes: &[u8]) {
        let mut st = self.state.lock();
        let Some(id) = st.names.get(name).copied() else {
            return;
        };
        if let Some(f) = st.files.get_mut(&id) {
            for (i, b) in bytes.iter().enumerate() {
                if let Some(x) = f.current.get_mut(pos + i) {
                    *x = *b;
                }
                if let Some(x) = f.durable.get_mut(pos + i) {
                    *x = *b;
                }
            }
        }
    }

    /// Bytes all files hold now (what [`SimDir::set_capacity`] limits).
    #[must_use]
    pub fn used_bytes(&self) -> u64 {
        let st = self.state.lock();
        st.files.values().map(|f| f.current.len() as u64).sum()
    }

    /// Names of the files in the directory now.
    #[must_use]
    pub fn file_names(&self) -> Vec<String> {
        self.state.lock().names.keys().cloned().collect()
    }

    /// Removes `name` (as an operator's `rm` would; durable at once) for corruption tests.
    pub fn delete(&self, name: &str) {
        let mut st = self.state.lock();
        st.names.remove(name);
        st.durable_names.remove(name);
    }

    /// Current length of `name`, if it exists.
    #[must_use]
    pub fn file_len(&self, name: &str) -> Option<u64> {
        let st = self.state.lock();
        let id = st.names.get(name)?;
        st.files.get(id).map(|f| f.current.len() as u64)
    }

    /// Truncates `name` (both copies) for corruption tests.
    pub fn cut(&self, name: &str, len: usize) {
        let mut st = self.state.lock();
        let Some(id) = st.names.get(name).copied() else {
            return;
        };
        if let Some(f) = st.files.get_mut(&id) {
            f.current.truncate(len);
            f.durable.truncate(len);
        }
    }

    fn with_file<T>(&self, id: u64, f: impl FnOnce(&mut FileData) -> T) -> io::Result<T> {
        let mut st = self.state.lock();
        st.files
            .get_mut(&id)
            .map(f)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
    }
}

fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl StorageFile for SimFile {
    fn len(&self) -> io::Result<u64> {
        self.dir.alive()?;
        self.dir.with_file(self.id, |f| f.current.len() as u64)
    }
    fn read_exact_at(&self, buf: &mut [u8], pos: u64) -> io::Result<()> {
        self.dir.alive()?;
        self.dir.with_file(self.id, |f| {
            let start = usize::try_from(pos).ok().filter(|p| *p <= f.current.len());
            match start.and_then(|s| f.current.get(s..s + buf.len())) {
                Some(src) => {
                    buf.copy_from_slice(src);
                    Ok(())
                }
                None => Err(io::Error::from(io::ErrorKind::UnexpectedEof)),
            }
        })?
    }
    fn append(&self, data: &[u8]) -> io::Result<()> {
        self.dir.tick()?;
        let room = {
            let st = self.dir.state.lock();
            let used: u64 = st.files.values().map(|f| f.current.len() as u64).sum();
            st.capacity.map(|c| c.saturating_sub(used))
        };
        let fits = room.is_none_or(|r| data.len() as u64 <= r);
        let n = if fits {
            data.len()
        } else {
            room.and_then(|r| usize::try_from(r).ok()).unwrap_or(0)
        };
        self.dir.with_file(self.id, |f| {
            f.last_write_start = Some(f.current.len());
            f.current.extend_from_slice(&data[..n.min(data.len())]);
        })?;
        if fits {
            Ok(())
        } else {
            Err(io::Error::from(io::ErrorKind::StorageFull))
        }
    }
    fn truncate(&self, len: u64) -> io::Result<()> {
        let len = usize::try_from(len).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        self.dir.tick()?;
        self.dir.with_file(self.id, |f| {
            f.current.truncate(len);
            f.last_write_start = None;
        })
    }
    fn sync(&self) -> io::Result<()> {
        self.dir.alive()?;
        if self.dir.fail_sync.load(Ordering::SeqCst) {
            return Err(io::Error::other("simulated fsync failure"));
        }
        self.dir.tick()?;
        self.dir.with_file(self.id, |f| {
            f.durable.clone_from(&f.current);
            f.last_write_start = None;
        })?;
        self.dir.state.lock().syncs += 1;
        Ok(())
    }
}

impl StorageDir for SimDir {
    fn list(&self) -> io::Result<Vec<String>> {
        self.alive()?;
        Ok(self.state.lock().names.keys().cloned().collect())
    }
    fn open(&self, name: &str, create: bool) -> io::Result<Arc<dyn StorageFile>> {
        self.alive()?;
        if create && !self.state.lock().names.contains_key(name) {
            self.tick()?;
        }
        let mut st = self.state.lock();
        let id = match st.names.get(name) {
            Some(id) => *id,
            None if create => {
                st.next_id += 1;
                let id = st.next_id;
                st.files.insert(id, FileData::default());
                st.names.insert(name.to_owned(), id);
                id
            }
            None => return Err(io::Error::from(io::ErrorKind::NotFound)),
        };
        Ok(Arc::new(SimFile {
            id,
            dir: self.clone(),
        }))
    }
    fn remove(&self, name: &str) -> io::Result<()> {
        self.tick()?;
        let mut st = self.state.lock();
        st.names
            .remove(name)
            .map(|_| ())
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
    }
    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        self.tick()?;
        let mut st = self.state.lock();
        let id = st
            .names
            .remove(from)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        st.names.insert(to.to_owned(), id);
        Ok(())
    }
    fn sync_dir(&self) -> io::Result<()> {
        self.alive()?;
        if self.fail_sync.load(Ordering::SeqCst) {
            return Err(io::Error::other("simulated fsync failure"));
        }
        self.tick()?;
        let mut st = self.state.lock();
        st.durable_names = st.names.clone();
        Ok(())
    }
    fn try_lock(&self) -> io::Result<bool> {
        self.alive()?;
        let mut st = self.state.lock();
        if st.locked {
            return Ok(false);
        }
        st.locked = true;
        Ok(true)
    }
    fn unlock(&self) {
        // A handle from before a crash no longer holds the lock (the crash released it).
        if self.alive().is_ok() {
            self.state.lock().locked = false;
        }
    }
}
