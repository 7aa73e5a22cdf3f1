//! The on-disk record format.
//!
//! ```text
//! record  = len: u32 LE | crc: u32 LE | offset: u64 LE | body[len]
//! crc     = CRC-32C (Castagnoli) over offset bytes, len bytes and body
//! body    = timestamp_ms: u64 | not_before_ms: u64 | key_flag: u8 | key_len: u32 | key | n_headers: u16 |
//!           (name_len: u16 | name | value_len: u32 | value)* | payload (the rest)
//! ```
//! Decoding never trusts a length beyond the bytes it was given.

use bytes::{BufMut, Bytes, BytesMut};

use crate::Message;

/// Bytes of the record header (length, checksum, offset).
pub(crate) const HEADER_LEN: usize = 16;
/// The largest record the format can hold (a `u32` body length): what recovery and reads
/// accept from disk, whatever the configured maximum for new sends is.
pub(crate) const MAX_STORED: usize = HEADER_LEN + u32::MAX as usize;
const MIN_BODY: usize = 8 + 8 + 1 + 4 + 2;

/// Size of `m`'s encoded body.
pub(crate) fn body_len(m: &Message) -> usize {
    MIN_BODY
        + m.key.as_ref().map_or(0, Bytes::len)
        + m.headers
            .iter()
            .map(|(n, v)| 2 + n.len() + 4 + v.len())
            .sum::<usize>()
        + m.payload.len()
}

/// Why a header or body was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DecodeError {
    Truncated,
    TooLarge,
    Checksum,
    Malformed,
}

impl DecodeError {
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Self::Truncated => "record extends past the end of the file",
            Self::TooLarge => "length exceeds the maximum record size",
            Self::Checksum => "checksum mismatch",
            Self::Malformed => "malformed record body",
        }
    }
}

/// Appends the encoded record to `out`. Caller checked sizes: every length fits its field.
pub(crate) fn encode(offset: u64, m: &Message, out: &mut BytesMut) {
    let len = body_len(m);
    let start = out.len();
    out.reserve(HEADER_LEN + len);
    out.put_u32_le(u32::try_from(len).unwrap_or(u32::MAX));
    out.put_u32_le(0);
    out.put_u64_le(offset);
    out.put_u64_le(m.timestamp_ms);
    out.put_u64_le(m.not_before_ms);
    out.put_u8(u8::from(m.key.is_some()));
    let key = m.key.as_deref().unwrap_or(&[]);
    out.put_u32_le(u32::try_from(key.len()).unwrap_or(u32::MAX));
    out.put_slice(key);
    out.put_u16_le(u16::try_from(m.headers.len()).unwrap_or(u16::MAX));
    for (n, v) in &m.headers {
        out.put_u16_le(u16::try_from(n.len()).unwrap_or(u16::MAX));
        out.put_slice(n.as_bytes());
        out.put_u32_le(u32::try_from(v.len()).unwrap_or(u32::MAX));
        out.put_slice(v);
    }
    out.put_slice(&m.payload);
    let crc = checksum(
        &out[start + 8..start + 16],
        &out[start..start + 4],
        &out[start + HEADER_LEN..],
    );
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// Checks that `m` can be encoded (field widths) within `max_record` bytes and returns its
/// record size, or what is too large: `(what, size, limit)`.
pub(crate) fn check_size(
    m: &Message,
    max_record: usize,
) -> Result<usize, (&'static str, usize, usize)> {
    const U16: usize = u16::MAX as usize;
    const U32: usize = u32::MAX as usize;
    if let Some(k) = m.key.as_ref().filter(|k| k.len() > U32) {
        return Err(("key", k.len(), U32));
    }
    if m.headers.len() > U16 {
        return Err(("header count", m.headers.len(), U16));
    }
    for (n, v) in &m.headers {
        if n.len() > U16 {
            return Err(("header name", n.len(), U16));
        }
        if v.len() > U32 {
            return Err(("header value", v.len(), U32));
        }
    }
    let size = HEADER_LEN.saturating_add(body_len(m));
    let max = max_record.min(MAX_STORED);
    if size > max {
        return Err(("record", size, max));
    }
    Ok(size)
}

fn checksum(offset: &[u8], len: &[u8], body: &[u8]) -> u32 {
    let crc = crc32c::crc32c(offset);
    let crc = crc32c::crc32c_append(crc, len);
    crc32c::crc32c_append(crc, body)
}

/// A parsed record header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) len: usize,
    pub(crate) crc: u32,
    pub(crate) offset: u64,
}

/// Parses a header; `available` is how many bytes follow the header in the file.
pub(crate) fn decode_header(
    h: &[u8; HEADER_LEN],
    available: u64,
    max_record: usize,
) -> Result<Header, DecodeError> {
    let len = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
    let crc = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
    let mut o = [0u8; 8];
    o.copy_from_slice(&h[8..16]);
    let offset = u64::from_le_bytes(o);
    let len = usize::try_from(len).map_err(|_| DecodeError::TooLarge)?;
    if len < MIN_BODY {
        return Err(DecodeError::Malformed);
    }
    if len.saturating_add(HEADER_LEN) > max_record {
        return Err(DecodeError::TooLarge);
    }
    if len as u64 > available {
        return Err(DecodeError::Truncated);
    }
    Ok(Header { len, crc, offset })
}

/// Verifies `body` against `header` and decodes it.
pub(crate) fn decode_body(header: &Header, body: Bytes) -> Result<Message, DecodeError> {
    let len_bytes = u32::try_from(header.len)
        .map_err(|_| DecodeError::TooLarge)?
        .to_le_bytes();
    if checksum(&header.offset.to_le_bytes(), &len_bytes, &body) != header.crc {
        return Err(DecodeError::Checksum);
    }
    let mut cur = Cursor { buf: &body, pos: 0 };
    let timestamp_ms = u64::from_le_bytes(cur.array::<8>()?);
    let not_before_ms = u64::from_le_bytes(cur.array::<8>()?);
    let has_key = cur.array::<1>()?[0];
    let key_len = cur.len32()?;
    let key = cur.take(key_len)?;
    let key = match has_key {
        0 if key_len == 0 => None,
        1 => Some(body.slice(key)),
        _ => return Err(DecodeError::Malformed),
    };
    let n = u16::from_le_bytes(cur.array::<2>()?);
    let mut headers = Vec::with_capacity(usize::from(n).min(64));
    for _ in 0..n {
        let nl = usize::from(u16::from_le_bytes(cur.array::<2>()?));
        let name = cur.take(nl)?;
        let name = std::str::from_utf8(&body[name]).map_err(|_| DecodeError::Malformed)?;
        let vl = cur.len32()?;
        let value = cur.take(vl)?;
        headers.push((name.to_owned(), body.slice(value)));
    }
    let payload = body.slice(cur.pos..);
    Ok(Message {
        payload,
        key,
        headers,
        not_before_ms,
        timestamp_ms,
    })
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn take(&mut self, n: usize) -> Result<std::ops::Range<usize>, DecodeError> {
        let end = self.pos.checked_add(n).filter(|e| *e <= self.buf.len());
        let end = end.ok_or(DecodeError::Malformed)?;
        let r = self.pos..end;
        self.pos = end;
        Ok(r)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let r = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(&self.buf[r]);
        Ok(a)
    }
    fn len32(&mut self) -> Result<usize, DecodeError> {
        usize::try_from(u32::from_le_bytes(self.array::<4>()?)).map_err(|_| DecodeError::Malformed)
    }
}

/// Decodes one record from the front of `data` (the fuzz entry point): never panics, never
/// allocates more than `data.len()` plus a small constant.
///
/// Returns the message, its offset and the bytes consumed.
#[cfg_attr(docsrs, doc(cfg(feature = "sim")))]
#[cfg_attr(not(feature = "sim"), allow(dead_code, unreachable_pub))]
pub fn decode_record(data: &[u8], max_record: usize) -> Option<(u64, Message, usize)> {
    let h: &[u8; HEADER_LEN] = data.get(..HEADER_LEN)?.try_into().ok()?;
    let rest = (data.len() - HEADER_LEN) as u64;
    let header = decode_header(h, rest, max_record).ok()?;
    let body = Bytes::copy_from_slice(data.get(HEADER_LEN..HEADER_LEN + header.len)?);
    let m = decode_body(&header, body).ok()?;
    Some((header.offset, m, HEADER_LEN + header.len))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn round_trip() {
        let m = Message::new("hello")
            .with_key("k")
            .with_header("a", "b")
            .deliver_not_before(9);
        let mut out = BytesMut::new();
        encode(42, &m, &mut out);
        assert_eq!(out.len(), check_size(&m, 1 << 20).unwrap());
        let (off, back, used) = decode_record(&out, 1 << 20).unwrap();
        assert_eq!((off, &back, used), (42, &m, out.len()));
        for i in 0..out.len() {
            let mut bad = out.to_vec();
            bad[i] ^= 0x40;
            assert!(decode_record(&bad, 1 << 20).is_none_or(|(o, b, _)| o != 42 || b != m));
        }
    }
}
