//! Entry points shared by the cargo-fuzz targets and the tests that run their bodies in CI.

use crate::sim::SimDir;
use crate::{Queue, StorageDir};

/// Decodes `data` as a record stream and, separately, recovers a queue whose only segment
/// holds `data` after a valid segment header, then reads every recovered message.
///
/// Must never panic and never allocate more than about the input size: lengths in the data
/// are checked against the bytes present and the maximum record size before use.
pub fn fuzz_decode_and_recover(data: &[u8]) {
    let max = 4096;
    let mut rest = data;
    while let Some((_, _, used)) = crate::record::decode_record(rest, max) {
        rest = &rest[used..];
    }
    let dir = SimDir::new();
    let mut segment = Vec::with_capacity(16 + data.len());
    segment.extend_from_slice(b"TKMQ");
    segment.extend_from_slice(&crate::log::FORMAT_VERSION.to_le_bytes());
    segment.extend_from_slice(&0u64.to_le_bytes());
    // Let the input also overwrite the header when it starts with the magic.
    let bytes: &[u8] = if data.starts_with(b"TKMQ") {
        data
    } else {
        &segment
    };
    let Ok(file) = dir.open("t.00000000000000000000.seg", true) else {
        return;
    };
    if file.append(bytes).is_err() || (bytes.len() == segment.len() && file.append(data).is_err()) {
        return;
    }
    let Ok(queue) = Queue::builder()
        .max_record_size(max)
        .build_with(dir.handle())
    else {
        return;
    };
    if let Ok(c) = queue.consumer("t", "fuzz") {
        while let Ok(Some(_)) = c.try_recv() {}
    }
}
