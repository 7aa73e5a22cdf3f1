//! Recovery of one segment file: validate every record, cut a torn tail of the last segment.

use std::sync::Arc;

use bytes::Bytes;

use crate::log::{FORMAT_VERSION, LogConfig, MAGIC, SEG_HEADER, Segment};
use crate::record::{self, HEADER_LEN};
use crate::report::TailDamage;
use crate::storage::StorageFile;
use crate::{Error, Result};

/// What recovering one segment file found.
pub(crate) enum Recovered {
    /// The segment, the offset after its last record, and what was cut off its tail.
    Segment {
        segment: Segment,
        end: u64,
        damage: Option<TailDamage>,
    },
    /// The last segment has no complete header (an interrupted roll of an older version, or a
    /// file cut short): it holds no record.
    Headerless { bytes: u64 },
}

/// Scans one segment; cuts a torn tail of the last one (unless read-only).
///
/// Records are read whatever the configured maximum record size is: that limit applies to
/// new sends, and a lower limit on reopen must never turn stored records into "damage".
pub(crate) fn recover_segment(
    name: &str,
    base: u64,
    file: Arc<dyn StorageFile>,
    cfg: &LogConfig,
    is_last: bool,
) -> Result<Recovered> {
    let len = file.len().map_err(Error::io("recover segment"))?;
    let corrupt = |position, offset, reason| Error::Corrupt {
        file: name.to_owned(),
        position,
        offset,
        reason,
    };
    let mut h = [0u8; 16];
    if len < SEG_HEADER {
        if !is_last {
            return Err(corrupt(0, base, "segment header is incomplete"));
        }
        return Ok(Recovered::Headerless { bytes: len });
    }
    file.read_exact_at(&mut h, 0)
        .map_err(Error::io("recover segment"))?;
    if &h[..4] != MAGIC {
        return Err(corrupt(0, base, "bad segment magic"));
    }
    let version = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
    if version != FORMAT_VERSION {
        return Err(Error::IncompatibleVersion {
            file: name.to_owned(),
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    let mut b = [0u8; 8];
    b.copy_from_slice(&h[8..]);
    if u64::from_le_bytes(b) != base {
        return Err(corrupt(0, base, "segment header names another base offset"));
    }
    let mut pos = SEG_HEADER;
    let mut positions = Vec::new();
    let mut offset = base;
    let mut failure = None;
    // Length of the record that failed, when its header was readable.
    let mut failed_len = None;
    while pos < len {
        match check_record(&*file, pos, len)? {
            Ok(header) if header.offset == offset => {
                positions.push(pos);
                pos += (HEADER_LEN + header.len) as u64;
                offset += 1;
            }
            Ok(header) => {
                failure = Some("record carries an unexpected offset");
                failed_len = Some(header.len);
                break;
            }
            Err((reason, hlen)) => {
                failure = Some(reason);
                failed_len = hlen;
                break;
            }
        }
    }
    // A damaged record followed by an intact successor looks like damage in the middle of
    // the log rather than a torn write (or pages of an unsynced write persisted out of
    // order). Recovery still keeps the good prefix, and says so loudly in the report.
    let mut intact_after = false;
    if let (Some(_), Some(hlen)) = (failure, failed_len) {
        let next = pos + (HEADER_LEN + hlen) as u64;
        intact_after = next < len
            && matches!(check_record(&*file, next, len)?, Ok(h) if h.offset == offset + 1);
    }
    let mut damage = None;
    if let Some(reason) = failure {
        if !is_last {
            return Err(corrupt(pos, offset, reason));
        }
        if intact_after && !cfg.repair_damaged_tail {
            // Not a torn write: refuse rather than drop records that may have been acknowledged.
            return Err(corrupt(
                pos,
                offset,
                "damaged record followed by intact records (open with repair_damaged_tail to cut here)",
            ));
        }
        if !cfg.read_only {
            file.truncate(pos)
                .map_err(Error::io("truncate torn tail"))?;
            file.sync().map_err(Error::io("truncate torn tail"))?;
        }
        if intact_after {
            tracing::error!(
                file = name,
                offset,
                reason,
                "damaged record followed by intact records; cut"
            );
        }
        damage = Some(TailDamage {
            offset,
            bytes: len - pos,
            reason,
            intact_records_after: intact_after,
        });
    }
    let seg = Segment {
        name: name.to_owned(),
        base,
        file,
        positions,
        size: pos,
    };
    Ok(Recovered::Segment {
        segment: seg,
        end: offset,
        damage,
    })
}

/// Validates the record at `pos`: its header, or why it is bad (with its length when the
/// header itself was readable).
fn check_record(
    file: &dyn StorageFile,
    pos: u64,
    len: u64,
) -> Result<Result<record::Header, (&'static str, Option<usize>)>> {
    if len - pos < HEADER_LEN as u64 {
        return Ok(Err((
            "record header extends past the end of the file",
            None,
        )));
    }
    let mut rh = [0u8; HEADER_LEN];
    file.read_exact_at(&mut rh, pos)
        .map_err(Error::io("recover segment"))?;
    let header = match record::decode_header(&rh, len - pos - HEADER_LEN as u64, record::MAX_STORED)
    {
        Ok(h) => h,
        Err(e) => return Ok(Err((e.reason(), None))),
    };
    let mut body = vec![0u8; header.len];
    file.read_exact_at(&mut body, pos + HEADER_LEN as u64)
        .map_err(Error::io("recover segment"))?;
    Ok(record::decode_body(&header, Bytes::from(body))
        .map(|_| header)
        .map_err(|e| (e.reason(), Some(header.len))))
}
