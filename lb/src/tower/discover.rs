//! Membership changes at runtime: a tower `Discover` stream ([`spawn_discover`], [`apply`])
//! and removal after a drain ([`retire`]).

use std::future::poll_fn;
use std::sync::Arc;
use std::time::Duration;

use ::tower::BoxError;
use ::tower::discover::{Change, Discover};

use crate::{Backend, BackendId, Balancer, Policy, Rejected, Result};

/// Applies one tower [`Change`] to `lb`: `Insert` adds the service under `id(&key)` (an
/// existing member with that id is replaced: removed, then added, so it restarts slow start),
/// `Remove` removes it (unknown ids are ignored: a stream may repeat a removal). Requests
/// already sent to a removed service finish on their own clone of it.
///
/// # Errors
/// An insert the balancer refuses comes back with the backend inside ([`Rejected`]).
pub fn apply<K, S, P>(
    lb: &Balancer<S, P>,
    change: Change<K, S>,
    id: impl Fn(&K) -> BackendId,
) -> std::result::Result<(), Rejected<Backend<S>>>
where
    P: Policy<S>,
{
    match change {
        Change::Insert(key, svc) => {
            let id = id(&key);
            // Only `UnknownBackend` can come back: nothing to replace.
            let _ = lb.remove(id);
            lb.add(Backend::new(id, svc))
        }
        Change::Remove(key) => {
            // Only `UnknownBackend` can come back: already gone.
            let _ = lb.remove(id(&key));
            Ok(())
        }
    }
}

/// Follows a tower [`Discover`] stream on a tokio task, [`apply`]ing each change to `lb`.
/// `id` names each key's backend (for string keys, [`BackendId::from_name`]). The task ends
/// with `Ok` when the stream ends or the balancer is dropped, and with the stream's error
/// (or a refused change) otherwise.
///
/// # Panics
/// Outside a tokio runtime (as `tokio::spawn` does).
pub fn spawn_discover<D, S, P>(
    lb: &Arc<Balancer<S, P>>,
    discover: D,
    id: impl Fn(&D::Key) -> BackendId + Send + 'static,
) -> tokio::task::JoinHandle<std::result::Result<(), BoxError>>
where
    D: Discover<Service = S> + Send + 'static,
    D::Key: Send,
    D::Error: Into<BoxError>,
    S: Send + Sync + 'static,
    P: Policy<S>,
{
    let weak = Arc::downgrade(lb);
    let mut discover = Box::pin(discover);
    tokio::spawn(async move {
        loop {
            let Some(change) = poll_fn(|cx| discover.as_mut().poll_discover(cx)).await else {
                return Ok(());
            };
            let change = change.map_err(Into::into)?;
            let Some(lb) = weak.upgrade() else {
                return Ok(());
            };
            apply(&lb, change, &id).map_err(|r| r.into_parts().0)?;
        }
    })
}

/// Drains backend `id` (no new picks), waits up to `grace` for its requests in flight to
/// finish, then removes it. Returns whether it drained completely within `grace`
/// (`Duration::MAX`: wait as long as it takes). Cancellation-safe: dropped midway, the backend
/// stays a draining member.
///
/// # Errors
/// [`Error::UnknownBackend`](crate::Error::UnknownBackend) if `id` is not (or no longer) a member.
pub async fn retire<B, P>(lb: &Balancer<B, P>, id: BackendId, grace: Duration) -> Result<bool>
where
    P: Policy<B>,
{
    let drain = lb.drain(id)?;
    let drained = tokio::time::timeout(grace, drain.wait()).await.is_ok();
    lb.remove(id)?;
    Ok(drained)
}
