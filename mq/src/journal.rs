//! A consumer group's acknowledgement journal: small checksummed records appended per ack or
//! nack, replayed over the group's snapshot at open and folded into it now and then.
//!
//! Writing the whole group state (temp file, fsync, rename, directory fsync) on every ack cost
//! two fsyncs and a rename per message; an append costs one fsync under `Always`/`Interval`
//! and none under `Never`.

use std::sync::Arc;

use crate::group::{FileOps, GroupState, read_whole};
use crate::storage::{StorageDir, StorageFile};
use crate::{Error, Result};

/// Records appended between two snapshots before the journal is folded into a new snapshot.
pub(crate) const COMPACT_EVERY: u64 = 4_096;

const RECORD: usize = 17;
const KIND_ACK: u8 = 1;
const KIND_ATTEMPTS: u8 = 2;

/// One journaled change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Entry {
    /// `offset` was acknowledged (or dead-lettered).
    Ack(u64),
    /// `offset` was delivered `count` times and is waiting for redelivery.
    Attempts(u64, u32),
}

/// The open journal file of a group.
#[derive(Debug)]
pub(crate) struct Journal {
    file: Arc<dyn StorageFile>,
    records: u64,
}

pub(crate) fn file_name(topic: &str, group: &str) -> String {
    format!("{topic}.{group}.ack")
}

fn encode(e: Entry, out: &mut Vec<u8>) {
    let (kind, offset, count) = match e {
        Entry::Ack(o) => (KIND_ACK, o, 0),
        Entry::Attempts(o, c) => (KIND_ATTEMPTS, o, c),
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
        _ => None,
    }
}

impl GroupState {
    /// Replays the group's journal, if any, over this (snapshot) state. A torn or damaged tail
    /// (an append cut by a crash) is cut off: everything before it is kept.
    pub(crate) fn replay_journal(
        &mut self,
        dir: &dyn StorageDir,
        topic: &str,
        group: &str,
    ) -> Result<()> {
        let name = file_name(topic, group);
        let ops = FileOps {
            open: "open ack journal",
            read: "read ack journal",
            too_large: "ack journal too large",
        };
        let Some((file, data)) = read_whole(dir, &name, &ops)? else {
            return Ok(());
        };
        let len = data.len();
        let mut good = 0usize;
        let mut records = 0u64;
        for rec in data.chunks_exact(RECORD) {
            let Some(entry) = decode(rec) else { break };
            match entry {
                Entry::Ack(o) => self.mark_acked(o),
                Entry::Attempts(o, c) => {
                    if !self.is_acked(o) {
                        let n = self.attempts.entry(o).or_insert(0);
                        *n = (*n).max(c);
                    }
                }
            }
            good += RECORD;
            records += 1;
        }
        if good < len {
            tracing::warn!(file = %name, kept = good, dropped = len - good, "ack journal tail cut (torn by a crash)");
            file.truncate(good as u64)
                .map_err(Error::io("truncate ack journal"))?;
            file.sync().map_err(Error::io("fsync ack journal"))?;
        }
        self.journal = Some(Journal { file, records });
        Ok(())
    }

    /// Journals `entries` (already applied to this state), fsyncing when `durable`; folds the
    /// journal into a new snapshot every [`COMPACT_EVERY`] records.
    pub(crate) fn journal(
        &mut self,
        dir: &Arc<dyn StorageDir>,
        topic: &str,
        group: &str,
        entries: &[Entry],
        durable: bool,
    ) -> Result<()> {
        if self.journal.is_none() {
            // The snapshot exists before its journal, so open() always finds the group.
            self.persist(dir, topic, group, true)?;
            let file = dir
                .open(&file_name(topic, group), true)
                .map_err(Error::io("create ack journal"))?;
            file.truncate(0).map_err(Error::io("create ack journal"))?;
            dir.sync_dir().map_err(Error::io("fsync directory"))?;
            self.journal = Some(Journal { file, records: 0 });
        }
        let mut buf = Vec::with_capacity(entries.len() * RECORD);
        for &e in entries {
            encode(e, &mut buf);
        }
        let compact = {
            let j = self.journal.as_mut().ok_or(Error::Io {
                op: "append ack journal",
                source: std::io::Error::other("journal missing"),
            })?;
            j.file
                .append(&buf)
                .map_err(Error::io("append ack journal"))?;
            if durable {
                j.file.sync().map_err(Error::io("fsync ack journal"))?;
            }
            j.records += entries.len() as u64;
            j.records >= COMPACT_EVERY
        };
        if compact {
            // Snapshot first (durably), then empty the journal: a crash in between replays
            // records the snapshot already holds, which is harmless.
            self.persist(dir, topic, group, true)?;
            if let Some(j) = self.journal.as_mut() {
                j.file
                    .truncate(0)
                    .map_err(Error::io("truncate ack journal"))?;
                j.file.sync().map_err(Error::io("fsync ack journal"))?;
                j.records = 0;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_damage_is_detected() {
        let mut buf = Vec::new();
        encode(Entry::Ack(42), &mut buf);
        encode(Entry::Attempts(7, 3), &mut buf);
        assert_eq!(buf.len(), 2 * RECORD);
        assert_eq!(decode(&buf[..RECORD]), Some(Entry::Ack(42)));
        assert_eq!(decode(&buf[RECORD..]), Some(Entry::Attempts(7, 3)));
        for i in 0..RECORD {
            let mut bad = buf[..RECORD].to_vec();
            bad[i] ^= 0x20;
            assert_eq!(decode(&bad), None, "flip at byte {i} went unnoticed");
        }
        assert_eq!(decode(&buf[..RECORD - 1]), None);
    }
}
