//! One consumer group's delivery and acknowledgement state, and its persistence.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use bytes::{BufMut, BytesMut};

use crate::storage::{StorageDir, StorageFile};
use crate::{Error, Result};

const MAGIC: &[u8; 4] = b"TKGR";
const VERSION: u32 = 2;

/// Acknowledgement state of one group over one topic.
#[derive(Debug, Default)]
pub(crate) struct GroupState {
    /// Every offset below this is acknowledged (or dead-lettered).
    pub(crate) committed: u64,
    /// Acknowledged offsets at or above `committed`.
    pub(crate) acked: BTreeSet<u64>,
    /// Next offset never handed out since open.
    pub(crate) cursor: u64,
    /// Offset -> (visibility deadline, delivery count).
    pub(crate) inflight: HashMap<u64, (u64, u32)>,
    /// (deadline, offset) of in-flight deliveries.
    pub(crate) deadlines: BTreeSet<(u64, u64)>,
    /// (ready time, offset) of messages waiting for a redelivery or their not-before time.
    pub(crate) waiting: BTreeSet<(u64, u64)>,
    /// Delivery counts of delivered, unacknowledged messages that are not in flight.
    pub(crate) attempts: HashMap<u64, u32>,
    pub(crate) redeliveries: u64,
    pub(crate) dead_lettered: u64,
    /// Unacknowledged messages deleted by size or age retention since open.
    pub(crate) retention_dropped: u64,
    /// The open acknowledgement journal (see `journal.rs`).
    pub(crate) journal: Option<crate::journal::Journal>,
}

impl GroupState {
    /// Marks `offset` acknowledged and advances `committed` over the contiguous run.
    pub(crate) fn mark_acked(&mut self, offset: u64) {
        self.attempts.remove(&offset);
        if offset < self.committed {
            return;
        }
        self.acked.insert(offset);
        while self.acked.remove(&self.committed) {
            self.committed += 1;
        }
    }

    pub(crate) fn is_acked(&self, offset: u64) -> bool {
        offset < self.committed || self.acked.contains(&offset)
    }

    /// Forgets offsets below `start`, which size or age retention deleted; returns how many of
    /// them were not acknowledged.
    pub(crate) fn drop_below(&mut self, start: u64) -> u64 {
        if self.committed >= start {
            return 0;
        }
        let kept = self.acked.split_off(&start);
        let dropped = start - self.committed - self.acked.len() as u64;
        self.acked = kept;
        self.attempts.retain(|o, _| *o >= start);
        self.committed = start;
        while self.acked.remove(&self.committed) {
            self.committed += 1;
        }
        self.cursor = self.cursor.max(self.committed);
        self.retention_dropped += dropped;
        dropped
    }

    /// Drops state that refers to offsets the log no longer holds (after a power loss with a
    /// non-`Always` policy) and places the cursor.
    pub(crate) fn clamp(&mut self, log_start: u64, log_end: u64) {
        self.committed = self.committed.clamp(log_start.min(log_end), log_end);
        self.acked.retain(|o| *o < log_end);
        self.attempts
            .retain(|o, _| *o < log_end && *o >= self.committed);
        while self.acked.remove(&self.committed) {
            self.committed += 1;
        }
        self.cursor = self.committed;
    }

    fn encode(&self) -> BytesMut {
        let mut out = BytesMut::new();
        out.put_slice(MAGIC);
        out.put_u32_le(VERSION);
        out.put_u64_le(self.committed);
        out.put_u64_le(self.acked.len() as u64);
        for o in &self.acked {
            out.put_u64_le(*o);
        }
        // Delivery counts of everything delivered but unacknowledged, in flight or not.
        let mut counts: Vec<(u64, u32)> = self.attempts.iter().map(|(o, c)| (*o, *c)).collect();
        counts.extend(self.inflight.iter().map(|(o, (_, c))| (*o, *c)));
        out.put_u64_le(counts.len() as u64);
        for (o, c) in counts {
            out.put_u64_le(o);
            out.put_u32_le(c);
        }
        let crc = crc32c::crc32c(&out);
        out.put_u32_le(crc);
        out
    }

    fn decode(name: &str, data: &[u8]) -> Result<Self> {
        let corrupt = |reason| Error::Corrupt {
            file: name.to_owned(),
            position: 0,
            offset: 0,
            reason,
        };
        let (body, crc) = data
            .split_at_checked(data.len().saturating_sub(4))
            .ok_or_else(|| corrupt("short"))?;
        if body.len() < 8 || crc.len() != 4 {
            return Err(corrupt("group state file is truncated"));
        }
        if crc32c::crc32c(body) != u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]) {
            return Err(corrupt("group state checksum mismatch"));
        }
        if &body[..4] != MAGIC {
            return Err(corrupt("bad group state magic"));
        }
        let version = u32::from_le_bytes([body[4], body[5], body[6], body[7]]);
        if version != VERSION {
            return Err(Error::IncompatibleVersion {
                file: name.to_owned(),
                found: version,
                supported: VERSION,
            });
        }
        let mut r = Reader { data: body, pos: 8 };
        let bad = || corrupt("malformed group state");
        let mut st = Self {
            committed: r.u64().ok_or_else(bad)?,
            ..Self::default()
        };
        let n = r.u64().ok_or_else(bad)?;
        for _ in 0..n {
            st.acked.insert(r.u64().ok_or_else(bad)?);
        }
        let n = r.u64().ok_or_else(bad)?;
        for _ in 0..n {
            let o = r.u64().ok_or_else(bad)?;
            let c = r.u32().ok_or_else(bad)?;
            st.attempts.insert(o, c);
        }
        Ok(st)
    }

    /// Loads the persisted state of `group`, or a fresh one.
    pub(crate) fn load(dir: &dyn StorageDir, topic: &str, group: &str) -> Result<Self> {
        let name = file_name(topic, group);
        let ops = FileOps {
            open: "open group state",
            read: "read group state",
            too_large: "group state file too large",
        };
        let Some((_, data)) = read_whole(dir, &name, &ops)? else {
            return Ok(Self::default());
        };
        let mut st = Self::decode(&name, &data)?;
        st.replay_journal(dir, topic, group)?;
        Ok(st)
    }

    /// Writes the state atomically (temp file + rename); fsyncs when `durable`.
    pub(crate) fn persist(
        &self,
        dir: &Arc<dyn StorageDir>,
        topic: &str,
        group: &str,
        durable: bool,
    ) -> Result<()> {
        let name = file_name(topic, group);
        let tmp = format!("{name}.tmp");
        let file = dir
            .open(&tmp, true)
            .map_err(Error::io("write group state"))?;
        file.truncate(0).map_err(Error::io("write group state"))?;
        file.append(&self.encode())
            .map_err(Error::io("write group state"))?;
        // Always synced, so the name never points at a file whose bytes a power loss ate; with
        // `durable` unset only the rename may be lost (the old state comes back: redelivery).
        file.sync().map_err(Error::io("fsync group state"))?;
        dir.rename(&tmp, &name)
            .map_err(Error::io("rename group state"))?;
        if durable {
            dir.sync_dir().map_err(Error::io("fsync directory"))?;
        }
        Ok(())
    }
}

/// What to call the steps of [`read_whole`] in its errors.
pub(crate) struct FileOps {
    pub(crate) open: &'static str,
    pub(crate) read: &'static str,
    pub(crate) too_large: &'static str,
}

/// An open file and all of its bytes.
pub(crate) type WholeFile = (Arc<dyn StorageFile>, Vec<u8>);

/// Opens `name` and reads all of it; `None` if it does not exist.
pub(crate) fn read_whole(
    dir: &dyn StorageDir,
    name: &str,
    ops: &FileOps,
) -> Result<Option<WholeFile>> {
    let file = match dir.open(name, false) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(Error::Io {
                op: ops.open,
                source: e,
            });
        }
    };
    let len = file.len().map_err(Error::io(ops.read))?;
    let len = usize::try_from(len).map_err(|_| Error::Corrupt {
        file: name.to_owned(),
        position: 0,
        offset: 0,
        reason: ops.too_large,
    })?;
    let mut data = vec![0u8; len];
    file.read_exact_at(&mut data, 0)
        .map_err(Error::io(ops.read))?;
    Ok(Some((file, data)))
}

pub(crate) fn file_name(topic: &str, group: &str) -> String {
    format!("{topic}.{group}.grp")
}

/// Group names of `topic` found among `names`.
pub(crate) fn group_files(topic: &str, names: &[String]) -> Vec<String> {
    let prefix = format!("{topic}.");
    names
        .iter()
        .filter_map(|n| {
            n.strip_prefix(&prefix)?
                .strip_suffix(".grp")
                .map(str::to_owned)
        })
        .filter(|g| !g.contains('.'))
        .collect()
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn u64(&mut self) -> Option<u64> {
        let b = self.data.get(self.pos..self.pos + 8)?;
        self.pos += 8;
        b.try_into().ok().map(u64::from_le_bytes)
    }
    fn u32(&mut self) -> Option<u32> {
        let b = self.data.get(self.pos..self.pos + 4)?;
        self.pos += 4;
        b.try_into().ok().map(u32::from_le_bytes)
    }
}
