//! The immutable topology snapshot that routing loads: who is primary in which epoch.

use std::sync::Arc;

use crate::node::NodeState;
use crate::{Epoch, NodeId, Position, Role};

/// One member of the current topology.
pub(crate) struct Member<C> {
    pub(crate) id: NodeId,
    pub(crate) handle: Arc<C>,
    pub(crate) state: Arc<NodeState>,
    pub(crate) role: Role,
}

impl<C> Clone for Member<C> {
    fn clone(&self) -> Self {
        Member {
            id: self.id,
            handle: self.handle.clone(),
            state: self.state.clone(),
            role: self.role,
        }
    }
}

/// Who is primary in which epoch. Published whole (arc-swap); never mutated in place.
pub(crate) struct Topology<C> {
    pub(crate) epoch: Epoch,
    /// The writable primary. `None` while there is none: it failed and no promotion finished.
    pub(crate) primary: Option<usize>,
    /// The replica being promoted (the engine has not confirmed it writable yet); never routed
    /// a write.
    pub(crate) promoting: Option<usize>,
    pub(crate) members: Vec<Member<C>>,
}

impl<C> Topology<C> {
    pub(crate) fn index_of(&self, id: NodeId) -> Option<usize> {
        self.members.iter().position(|m| m.id == id)
    }

    /// The newest primary position the set knows (the highest of all nodes while there is no
    /// primary).
    pub(crate) fn primary_position(&self) -> Position {
        match self.primary {
            Some(p) => self.members[p].state.position(),
            None => self
                .members
                .iter()
                .map(|m| m.state.position())
                .max()
                .unwrap_or_default(),
        }
    }

    /// A copy to change and publish.
    pub(crate) fn copy(&self) -> Topology<C> {
        Topology {
            epoch: self.epoch,
            primary: self.primary,
            promoting: self.promoting,
            members: self.members.clone(),
        }
    }
}
