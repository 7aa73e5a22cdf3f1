//! Topology events (promotions, demotions, primaries going down and up) and the registry of
//! listeners that receive them, always outside the set's locks.

use std::sync::Arc;

use crate::{Epoch, NodeId, Promotion};

/// Something that changed who may take writes. Delivered to every listener registered with
/// [`ReplicaSet::on_event`](crate::ReplicaSet::on_event) (and, with the `tokio` feature, to every
/// `ReplicaSet::subscribe` receiver) after the change is
/// published, outside every lock of the set.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// The primary was marked down: writes fail fast from now on.
    PrimaryDown {
        /// The primary.
        node: NodeId,
        /// Its epoch.
        epoch: Epoch,
    },
    /// The primary was marked up again.
    PrimaryUp {
        /// The primary.
        node: NodeId,
        /// Its epoch.
        epoch: Epoch,
    },
    /// A promotion started: the old primary is fenced and no write is routed until the engine
    /// confirms the candidate writable.
    PromotionStarted {
        /// The replica being promoted.
        candidate: NodeId,
        /// The deposed primary.
        old_primary: Option<NodeId>,
        /// The epoch the candidate will lead.
        epoch: Epoch,
    },
    /// A promotion finished: writes go to the new primary.
    Promoted(Promotion),
    /// A promotion was abandoned (the engine refused it); the candidate is a replica again and
    /// the set has no primary.
    PromotionFailed {
        /// The candidate.
        candidate: NodeId,
        /// The epoch it would have led.
        epoch: Epoch,
        /// Why.
        reason: String,
    },
    /// A node lost the primary role (it is fenced until it rejoins as a replica).
    Demoted {
        /// The deposed primary.
        node: NodeId,
        /// The epoch that deposed it.
        epoch: Epoch,
    },
    /// A fenced node came back as a replica.
    Rejoined {
        /// The node.
        node: NodeId,
        /// The current epoch.
        epoch: Epoch,
    },
}

type Listener = Arc<dyn Fn(&Event) + Send + Sync>;

/// Listeners, run in registration order outside the set's locks.
#[derive(Default)]
pub(crate) struct Listeners {
    listeners: parking_lot::RwLock<Vec<Listener>>,
    #[cfg(feature = "tokio")]
    pub(crate) channel: Option<tokio::sync::broadcast::Sender<Event>>,
}

impl Listeners {
    pub(crate) fn new() -> Self {
        Listeners {
            listeners: parking_lot::RwLock::new(Vec::new()),
            #[cfg(feature = "tokio")]
            channel: Some(tokio::sync::broadcast::channel(EVENT_BACKLOG).0),
        }
    }

    pub(crate) fn add(&self, listener: Listener) {
        self.listeners.write().push(listener);
    }

    /// Delivers `events`; the caller holds no lock of the set.
    pub(crate) fn emit(&self, events: Vec<Event>) {
        if events.is_empty() {
            return;
        }
        let listeners: Vec<Listener> = self.listeners.read().clone();
        for event in events {
            for l in &listeners {
                l(&event);
            }
            #[cfg(feature = "tokio")]
            if let Some(tx) = &self.channel {
                // No receiver is not an error: nobody subscribed.
                let _ = tx.send(event);
            }
        }
    }
}

/// Events a slow [`subscribe`](crate::ReplicaSet::subscribe) receiver may fall behind by before
/// it sees `RecvError::Lagged`.
#[cfg(feature = "tokio")]
pub(crate) const EVENT_BACKLOG: usize = 64;

impl std::fmt::Debug for Listeners {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listeners")
            .field("listeners", &self.listeners.read().len())
            .finish_non_exhaustive()
    }
}
