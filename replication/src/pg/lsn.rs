//! LSNs as positions.

/// `MAXALIGN(sizeof(XLogLongPageHeaderData))` on 64-bit builds: the header of a segment's
/// first page.
const LONG_HEADER: u64 = 40;
/// `MAXALIGN(sizeof(XLogPageHeaderData))`: the header of every other page.
const SHORT_HEADER: u64 = 24;

/// An LSN in the form replay and receive positions take: an insert position just past a
/// page header (`pg_current_wal_insert_lsn()` points at where the *next* record starts, after
/// the header of a fresh page) is moved back to the page boundary, which is where the previous
/// record ended. No record ends inside a page header, so this loses nothing, and a replica
/// that has received up to the boundary holds every write whose token is the boundary.
///
/// `block` and `segment` are the server's `wal_block_size` and `wal_segment_size`.
///
/// # Examples
/// ```
/// use tierkit_replication::pg::canonical_lsn;
/// let (block, segment) = (8192, 16 << 20);
/// assert_eq!(canonical_lsn(0x300_0028, block, segment), 0x300_0000); // segment start + 40
/// assert_eq!(canonical_lsn(0x300_2018, block, segment), 0x300_2000); // page start + 24
/// assert_eq!(canonical_lsn(0x300_2030, block, segment), 0x300_2030);
/// ```
#[must_use]
pub fn canonical_lsn(lsn: u64, block: u64, segment: u64) -> u64 {
    if segment > 0 && lsn % segment == LONG_HEADER {
        lsn - LONG_HEADER
    } else if block > 0 && lsn % block == SHORT_HEADER && lsn % segment.max(1) != SHORT_HEADER {
        lsn - SHORT_HEADER
    } else {
        lsn
    }
}
