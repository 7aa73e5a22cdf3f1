//! One consumer group's delivery and acknowledgement state, and its persistence.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use bytes::{BufMut, BytesMut};

use crate::report::{RecoveryReport, Repair};
use crate::storage::{StorageDir, StorageFile};
use crate::{Error, Result};

const MAGIC: &[u8; 4] = b"TKGR";
/// Version 3 adds the journal epoch (see `journal.rs`).
const VERSION: u32 = 3;

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
    /// Epoch of the newest snapshot written or read (0: none yet).
    pub(crate) journal_epoch: u64,
    /// Journal records appended by this handle (the group commit's sequence numbers).
    pub(crate) journal_seq: u64,
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
    /// non-`Always` policy) and places the cursor. A group that existed before is checked
    /// first: offsets it had not acknowledged that are gone, or acknowledgements beyond the
    /// log's end, are reported.
    pub(crate) fn clamp_reporting(
        &mut self,
        log_start: u64,
        log_end: u64,
        ids: (&str, &str),
        report: &mut RecoveryReport,
    ) {
        let (topic, group) = ids;
        if self.committed < log_start && log_start <= log_end {
            let acked = self.acked.range(..log_start).count() as u64;
            report.push(Repair::MessagesMissing {
                topic: topic.to_owned(),
                group: group.to_owned(),
                from: self.committed,
                to: log_start,
                unacknowledged: log_start - self.committed - acked,
            });
        }
        let ahead = self.committed.max(self.acked.last().map_or(0, |a| a + 1));
        if ahead > log_end {
            report.push(Repair::GroupAheadOfLog {
                topic: topic.to_owned(),
                group: group.to_owned(),
                committed: self.committed,
                log_end,
            });
        }
        self.clamp(log_start, log_end);
    }

    /// Drops state that refers to offsets the log no longer holds and places the cursor.
    pub(crate) fn clamp(&mut self, log_start: u64, log_end: u64) {
        self.committed = self.committed.clamp(log_start.min(log_end), log_end);
        let committed = self.committed;
        self.acked.retain(|o| *o < log_end && *o >= committed);
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
        out.put_u64_le(self.journal_epoch);
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
            journal_epoch: r.u64().ok_or_else(bad)?,
            ..Self::default()
        };
        st.committed = r.u64().ok_or_else(bad)?;
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

    /// Loads the persisted state of `group` (snapshot, then journal), or `None` if the group
    /// has no files. Missing or damaged files are reported (see [`Repair`]).
    pub(crate) fn load(
        dir: &Arc<dyn StorageDir>,
        topic: &str,
        group: &str,
        read_only: bool,
        report: &mut RecoveryReport,
    ) -> Result<Option<Self>> {
        let name = file_name(topic, group);
        let ops = FileOps {
            open: "open group state",
            read: "read group state",
            too_large: "group state file too large",
        };
        let snapshot = read_whole(&**dir, &name, &ops)?
            .map(|(_, data)| Self::decode(&name, &data))
            .transpose()?;
        let journal = crate::journal::read(&**dir, topic, group)?;
        let ids = (topic, group);
        let missing = |report: &mut RecoveryReport, state: bool| {
            let (topic, group) = (topic.to_owned(), group.to_owned());
            report.push(if state {
                Repair::StateMissing { topic, group }
            } else {
                Repair::JournalMissing { topic, group }
            });
        };
        let st = match (snapshot, journal) {
            (None, None) => return Ok(None),
            (Some(st), None) => {
                // Every snapshot is followed by a journal of its epoch.
                missing(report, false);
                st
            }
            (snapshot, Some(j)) => {
                // A journal of epoch e follows snapshot e (epoch 0: no snapshot yet). A journal
                // older than its snapshot (a crash while folding) replays harmlessly.
                let snap_epoch = snapshot.as_ref().map_or(0, |s| s.journal_epoch);
                if j.epoch > snap_epoch {
                    missing(report, true);
                }
                let mut st = snapshot.unwrap_or_default();
                st.replay(dir, ids, j, read_only, report)?;
                st
            }
        };
        Ok(Some(st))
    }

    /// Writes the state atomically (temp file, fsync, rename, directory fsync) as snapshot
    /// `epoch`.
    pub(crate) fn persist(
        &mut self,
        dir: &Arc<dyn StorageDir>,
        topic: &str,
        group: &str,
        epoch: u64,
    ) -> Result<()> {
        let old = std::mem::replace(&mut self.journal_epoch, epoch);
        let bytes = self.encode();
        self.journal_epoch = old;
        write_atomically(
            &**dir,
            &file_name(topic, group),
            &bytes,
            "write group state",
        )
        .map(drop)
    }
}

/// Writes `name` atomically with `data`: a temporary file is written and fsynced, renamed over
/// `name`, and the directory fsynced. Returns the file (open on its new name). On failure
/// before the rename nothing changed (the temporary file is removed); after it, the new file
/// may or may not survive a power loss, and either version is consistent for the callers.
pub(crate) fn write_atomically(
    dir: &dyn StorageDir,
    name: &str,
    data: &[u8],
    op: &'static str,
) -> Result<Arc<dyn StorageFile>> {
    let tmp = format!("{name}.tmp");
    let written = dir.open(&tmp, true).and_then(|file| {
        file.truncate(0)?;
        file.append(data)?;
        file.sync()?;
        dir.rename(&tmp, name)?;
        Ok(file)
    });
    let file = match written {
        Ok(f) => f,
        Err(e) => {
            let _ = dir.remove(&tmp);
            return Err(Error::io(op)(e));
        }
    };
    dir.sync_dir().map_err(Error::io(op))?;
    Ok(file)
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

/// Group names of `topic` found among `names` (from state snapshots and ack journals).
pub(crate) fn group_files(topic: &str, names: &[String]) -> Vec<String> {
    let prefix = format!("{topic}.");
    let mut groups: Vec<String> = names
        .iter()
        .filter_map(|n| {
            let rest = n.strip_prefix(&prefix)?;
            rest.strip_suffix(".grp")
                .or_else(|| rest.strip_suffix(".ack"))
                .map(str::to_owned)
        })
        .filter(|g| !g.contains('.'))
        .collect();
    groups.sort();
    groups.dedup();
    groups
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn sample() -> GroupState {
        let mut st = GroupState {
            committed: 10,
            journal_epoch: 3,
            ..GroupState::default()
        };
        st.acked.extend([12, 15]);
        st.attempts.insert(11, 2);
        st.inflight.insert(13, (99, 4));
        st
    }

    #[test]
    fn snapshots_round_trip_and_every_truncation_or_flip_is_refused() {
        let bytes = sample().encode();
        let back = GroupState::decode("g", &bytes).unwrap();
        assert_eq!((back.committed, back.journal_epoch), (10, 3));
        assert_eq!(back.acked.iter().copied().collect::<Vec<_>>(), [12, 15]);
        let mut counts: Vec<_> = back.attempts.into_iter().collect();
        counts.sort_unstable();
        assert_eq!(counts, [(11, 2), (13, 4)], "in-flight counts are saved too");
        for len in 0..bytes.len() {
            assert!(
                GroupState::decode("g", &bytes[..len]).is_err(),
                "cut at {len}"
            );
        }
        for i in 0..bytes.len() {
            let mut bad = bytes.to_vec();
            bad[i] ^= 0x10;
            assert!(GroupState::decode("g", &bad).is_err(), "flip at {i}");
        }
    }

    #[test]
    fn a_short_snapshot_with_a_matching_checksum_is_refused_not_read() {
        // Damage that keeps the checksum right: every prefix of a snapshot's first 8 bytes
        // (magic and version), followed by its own CRC-32C.
        let bytes = sample().encode();
        for len in 0..8 {
            let mut data = bytes[..len].to_vec();
            data.extend_from_slice(&crc32c::crc32c(&bytes[..len]).to_le_bytes());
            assert!(
                matches!(
                    GroupState::decode("g", &data),
                    Err(Error::Corrupt {
                        reason: "group state file is truncated",
                        ..
                    })
                ),
                "{len} bytes"
            );
        }
    }

    #[test]
    fn clamp_keeps_what_the_log_holds_and_places_the_cursor() {
        // Log holds 5..20: everything of the sample is inside it.
        let mut st = sample();
        st.clamp(5, 20);
        assert_eq!((st.committed, st.cursor), (10, 10));
        assert_eq!(st.acked.iter().copied().collect::<Vec<_>>(), [12, 15]);
        assert_eq!(st.attempts.get(&11), Some(&2));
        // Log shortened to 0..14: acks and counts at or past 14 are dropped.
        let mut st = sample();
        st.attempts.insert(14, 1);
        st.clamp(0, 14);
        assert_eq!(st.acked.iter().copied().collect::<Vec<_>>(), [12]);
        assert_eq!(st.attempts.get(&14), None);
        assert_eq!(st.attempts.get(&11), Some(&2));
        // Log shortened below the committed offset.
        let mut st = sample();
        st.clamp(0, 8);
        assert_eq!((st.committed, st.cursor), (8, 8));
        assert!(st.acked.is_empty() && st.attempts.is_empty());
        // Log starts past the committed offset: acked offsets right there are skipped over.
        let mut st = sample();
        st.acked.insert(30);
        st.acked.insert(31);
        st.attempts.insert(2, 1);
        st.clamp(30, 40);
        assert_eq!((st.committed, st.cursor), (32, 32));
        assert!(st.acked.is_empty());
        assert_eq!(st.attempts.get(&2), None, "below the committed offset");
    }
}
