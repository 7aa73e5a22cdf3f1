//! Metrics for autoscaling workers.

use std::sync::Arc;

use crate::topic::Topic;
use crate::{Queue, Result};

/// A snapshot of one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Lowest offset still stored (older segments were deleted by retention).
    pub log_start: u64,
    /// Offset the next message will get.
    pub log_end: u64,
    /// Offsets below this are fsynced.
    pub durable_end: u64,
    /// Bytes of the topic's segment files.
    pub bytes: u64,
    /// fsyncs of the log so far by this handle (compare with `log_end` for messages per fsync).
    pub fsyncs: u64,
    /// One entry per consumer group, sorted by name.
    pub groups: Vec<GroupStats>,
}

/// A snapshot of one consumer group.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GroupStats {
    /// The group's name.
    pub group: String,
    /// Every offset below this is acknowledged.
    pub committed: u64,
    /// Unacknowledged messages (in flight, waiting or never delivered).
    pub depth: u64,
    /// Deliveries handed out and not yet acknowledged or expired.
    pub in_flight: u64,
    /// Age in milliseconds of the oldest unacknowledged message, by its send time.
    pub oldest_unacked_age_ms: Option<u64>,
    /// Deliveries after the first of a message, since this handle opened.
    pub redeliveries: u64,
    /// Messages moved to the dead-letter topic since this handle opened.
    pub dead_lettered: u64,
    /// Unacknowledged messages this group lost to size or age retention
    /// ([`QueueBuilder::retention_bytes`](crate::QueueBuilder::retention_bytes),
    /// [`QueueBuilder::retention_age`](crate::QueueBuilder::retention_age)) since this handle
    /// opened.
    pub retention_dropped: u64,
    /// fsyncs of the group's ack journal by this handle (concurrent acks share them: compare
    /// with the acks made).
    pub journal_fsyncs: u64,
}

pub(crate) fn collect(queue: &Queue, topic: &Arc<Topic>) -> Result<Stats> {
    let cfg = &queue.shared.cfg;
    let now = cfg.clock.unix_millis();
    let end = topic.visible_end(cfg.durability);
    let groups: Vec<_> = topic.groups.lock().values().cloned().collect();
    let mut out = Vec::with_capacity(groups.len());
    for g in groups {
        let (committed, acked, in_flight, redeliveries, dead_lettered, retention_dropped) = {
            let st = g.state.lock();
            (
                st.committed,
                st.acked.len() as u64,
                st.inflight.len() as u64,
                st.redeliveries,
                st.dead_lettered,
                st.retention_dropped,
            )
        };
        let depth = end.saturating_sub(committed).saturating_sub(acked);
        let oldest = if committed < end {
            topic
                .log
                .read(committed)?
                .map(|m| now.saturating_sub(m.timestamp_ms))
        } else {
            None
        };
        tracing::debug!(topic = %topic.name, group = %g.name, depth, in_flight, redeliveries, dead_lettered, "group stats");
        out.push(GroupStats {
            group: g.name.clone(),
            committed,
            depth,
            in_flight,
            oldest_unacked_age_ms: oldest,
            redeliveries,
            dead_lettered,
            retention_dropped,
            journal_fsyncs: g.commit.syncs(),
        });
    }
    out.sort_by(|a, b| a.group.cmp(&b.group));
    Ok(Stats {
        log_start: topic.log.start(),
        log_end: topic.log.end(),
        durable_end: topic.log.durable_end(),
        bytes: topic.log.bytes(),
        fsyncs: topic.log.fsyncs(),
        groups: out,
    })
}
