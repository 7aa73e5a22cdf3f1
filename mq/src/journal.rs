//! A consumer group's acknowledgement journal: small checksummed records appended per ack or
//! nack, replayed over the group's snapshot at open and folded into a new snapshot now and
//! then.
//!
//! ```text
//! file    = header | record*
//! header  = "TKAJ" | version: u32 LE | epoch: u64 LE | crc: u32 LE (CRC-32C of the 16 bytes before)
//! record  = kind: u8 | offset: u64 LE | count: u32 LE | crc: u32 LE (CRC-32C of the 13 bytes before)
//! ```
//!
//! The epoch ties the journal to the snapshot (`.grp`) it follows: a group's first journal has
//! epoch 0 and no snapshot; folding the journal writes snapshot `e + 1`, then a fresh journal
//! `e + 1`, each through a temporary file and a rename. Replaying is idempotent (acks, maximum
//! delivery counts, maximum floors), so a journal older than its snapshot (a crash between
//! the two renames) is replayed harmlessly. A missing file is detected from the other's epoch
//! and reported, never ignored.
//!
//! Concurrent acknowledgements share fsyncs: each appends under the group's lock, then waits
//! for one fsync that covers its record ([`Commit`]), as producers share log fsyncs.

use std::sync::Arc;

use parking_lot::{Condvar, Mutex};

use crate::group::{FileOps, GroupState, read_whole, write_atomically};
use crate::report::{RecoveryReport, Repair};
use crate::storage::{StorageDir, StorageFile};
use crate::{Error, Result};

/// Records appended between two snapshots before the journal is folded into a new snapshot.
pub(crate) const COMPACT_EVERY: u64 = 4_096;

const MAGIC: &[u8; 4] = b"TKAJ";
const VERSION: u32 = 1;
pub(crate) const HEADER: usize = 20;
pub(crate) const RECORD: usize = 17;
const KIND_ACK: u8 = 1;
const KIND_ATTEMPTS: u8 = 2;
const KIND_FLOOR: u8 = 3;

/// One journaled change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Entry {
    /// `offset` was acknowledged (or dead-lettered).
    Ack(u64),
    /// `offset` was delivered `count` times and is waiting for redelivery.
    Attempts(u64, u32),
    /// Size or age retention deletes every offset below this one: the group skips them.
    Floor(u64),
}

/// The open journal file of a group.
#[derive(Debug)]
pub(crate) struct Journal {
    file: Arc<dyn StorageFile>,
    /// Records in the file.
    records: u64,
    /// Records after which the next fold is tried (moves on when a fold fails).
    compact_at: u64,
}

pub(crate) fn file_name(topic: &str, group: &str) -> String {
    format!("{topic}.{group}.ack")
}

fn header(epoch: u64) -> [u8; HEADER] {
    let mut h = [0u8; HEADER];
    h[..4].copy_from_slice(MAGIC);
    h[4..8].copy_from_slice(&VERSION.to_le_bytes());
    h[8..16].copy_from_slice(&epoch.to_le_bytes());
    let crc = crc32c::crc32c(&h[..16]);
    h[16..].copy_from_slice(&crc.to_le_bytes());
    h
}

fn encode(e: Entry, out: &mut Vec<u8>) {
    let (kind, offset, count) = match e {
        Entry::Ack(o) => (KIND_ACK, o, 0),
        Entry::Attempts(o, c) => (KIND_ATTEMPTS, o, c),
        Entry::Floor(o) => (KIND_FLOOR, o, 0),
    };
    let start = out.len();
    out.push(kind);
    out.extend_from_slice(&offset.to_le_bytes());
    out.extend_from_slice(&count.to_le_bytes());
    let crc = crc32c::crc32c(&out[start..]);
    out.extend_from_slice(&crc.to_le_bytes());
}

fn decode(rec: &[u8]) -> Option<Entry> {
    let body = rec.get(..RECORD - 4)?;
    let crc = u32::from_le_bytes(rec.get(RECORD - 4..RECORD)?.try_into().ok()?);
    if crc32c::crc32c(body) != crc {
        return None;
    }
    let offset = u64::from_le_bytes(body.get(1..9)?.try_into().ok()?);
    let count = u32::from_le_bytes(body.get(9..13)?.try_into().ok()?);
    match body[0] {
        KIND_ACK => Some(Entry::Ack(offset)),
        KIND_ATTEMPTS => Some(Entry::Attempts(offset, count)),
        KIND_FLOOR => Some(Entry::Floor(offset)),
        _ => None,
    }
}

/// A journal file as read at open.
pub(crate) struct Loaded {
    pub(crate) file: Arc<dyn StorageFile>,
    pub(crate) epoch: u64,
    data: Vec<u8>,
}

/// Reads the journal of `group`, if any, and checks its header.
pub(crate) fn read(dir: &dyn StorageDir, topic: &str, group: &str) -> Result<Option<Loaded>> {
    let name = file_name(topic, group);
    let ops = FileOps {
        open: "open ack journal",
        read: "read ack journal",
        too_large: "ack journal too large",
    };
    let Some((file, data)) = read_whole(dir, &name, &ops)? else {
        return Ok(None);
    };
    let corrupt = |reason| Error::Corrupt {
        file: name.clone(),
        position: 0,
        offset: 0,
        reason,
    };
    let h = data
        .get(..HEADER)
        .ok_or_else(|| corrupt("ack journal header is incomplete"))?;
    if &h[..4] != MAGIC
        || crc32c::crc32c(&h[..16]) != u32::from_le_bytes([h[16], h[17], h[18], h[19]])
    {
        return Err(corrupt("ack journal header is damaged"));
    }
    let version = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
    if version != VERSION {
        return Err(Error::IncompatibleVersion {
            file: name,
            found: version,
            supported: VERSION,
        });
    }
    let mut epoch = [0u8; 8];
    epoch.copy_from_slice(&h[8..16]);
    Ok(Some(Loaded {
        file,
        epoch: u64::from_le_bytes(epoch),
        data,
    }))
}

impl GroupState {
    /// Applies one journaled change (idempotent).
    fn apply(&mut self, entry: Entry) {
        match entry {
            Entry::Ack(o) => self.mark_acked(o),
            Entry::Attempts(o, c) => {
                if !self.is_acked(o) {
                    let n = self.attempts.entry(o).or_insert(0);
                    *n = (*n).max(c);
                }
            }
            Entry::Floor(o) => {
                self.drop_below(o);
            }
        }
    }

    /// Replays a journal over this (snapshot) state. Every intact record is applied; damaged
    /// ones are skipped and counted; a torn tail is cut (unless `read_only`). Damage is
    /// reported; a journal with damaged records is then folded into a new snapshot so that the
    /// damage is reported once.
    pub(crate) fn replay(
        &mut self,
        dir: &Arc<dyn StorageDir>,
        ids: (&str, &str),
        journal: Loaded,
        read_only: bool,
        report: &mut RecoveryReport,
    ) -> Result<()> {
        let (topic, group) = ids;
        let body = &journal.data[HEADER..];
        let mut records = 0u64;
        let mut damaged = 0u64;
        // End of the last intact record: what follows it with no intact record after is torn.
        let mut good_end = 0usize;
        let mut bad_since_good = 0u64;
        for (i, rec) in body.chunks(RECORD).enumerate() {
            match (rec.len() == RECORD).then(|| decode(rec)).flatten() {
                Some(entry) => {
                    self.apply(entry);
                    records += 1;
                    good_end = (i + 1) * RECORD;
                    damaged += bad_since_good;
                    bad_since_good = 0;
                }
                None => bad_since_good += 1,
            }
        }
        let torn_bytes = (body.len() - good_end) as u64;
        if damaged > 0 || torn_bytes > 0 {
            report.push(Repair::JournalDamage {
                topic: topic.to_owned(),
                group: group.to_owned(),
                damaged_records: damaged,
                torn_bytes,
            });
        }
        self.journal_epoch = self.journal_epoch.max(journal.epoch);
        self.journal = Some(Journal {
            file: journal.file,
            records: records + damaged,
            compact_at: COMPACT_EVERY,
        });
        if read_only {
            return Ok(());
        }
        if damaged > 0 {
            self.compact(dir, topic, group)?;
        } else if torn_bytes > 0
            && let Some(j) = &self.journal
        {
            let keep = (HEADER + good_end) as u64;
            j.file
                .truncate(keep)
                .map_err(Error::io("truncate ack journal"))?;
            j.file.sync().map_err(Error::io("fsync ack journal"))?;
        }
        Ok(())
    }

    /// Appends `entries` to the journal (creating it on first use) without fsyncing, and
    /// returns the journal sequence number to make durable ([`Commit::sync_to`]). On failure
    /// nothing was recorded: a partial write is cut off again. The caller applies the entries
    /// to this state only after this succeeded.
    pub(crate) fn append(
        &mut self,
        dir: &Arc<dyn StorageDir>,
        topic: &str,
        group: &str,
        entries: &[Entry],
    ) -> Result<u64> {
        if self.journal.is_none() {
            let name = file_name(topic, group);
            let epoch = self.journal_epoch;
            let file = write_atomically(&**dir, &name, &header(epoch), "create ack journal")?;
            self.journal = Some(Journal {
                file,
                records: 0,
                compact_at: COMPACT_EVERY,
            });
        }
        let mut buf = Vec::with_capacity(entries.len() * RECORD);
        for &e in entries {
            encode(e, &mut buf);
        }
        let j = self
            .journal
            .as_mut()
            .expect("invariant: the journal was just created");
        if let Err(e) = j.file.append(&buf) {
            let keep = HEADER as u64 + j.records * RECORD as u64;
            if let Err(t) = j.file.truncate(keep) {
                return Err(Error::Poisoned {
                    op: if t.kind() == std::io::ErrorKind::StorageFull {
                        "cutting a partial ack journal write (disk full)"
                    } else {
                        "cutting a partial ack journal write"
                    },
                });
            }
            return Err(Error::io("ack journal append")(e));
        }
        j.records += entries.len() as u64;
        self.journal_seq += entries.len() as u64;
        Ok(self.journal_seq)
    }

    /// Folds the journal into a new snapshot once it holds [`COMPACT_EVERY`] records. A fold
    /// that fails (a full disk, say) changes nothing on disk that matters and is retried
    /// later; the acknowledgements are in the journal either way.
    pub(crate) fn maybe_compact(
        &mut self,
        dir: &Arc<dyn StorageDir>,
        topic: &str,
        group: &str,
        commit: &Commit,
    ) {
        let Some(j) = self.journal.as_mut() else {
            return;
        };
        if j.records < j.compact_at {
            return;
        }
        match self.compact(dir, topic, group) {
            // The snapshot is durable and holds every record journaled so far.
            Ok(()) => commit.durable_up_to(self.journal_seq),
            Err(e) => {
                tracing::warn!(topic, group, error = %e, "folding the ack journal failed; retried later");
                if let Some(j) = self.journal.as_mut() {
                    j.compact_at = j.records + COMPACT_EVERY;
                }
            }
        }
    }

    /// Writes snapshot `epoch + 1` (durably), then replaces the journal with an empty one of
    /// the same epoch. A crash between the two leaves the old journal, which replays
    /// harmlessly over the new snapshot.
    fn compact(&mut self, dir: &Arc<dyn StorageDir>, topic: &str, group: &str) -> Result<()> {
        let epoch = self.journal_epoch + 1;
        self.persist(dir, topic, group, epoch)?;
        self.journal_epoch = epoch;
        let name = file_name(topic, group);
        let file = write_atomically(&**dir, &name, &header(epoch), "replace ack journal")?;
        self.journal = Some(Journal {
            file,
            records: 0,
            compact_at: COMPACT_EVERY,
        });
        Ok(())
    }

    /// The journal file to fsync for sequence numbers up to the current one.
    pub(crate) fn journal_file(&self) -> Option<(Arc<dyn StorageFile>, u64)> {
        self.journal
            .as_ref()
            .map(|j| (Arc::clone(&j.file), self.journal_seq))
    }
}

/// Group commit of a journal: one fsync for every record appended before it started.
#[derive(Debug, Default)]
pub(crate) struct Commit {
    state: Mutex<CommitState>,
    cv: Condvar,
    /// Successful journal fsyncs.
    syncs: std::sync::atomic::AtomicU64,
}

#[derive(Debug, Default)]
struct CommitState {
    leading: bool,
    durable: u64,
}

impl Commit {
    /// Returns once journal records up to `seq` are durable. `current` gives the journal file
    /// and its latest sequence number (taken under the group's lock by the caller's closure).
    pub(crate) fn sync_to(
        &self,
        seq: u64,
        current: impl FnOnce() -> Option<(Arc<dyn StorageFile>, u64)>,
    ) -> std::io::Result<()> {
        let mut st = self.state.lock();
        loop {
            if st.durable >= seq {
                return Ok(());
            }
            if !st.leading {
                st.leading = true;
                break;
            }
            self.cv.wait(&mut st);
        }
        drop(st);
        let result = match current() {
            Some((file, target)) => file.sync().map(|()| {
                self.syncs
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                target
            }),
            // No journal: nothing to make durable.
            None => Ok(seq),
        };
        let mut st = self.state.lock();
        st.leading = false;
        let out = result.map(|target| st.durable = st.durable.max(target));
        drop(st);
        self.cv.notify_all();
        out
    }

    /// Journal fsyncs so far.
    pub(crate) fn syncs(&self) -> u64 {
        self.syncs.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Records that everything up to `seq` is durable (a snapshot was written).
    pub(crate) fn durable_up_to(&self, seq: u64) {
        let mut st = self.state.lock();
        st.durable = st.durable.max(seq);
        drop(st);
        self.cv.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn records_round_trip_and_damage_is_detected() {
        let mut buf = Vec::new();
        encode(Entry::Ack(42), &mut buf);
        encode(Entry::Attempts(7, 3), &mut buf);
        encode(Entry::Floor(9), &mut buf);
        assert_eq!(buf.len(), 3 * RECORD);
        assert_eq!(decode(&buf[..RECORD]), Some(Entry::Ack(42)));
        assert_eq!(
            decode(&buf[RECORD..2 * RECORD]),
            Some(Entry::Attempts(7, 3))
        );
        assert_eq!(decode(&buf[2 * RECORD..]), Some(Entry::Floor(9)));
        for i in 0..RECORD {
            let mut bad = buf[..RECORD].to_vec();
            bad[i] ^= 0x20;
            assert_eq!(decode(&bad), None, "flip at byte {i} went unnoticed");
        }
        assert_eq!(decode(&buf[..RECORD - 1]), None);
    }

    #[test]
    fn a_delivery_count_replayed_after_its_ack_is_not_kept() {
        // A journal older than its snapshot (a crash between the fold's two renames) replays
        // over a state that already holds the ack: a count kept for an acknowledged offset
        // would never be used and would be carried into every later snapshot.
        let mut st = GroupState::default();
        st.apply(Entry::Ack(3));
        st.apply(Entry::Attempts(3, 2));
        st.apply(Entry::Attempts(4, 2));
        st.apply(Entry::Attempts(4, 1));
        assert_eq!(st.attempts, HashMap::from([(4, 2)]));
        assert!(st.is_acked(3));
    }
}
