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

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

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
