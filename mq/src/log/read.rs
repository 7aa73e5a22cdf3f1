//! Reading one record back, from the segment file or from the write buffer.

use std::sync::Arc;

use bytes::Bytes;

use super::Log;
use crate::record::{self, HEADER_LEN};
use crate::{Error, Message, Result};

impl Log {
    /// Reads the record at `offset`, or `None` if it is not (or no longer) stored.
    pub(crate) fn read(&self, offset: u64) -> Result<Option<Message>> {
        let (file, buffered, name, pos, end) = {
            let inner = self.inner.lock();
            let Some((_, seg)) = inner.segments.range(..=offset).next_back() else {
                return Ok(None);
            };
            let Ok(idx) = usize::try_from(offset - seg.base) else {
                return Ok(None);
            };
            let Some(&pos) = seg.positions.get(idx) else {
                return Ok(None);
            };
            let end = seg.positions.get(idx + 1).copied().unwrap_or(seg.size);
            let written = seg.size - inner.pending.len() as u64;
            let last = inner.segments.keys().next_back() == Some(&seg.base);
            if last && pos >= written {
                // Still in the write buffer: decode from memory.
                let from = usize::try_from(pos - written).ok();
                let to = usize::try_from(end - written).ok();
                let data = from
                    .zip(to)
                    .and_then(|(f, t)| inner.pending.get(f..t))
                    .map(<[u8]>::to_vec);
                (None, data, seg.name.clone(), pos, end)
            } else {
                (
                    Some(Arc::clone(&seg.file)),
                    None,
                    seg.name.clone(),
                    pos,
                    end,
                )
            }
        };
        let corrupt = |reason| Error::Corrupt {
            file: name.clone(),
            position: pos,
            offset,
            reason,
        };
        let len = usize::try_from(end - pos).map_err(|_| corrupt("record too large"))?;
        let data = match (file, buffered) {
            (_, Some(data)) => data,
            (Some(file), None) => {
                let mut data = vec![0u8; len];
                file.read_exact_at(&mut data, pos)
                    .map_err(Error::io("read record"))?;
                data
            }
            (None, None) => return Err(corrupt("record outside the write buffer")),
        };
        let h: [u8; HEADER_LEN] = data
            .get(..HEADER_LEN)
            .and_then(|h| h.try_into().ok())
            .ok_or_else(|| corrupt("short record"))?;
        // Stored records are read whatever the configured maximum is now: the limit applies
        // to new sends (a lower limit on reopen must not hide acknowledged messages).
        let header = record::decode_header(&h, (len - HEADER_LEN) as u64, record::MAX_STORED)
            .map_err(|e| corrupt(e.reason()))?;
        let body = Bytes::from(data).slice(HEADER_LEN..HEADER_LEN + header.len);
        let m = record::decode_body(&header, body).map_err(|e| corrupt(e.reason()))?;
        if header.offset != offset {
            return Err(corrupt("offset mismatch"));
        }
        Ok(Some(m))
    }
}
