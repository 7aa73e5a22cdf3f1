//! What opening a queue found and repaired: one typed report, never a silent fix.

/// What recovery cut off the tail of a topic's last segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct TailDamage {
    /// The offset the first discarded record would have had.
    pub offset: u64,
    /// How many bytes were cut.
    pub bytes: u64,
    /// Why the first cut record was rejected.
    pub reason: &'static str,
    /// `true` when an intact record followed the damaged one: the damage is probably not a
    /// torn write (bit rot, or an unsynced write whose pages reached the disk out of order).
    /// The records after it were cut with it (only with
    /// [`repair_damaged_tail`](crate::QueueBuilder::repair_damaged_tail)); with
    /// `Durability::Always` a torn write never sets this for records whose send returned.
    pub intact_records_after: bool,
}

/// One thing recovery found wrong and how it was handled. Every kind of damage found when a
/// queue opens lands here (or fails the open with [`Error::Corrupt`](crate::Error::Corrupt));
/// nothing is repaired silently.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Repair {
    /// The tail of a topic's last segment was torn or damaged and was cut off.
    SegmentTail {
        /// The topic.
        topic: String,
        /// The segment file.
        file: String,
        /// What was cut.
        damage: TailDamage,
    },
    /// A segment file without a complete header (an interrupted segment roll, or a file cut to
    /// zero bytes) was found at the end of a topic. It held no record and was removed (the
    /// topic goes on in the previous segment, or in a fresh one at the same offset).
    HeaderlessSegment {
        /// The topic.
        topic: String,
        /// The file.
        file: String,
        /// Its length (0 to 15 bytes).
        bytes: u64,
    },
    /// A group's ack journal held damaged records (a flipped byte, say) and/or a torn tail.
    /// Intact records were all applied; the damaged ones were dropped, so the messages they
    /// acknowledged may be delivered again (at-least-once still holds). The journal was then
    /// folded into a fresh snapshot (unless read-only), so the damage is reported once.
    JournalDamage {
        /// The topic.
        topic: String,
        /// The consumer group.
        group: String,
        /// Damaged 17-byte records that intact records followed (not a torn write).
        damaged_records: u64,
        /// Bytes of a torn tail (an append cut short by a crash), cut off.
        torn_bytes: u64,
    },
    /// A group's ack journal file is missing although its state snapshot says one was written:
    /// the acknowledgements since that snapshot are lost and those messages will be delivered
    /// again.
    JournalMissing {
        /// The topic.
        topic: String,
        /// The consumer group.
        group: String,
    },
    /// A group's state snapshot is missing (or older than its journal): the acknowledgements it
    /// held are lost and those messages will be delivered again; the journal was replayed.
    StateMissing {
        /// The topic.
        topic: String,
        /// The consumer group.
        group: String,
    },
    /// The oldest segment files of a topic are gone, and retention did not delete them (a
    /// deleted file): the group had not acknowledged `unacknowledged` of the messages
    /// `from..to` and skips them.
    MessagesMissing {
        /// The topic.
        topic: String,
        /// The consumer group.
        group: String,
        /// First missing offset (the group's committed offset).
        from: u64,
        /// The log's first stored offset.
        to: u64,
        /// Messages in `from..to` the group had not acknowledged.
        unacknowledged: u64,
    },
    /// A group had acknowledged offsets the log no longer holds (a power loss under
    /// `Interval`/`Never` took back the log's tail, or segment files were deleted): its state
    /// was cut back to the log's end, so new messages at those offsets are delivered normally.
    GroupAheadOfLog {
        /// The topic.
        topic: String,
        /// The consumer group.
        group: String,
        /// The group's committed offset before the cut.
        committed: u64,
        /// The log's end.
        log_end: u64,
    },
}

/// Everything recovery repaired when the queue was opened
/// ([`Queue::recovery_report`](crate::Queue::recovery_report)).
///
/// # Examples
/// ```
/// use tierkit_mq::Queue;
/// let queue = Queue::builder().build_in_memory()?;
/// assert!(queue.recovery_report().is_clean());
/// # Ok::<(), tierkit_mq::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    pub(crate) repairs: Vec<Repair>,
}

impl RecoveryReport {
    /// `true` when nothing was found wrong.
    #[must_use]
    pub fn is_clean(&self) -> bool {
        self.repairs.is_empty()
    }

    /// Every repair, in the order recovery made them.
    #[must_use]
    pub fn repairs(&self) -> &[Repair] {
        &self.repairs
    }

    /// The segment tails that were cut, by topic.
    pub fn tail_damage(&self) -> impl Iterator<Item = (&str, &TailDamage)> {
        self.repairs.iter().filter_map(|r| match r {
            Repair::SegmentTail { topic, damage, .. } => Some((topic.as_str(), damage)),
            _ => None,
        })
    }

    pub(crate) fn push(&mut self, repair: Repair) {
        tracing::warn!(?repair, "queue recovery");
        self.repairs.push(repair);
    }
}
