//! Replica choice through a `tierkit-lb` policy (optional; the default is round robin).

use std::collections::HashSet;
use std::sync::Arc;

use tierkit_lb::{Backend, BackendId, Balancer, BalancerStats, Context, Lease, Policy};

use crate::NodeId;

/// The object-safe face of a `Balancer<NodeId, P>` that a [`ReplicaSet`](crate::ReplicaSet)
/// keeps in step with its replicas.
pub(crate) trait ReadBalancer: Send + Sync {
    /// Picks among the replicas in `allow` (healthy and fresh enough for the read).
    fn pick(&self, allow: &[BackendId]) -> Option<Lease<NodeId>>;
    /// Makes the balancer's members exactly `replicas`.
    fn sync(&self, replicas: &[NodeId]);
    /// The balancer's statistics.
    fn stats(&self) -> BalancerStats;
}

pub(crate) fn backend_id(id: NodeId) -> BackendId {
    BackendId(u64::from(id.0))
}

impl<P: Policy<NodeId>> ReadBalancer for Balancer<NodeId, P> {
    #[inline]
    fn pick(&self, allow: &[BackendId]) -> Option<Lease<NodeId>> {
        Balancer::pick(self, &Context::new().only_ids(allow)).ok()
    }

    fn sync(&self, replicas: &[NodeId]) {
        let want: HashSet<NodeId> = replicas.iter().copied().collect();
        let have: HashSet<NodeId> = self.members().iter().map(|m| *m.value()).collect();
        for gone in have.difference(&want) {
            let _ = self.remove(backend_id(*gone));
        }
        for new in want.difference(&have) {
            let _ = self.add(Backend::new(backend_id(*new), *new));
        }
    }

    fn stats(&self) -> BalancerStats {
        Balancer::stats(self)
    }
}

/// Builds the balancer for the initial replicas, on the set's clock.
pub(crate) type ReadBalancerFactory = Box<
    dyn FnOnce(&[NodeId], Arc<dyn crate::Clock>) -> Result<Box<dyn ReadBalancer>, tierkit_lb::Error>
        + Send,
>;

/// The set's clock, as the balancer's clock: one time for everything inside the set.
#[derive(Debug, Clone)]
struct SetClock(Arc<dyn crate::Clock>);

impl tierkit_lb::Clock for SetClock {
    #[inline]
    fn now_nanos(&self) -> u64 {
        self.0.now_nanos()
    }
}

pub(crate) fn factory<P: Policy<NodeId>>(policy: P) -> ReadBalancerFactory {
    Box::new(move |replicas: &[NodeId], clock: Arc<dyn crate::Clock>| {
        // Health and freshness are the replica set's job: the balancer only balances among
        // the replicas it is allowed to use, so its own panic threshold is off.
        let lb = Balancer::builder(policy)
            .backends(replicas.iter().map(|&id| Backend::new(backend_id(id), id)))
            .panic_threshold(0)
            .clock(SetClock(clock))
            .build()?;
        Ok(Box::new(lb) as Box<dyn ReadBalancer>)
    })
}
