//! The small file-system trait the log is written through.
//!
//! The real implementation is [`StdDir`]; tests plug in `SimDir` (feature `sim`), which
//! models what survives a power loss.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One open file: positional reads, appends, truncation and fsync.
#[allow(clippy::len_without_is_empty)] // a file length query; emptiness is never asked
pub trait StorageFile: Send + Sync + fmt::Debug {
    /// Current length in bytes (including bytes not yet synced).
    ///
    /// # Errors
    /// Any I/O error.
    fn len(&self) -> io::Result<u64>;
    /// Fills `buf` from byte `pos`; fails with `UnexpectedEof` past the end.
    ///
    /// # Errors
    /// Any I/O error.
    fn read_exact_at(&self, buf: &mut [u8], pos: u64) -> io::Result<()>;
    /// Appends `data` at the end of the file.
    ///
    /// # Errors
    /// Any I/O error; `StorageFull` when the disk is full.
    fn append(&self, data: &[u8]) -> io::Result<()>;
    /// Cuts the file to `len` bytes.
    ///
    /// # Errors
    /// Any I/O error.
    fn truncate(&self, len: u64) -> io::Result<()>;
    /// Makes every byte written so far durable (`fdatasync`).
    ///
    /// # Errors
    /// Any I/O error. After an error the caller must assume unsynced bytes are lost.
    fn sync(&self) -> io::Result<()>;
}

/// A directory of files.
pub trait StorageDir: Send + Sync + fmt::Debug {
    /// Names of the regular files in the directory.
    ///
    /// # Errors
    /// Any I/O error.
    fn list(&self) -> io::Result<Vec<String>>;
    /// Opens `name`, creating it empty if `create` is set.
    ///
    /// # Errors
    /// Any I/O error; `NotFound` if it is missing and `create` is not set.
    fn open(&self, name: &str, create: bool) -> io::Result<Arc<dyn StorageFile>>;
    /// Removes `name`.
    ///
    /// # Errors
    /// Any I/O error.
    fn remove(&self, name: &str) -> io::Result<()>;
    /// Atomically renames `from` to `to`, replacing `to`.
    ///
    /// # Errors
    /// Any I/O error.
    fn rename(&self, from: &str, to: &str) -> io::Result<()>;
    /// Makes creations, removals and renames durable (fsync of the directory).
    ///
    /// # Errors
    /// Any I/O error.
    fn sync_dir(&self) -> io::Result<()>;
    /// Takes an exclusive lock held until [`StorageDir::unlock`] (or until the process
    /// exits). It must not depend on a file that can be deleted while it is held.
    ///
    /// Returns `Ok(false)` when someone else holds it.
    ///
    /// # Errors
    /// Any I/O error.
    fn try_lock(&self) -> io::Result<bool>;
    /// Takes a shared lock (for a read-only handle): several shared holders may coexist, never
    /// with an exclusive one. The default takes the exclusive lock.
    ///
    /// # Errors
    /// Any I/O error.
    fn try_lock_shared(&self) -> io::Result<bool> {
        self.try_lock()
    }
    /// Releases the lock taken by [`StorageDir::try_lock`] or [`StorageDir::try_lock_shared`].
    fn unlock(&self);
}

/// A real directory on disk.
///
/// Its lock is an `flock` on the directory itself (a read-only handle of it): no lock file that
/// an operator could delete while a queue runs, and released by the kernel when the process
/// dies.
pub struct StdDir {
    path: PathBuf,
    read_only: bool,
    lock: parking_lot::Mutex<Option<File>>,
}

impl fmt::Debug for StdDir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StdDir")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl StdDir {
    /// Opens (creating if needed) the directory at `path`.
    ///
    /// # Errors
    /// Any I/O error creating the directory.
    pub fn new(path: impl AsRef<Path>) -> io::Result<Self> {
        let path = path.as_ref().to_path_buf();
        fs::create_dir_all(&path)?;
        Ok(Self {
            path,
            read_only: false,
            lock: parking_lot::Mutex::new(None),
        })
    }

    /// Opens the existing directory at `path` for reading only: files are opened read-only
    /// (so it works on a read-only mount) and every write fails.
    ///
    /// # Errors
    /// `NotFound` if the directory does not exist, or any I/O error reading it.
    pub fn read_only(path: impl AsRef<Path>) -> io::Result<Self> {
        let path = path.as_ref().to_path_buf();
        if !fs::metadata(&path)?.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                format!("{} is not a directory", path.display()),
            ));
        }
        Ok(Self {
            path,
            read_only: true,
            lock: parking_lot::Mutex::new(None),
        })
    }

    fn lock_with(&self, shared: bool) -> io::Result<bool> {
        // A read-only handle of the directory itself: works on a read-only mount, and the
        // lock cannot be undone by unlinking a file.
        let dir = File::open(&self.path)?;
        let taken = if shared {
            dir.try_lock_shared()
        } else {
            dir.try_lock()
        };
        match taken {
            Ok(()) => {
                *self.lock.lock() = Some(dir);
                Ok(true)
            }
            Err(fs::TryLockError::WouldBlock) => Ok(false),
            Err(fs::TryLockError::Error(e)) => Err(e),
        }
    }
}

#[derive(Debug)]
struct StdFile(File);

impl StorageFile for StdFile {
    fn len(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }
    fn read_exact_at(&self, buf: &mut [u8], pos: u64) -> io::Result<()> {
        self.0.read_exact_at(buf, pos)
    }
    fn append(&self, data: &[u8]) -> io::Result<()> {
        (&self.0).write_all(data)
    }
    fn truncate(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }
    fn sync(&self) -> io::Result<()> {
        self.0.sync_data()
    }
}

impl StorageDir for StdDir {
    fn list(&self) -> io::Result<Vec<String>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.path)? {
            let entry = entry?;
            if entry.file_type()?.is_file()
                && let Some(name) = entry.file_name().to_str()
            {
                out.push(name.to_owned());
            }
        }
        Ok(out)
    }
    fn open(&self, name: &str, create: bool) -> io::Result<Arc<dyn StorageFile>> {
        let file = if self.read_only {
            OpenOptions::new().read(true).open(self.path.join(name))?
        } else {
            OpenOptions::new()
                .read(true)
                .append(true)
                .create(create)
                .open(self.path.join(name))?
        };
        Ok(Arc::new(StdFile(file)))
    }
    fn remove(&self, name: &str) -> io::Result<()> {
        fs::remove_file(self.path.join(name))
    }
    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        fs::rename(self.path.join(from), self.path.join(to))
    }
    fn sync_dir(&self) -> io::Result<()> {
        File::open(&self.path)?.sync_all()
    }
    fn try_lock(&self) -> io::Result<bool> {
        self.lock_with(false)
    }
    fn try_lock_shared(&self) -> io::Result<bool> {
        self.lock_with(true)
    }
    fn unlock(&self) {
        *self.lock.lock() = None;
    }
}
