//! Reads the ARC traces (Megiddo & Modha, FAST'03) in their zstd-compressed `.lis` form, for the
//! hit-ratio example and the cache bench. Included with `#[path]`.
#![allow(dead_code)]

use std::error::Error;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

/// Reads an ARC trace (`.lis`, optionally zstd-compressed as `.zst`): every line
/// `start count _ _` expands to the `count` keys `start, start + 1, ...`.
///
/// # Errors
/// I/O errors, a corrupt zstd stream, or a line whose first two fields are not integers.
pub(crate) fn read_arc_trace(path: &Path) -> Result<Vec<u64>, Box<dyn Error>> {
    let file = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let reader: Box<dyn BufRead> = if path.extension().is_some_and(|e| e == "zst") {
        let decoder = ruzstd::decoding::StreamingDecoder::new(BufReader::new(file))
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Box::new(BufReader::with_capacity(1 << 16, decoder))
    } else {
        Box::new(BufReader::with_capacity(1 << 16, file))
    };
    let mut keys = Vec::new();
    for (n, line) in reader.lines().enumerate() {
        let line = line?;
        let mut fields = line.split_ascii_whitespace();
        let (Some(start), Some(count)) = (fields.next(), fields.next()) else {
            if line.trim().is_empty() {
                continue;
            }
            return Err(format!("{}:{}: expected `start count ...`", path.display(), n + 1).into());
        };
        let bad = |e: std::num::ParseIntError| format!("{}:{}: {e}", path.display(), n + 1);
        let start: u64 = start.parse().map_err(bad)?;
        let count: u64 = count.parse().map_err(bad)?;
        keys.extend(start..start.saturating_add(count));
    }
    Ok(keys)
}
