//! Segment files: names, headers, and atomic creation.

use std::collections::BTreeMap;

use super::{Inner, Log, Segment};
use crate::{Error, Result};

pub(crate) const MAGIC: &[u8; 4] = b"TKMQ";
/// The segment format version this build reads and writes.
pub(crate) const FORMAT_VERSION: u32 = 2;
pub(crate) const SEG_HEADER: u64 = 16;

pub(super) fn seg_name(topic: &str, base: u64) -> String {
    format!("{topic}.{base:020}.seg")
}

pub(crate) fn seg_header(base: u64) -> [u8; 16] {
    let mut h = [0u8; 16];
    h[..4].copy_from_slice(MAGIC);
    h[4..8].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h[8..].copy_from_slice(&base.to_le_bytes());
    h
}

/// Segment files of `topic` among `names`, by base offset.
pub(crate) fn segment_files(topic: &str, names: &[String]) -> BTreeMap<u64, String> {
    let prefix = format!("{topic}.");
    names
        .iter()
        .filter_map(|n| {
            let mid = n.strip_prefix(&prefix)?.strip_suffix(".seg")?;
            (mid.len() == 20).then(|| mid.parse::<u64>().ok().map(|b| (b, n.clone())))?
        })
        .collect()
}

impl Log {
    /// Creates the segment starting at `base` atomically: its header is written and fsynced
    /// under a temporary name, then renamed into place and the directory fsynced. A failure
    /// before the rename leaves no segment file (the temporary one is removed, and recovery
    /// removes any leftover), so a full disk during a roll never leaves a headerless segment.
    pub(super) fn create_segment(&self, inner: &mut Inner, base: u64) -> Result<()> {
        let name = seg_name(&self.topic, base);
        let tmp = format!("{name}.tmp");
        let created = self.dir.open(&tmp, true).and_then(|file| {
            file.truncate(0)?;
            file.append(&seg_header(base))?;
            file.sync()?;
            self.dir.rename(&tmp, &name)?;
            Ok(file)
        });
        let file = match created {
            Ok(file) => file,
            Err(e) => {
                // Best effort: a leftover is removed at the next open anyway.
                let _ = self.dir.remove(&tmp);
                return Err(Error::io("segment roll")(e));
            }
        };
        // The rename is done; if its directory entry cannot be made durable, records fsynced
        // into the new segment could vanish with it after a power loss.
        self.dir
            .sync_dir()
            .map_err(|e| self.poison(e, "fsync of the directory after a segment roll"))?;
        inner.total_bytes += SEG_HEADER;
        inner.segments.insert(
            base,
            Segment {
                name,
                base,
                file,
                positions: Vec::new(),
                size: SEG_HEADER,
            },
        );
        Ok(())
    }
}
