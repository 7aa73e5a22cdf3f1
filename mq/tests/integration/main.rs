//! Integration tests of tierkit-mq: one binary (see STYLE.md rule 15).
#![allow(clippy::unwrap_used)]
// Test code converts small loop counters freely.
#![allow(clippy::cast_possible_truncation)]

mod asynchronous;
mod config;
mod crash;
mod damage;
mod delivery;
mod disk_full;
mod fuzz_corpus;
mod lock;
mod model;
mod power_loss;
mod recovery;
mod retention;
mod write_buffer;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tierkit_mq::{StorageDir, StorageFile};

/// A directory under the system temp dir, removed on drop.
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub(crate) fn new(tag: &str) -> Self {
        static N: AtomicU64 = AtomicU64::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("tierkit-mq-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }
    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `n`, or a tenth of it when `TIERKIT_MQ_QUICK` is set: the seed counts of the power-loss
/// and SIGKILL suites, cut for `cargo mutants` runs (one suite run per mutant; see the README).
pub(crate) fn scaled(n: u64) -> u64 {
    if std::env::var_os("TIERKIT_MQ_QUICK").is_some() {
        n.div_ceil(10)
    } else {
        n
    }
}

/// Mounts a tmpfs of `size` on `dir`; `false` (with a loud message) when not permitted.
pub(crate) fn mount_tmpfs(dir: &std::path::Path, size: &str) -> bool {
    let out = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(dir)
        .output();
    match out {
        Ok(o) if o.status.success() => true,
        Ok(o) => {
            eprintln!(
                "\n*** SKIPPED: cannot mount a tmpfs here ({}); the simulated-ENOSPC tests \
                 above cover the same paths ***\n",
                String::from_utf8_lossy(&o.stderr).trim()
            );
            false
        }
        Err(e) => {
            eprintln!("\n*** SKIPPED: no `mount` command ({e}) ***\n");
            false
        }
    }
}

/// A payload that encodes its own offset, so any mix-up is visible.
pub(crate) fn payload(offset: u64, len: usize) -> Vec<u8> {
    let mut v = offset.to_le_bytes().to_vec();
    v.resize(len.max(8), (offset % 251) as u8);
    v
}

/// Called by a [`HookDir`] before each operation with its name and the file's name (empty for
/// the directory itself): `"open"`, `"create"` (an open that may create), `"append"`,
/// `"truncate"`, `"sync"`, `"remove"`, `"rename"` (the source name), `"sync_dir"`, `"unlock"`.
/// An error fails the operation (the result of `"unlock"` is ignored).
pub(crate) type Hook = dyn Fn(&str, &str) -> io::Result<()> + Send + Sync;

/// A directory that passes every operation to `inner` after asking its hook: a test fails or
/// holds chosen operations, or counts them.
#[derive(Clone)]
pub(crate) struct HookDir {
    inner: Arc<dyn StorageDir>,
    hook: Arc<Hook>,
}

impl HookDir {
    /// A handle on `inner` whose operations ask `hook` first.
    pub(crate) fn around(
        inner: Arc<dyn StorageDir>,
        hook: impl Fn(&str, &str) -> io::Result<()> + Send + Sync + 'static,
    ) -> Arc<dyn StorageDir> {
        Arc::new(Self {
            inner,
            hook: Arc::new(hook),
        })
    }
}

impl fmt::Debug for HookDir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HookDir").finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct HookFile {
    inner: Arc<dyn StorageFile>,
    name: String,
    dir: HookDir,
}

impl StorageFile for HookFile {
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }
    fn read_exact_at(&self, buf: &mut [u8], pos: u64) -> io::Result<()> {
        self.inner.read_exact_at(buf, pos)
    }
    fn append(&self, data: &[u8]) -> io::Result<()> {
        (self.dir.hook)("append", &self.name)?;
        self.inner.append(data)
    }
    fn truncate(&self, len: u64) -> io::Result<()> {
        (self.dir.hook)("truncate", &self.name)?;
        self.inner.truncate(len)
    }
    fn sync(&self) -> io::Result<()> {
        (self.dir.hook)("sync", &self.name)?;
        self.inner.sync()
    }
}

impl StorageDir for HookDir {
    fn list(&self) -> io::Result<Vec<String>> {
        self.inner.list()
    }
    fn open(&self, name: &str, create: bool) -> io::Result<Arc<dyn StorageFile>> {
        (self.hook)(if create { "create" } else { "open" }, name)?;
        Ok(Arc::new(HookFile {
            inner: self.inner.open(name, create)?,
            name: name.to_owned(),
            dir: self.clone(),
        }))
    }
    fn remove(&self, name: &str) -> io::Result<()> {
        (self.hook)("remove", name)?;
        self.inner.remove(name)
    }
    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        (self.hook)("rename", from)?;
        self.inner.rename(from, to)
    }
    fn sync_dir(&self) -> io::Result<()> {
        (self.hook)("sync_dir", "")?;
        self.inner.sync_dir()
    }
    fn try_lock(&self) -> io::Result<bool> {
        self.inner.try_lock()
    }
    fn try_lock_shared(&self) -> io::Result<bool> {
        self.inner.try_lock_shared()
    }
    fn unlock(&self) {
        let _ = (self.hook)("unlock", "");
        self.inner.unlock();
    }
}

#[test]
fn shared_types_are_send_sync() {
    fn check<T: Send + Sync>() {}
    check::<tierkit_mq::Queue>();
    check::<tierkit_mq::Producer>();
    check::<tierkit_mq::Consumer>();
    check::<tierkit_mq::SimDir>();
    check::<tierkit_mq::Error>();
    check::<tierkit_mq::Delivery>();
}
