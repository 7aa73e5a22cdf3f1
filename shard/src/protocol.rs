//! The migration protocol as sans-IO state machines over single-key store operations.
//!
//! Stores need only single-key atomic operations ([`StoreOp`]): get, set, compare-and-set and
//! delete. [`KeyOp`] drives one client request (read, write or delete of one key) from its
//! [`Route`]; [`MoveKey`] drives the migrator's move of one key. The application executes each
//! [`StoreOp`] on its store and feeds the [`StoreReply`] back. The rules (see the crate README,
//! "The migration protocol"):
//!
//! - **Source first.** While a step is under way the source owns a key as long as it holds an
//!   [`Entry`] for it; clients change such an entry only by compare-and-set, so a concurrent
//!   move makes them retry instead of overwriting. A delete leaves a [`Entry::Tombstone`] at the
//!   source (the source keeps owning the deleted key).
//! - **Absent at the source** means: on the target (ASK) while copying; retry (TRYAGAIN) while
//!   preparing.
//! - **The move** copies the source's entry to the target, then swaps the source's entry for
//!   [`Entry::Moved`] by compare-and-set (retrying from the start if a client changed it), then
//!   deletes it. No client creates an entry on a source after the step opened.
//! - **The drain.** A step opens ([`ShardMap::open_step`](crate::ShardMap::open_step)) only
//!   when no view older than its start is held, so no client with a pre-migration view can
//!   still write or delete blindly at the source once the target takes writes.
//!
//! These rules are checked exhaustively, all interleavings of several clients with every
//! migrator step, by `shard/examples/protocol_check.rs` (run in CI).

use crate::{Route, ShardId};

/// What a store holds for a key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Entry<V> {
    /// A live value.
    Value(V),
    /// Deleted while its step was under way: the source still owns the key, which reads as
    /// absent. The migrator removes it.
    Tombstone,
    /// Moved to the target: the source no longer owns the key. The migrator deletes it right
    /// after setting it.
    Moved,
}

/// One single-key atomic operation on one shard's store.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum StoreOp<V> {
    /// Read the key's entry. Reply: [`StoreReply::Got`].
    Get(ShardId),
    /// Write the entry unconditionally. Reply: [`StoreReply::Done`].
    Set(ShardId, Entry<V>),
    /// Replace `expected` by `new` if the key holds exactly `expected`. Reply:
    /// [`StoreReply::Swapped`].
    CompareAndSet {
        /// The shard.
        shard: ShardId,
        /// The entry the key must hold.
        expected: Entry<V>,
        /// The entry it gets.
        new: Entry<V>,
    },
    /// Remove the key. Reply: [`StoreReply::Done`].
    Delete(ShardId),
}

/// A store's answer to a [`StoreOp`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum StoreReply<V> {
    /// The key's entry, if any.
    Got(Option<Entry<V>>),
    /// Whether a compare-and-set swapped.
    Swapped(bool),
    /// A set or delete happened.
    Done,
}

/// A client request on one key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Request<V> {
    /// Read the value.
    Read,
    /// Write a value.
    Write(V),
    /// Delete the key.
    Delete,
}

/// How a request ended.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Outcome<V> {
    /// A read's answer.
    Read(Option<V>),
    /// The write or delete took effect.
    Done,
    /// The key's step is preparing and the source does not hold it: route again shortly with
    /// a new view (Redis's TRYAGAIN).
    TryAgain,
}

/// What to do next: a store operation, or the end.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Next<V> {
    /// Execute this and pass the reply to the next call.
    Op(StoreOp<V>),
    /// The request is over.
    Finished(Outcome<V>),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum ClientState {
    Start,
    /// Sent the first operation to the owner (`Route::Shard`).
    AtOwner,
    /// Sent a get to the source.
    ReadSource,
    /// Sent a compare-and-set to the source.
    SwapSource,
    /// Sent the operation to the target (ASK).
    AtTarget,
}

/// One client request driven through the protocol (sans-IO).
///
/// # Examples
///
/// ```
/// use std::collections::HashMap;
/// use tierkit_shard::{Entry, KeyOp, Next, Outcome, Request, Route, ShardId, StoreOp, StoreReply};
///
/// // Shard 0 holds the key; the step 0 -> 1 is copying.
/// let mut stores: HashMap<ShardId, Option<Entry<u32>>> =
///     [(ShardId(0), Some(Entry::Value(7))), (ShardId(1), None)].into();
/// let route = Route::Shard(ShardId(0)); // any route works: here, no migration
/// let mut op = KeyOp::new(route, Request::<u32>::Read);
/// let mut reply = None;
/// let outcome = loop {
///     match op.next(reply.take()) {
///         Next::Op(StoreOp::Get(s)) => reply = Some(StoreReply::Got(stores[&s].clone())),
///         Next::Op(other) => unreachable!("a read only gets: {other:?}"),
///         Next::Finished(o) => break o,
///     }
/// };
/// assert_eq!(outcome, Outcome::Read(Some(7)));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyOp<V> {
    route: Route,
    request: Request<V>,
    state: ClientState,
}

impl<V: Clone + PartialEq> KeyOp<V> {
    /// A request routed by `route` (from the [`Snapshot`](crate::Snapshot) the client holds
    /// until the request finishes).
    #[must_use]
    pub fn new(route: Route, request: Request<V>) -> Self {
        KeyOp {
            route,
            request,
            state: ClientState::Start,
        }
    }

    /// The route this request follows.
    #[must_use]
    pub fn route(&self) -> Route {
        self.route
    }

    /// Advances with the reply to the previous [`Next::Op`] (`None` on the first call). A
    /// reply of the wrong kind restarts the request.
    pub fn next(&mut self, reply: Option<StoreReply<V>>) -> Next<V> {
        let (source, target) = match self.route {
            Route::Shard(s) => return self.at_owner(s, reply),
            Route::Preparing { source, target } | Route::Migrating { source, target } => {
                (source, target)
            }
        };
        match (&self.state, reply) {
            (ClientState::ReadSource, Some(StoreReply::Got(entry))) => match entry {
                Some(e @ (Entry::Value(_) | Entry::Tombstone)) => self.at_source(source, e),
                // Not (or no longer) at the source.
                None | Some(Entry::Moved) => match self.route {
                    Route::Migrating { .. } => self.ask_target(target),
                    _ => Next::Finished(Outcome::TryAgain),
                },
            },
            (ClientState::SwapSource, Some(StoreReply::Swapped(true))) => {
                Next::Finished(Outcome::Done)
            }
            (ClientState::AtTarget, Some(StoreReply::Got(entry))) => {
                Next::Finished(Outcome::Read(value_of(entry)))
            }
            (ClientState::AtTarget, Some(StoreReply::Done)) => Next::Finished(Outcome::Done),
            // First call, a lost compare-and-set, or a reply that makes no sense: start over
            // at the source.
            _ => {
                self.state = ClientState::ReadSource;
                Next::Op(StoreOp::Get(source))
            }
        }
    }

    fn at_owner(&mut self, owner: ShardId, reply: Option<StoreReply<V>>) -> Next<V> {
        match (&self.state, reply) {
            (ClientState::AtOwner, Some(StoreReply::Got(entry))) => {
                Next::Finished(Outcome::Read(value_of(entry)))
            }
            (ClientState::AtOwner, Some(_)) => Next::Finished(Outcome::Done),
            _ => {
                self.state = ClientState::AtOwner;
                Next::Op(match &self.request {
                    Request::Read => StoreOp::Get(owner),
                    Request::Write(v) => StoreOp::Set(owner, Entry::Value(v.clone())),
                    Request::Delete => StoreOp::Delete(owner),
                })
            }
        }
    }

    /// The source holds `entry` (a value or a tombstone): serve there.
    fn at_source(&mut self, source: ShardId, entry: Entry<V>) -> Next<V> {
        let new = match (&self.request, &entry) {
            (Request::Read, e) => return Next::Finished(Outcome::Read(value_of(Some(e.clone())))),
            (Request::Delete, Entry::Tombstone) => return Next::Finished(Outcome::Done),
            (Request::Delete, _) => Entry::Tombstone,
            (Request::Write(v), _) => Entry::Value(v.clone()),
        };
        self.state = ClientState::SwapSource;
        Next::Op(StoreOp::CompareAndSet {
            shard: source,
            expected: entry,
            new,
        })
    }

    fn ask_target(&mut self, target: ShardId) -> Next<V> {
        self.state = ClientState::AtTarget;
        Next::Op(match &self.request {
            Request::Read => StoreOp::Get(target),
            Request::Write(v) => StoreOp::Set(target, Entry::Value(v.clone())),
            Request::Delete => StoreOp::Delete(target),
        })
    }
}

fn value_of<V>(entry: Option<Entry<V>>) -> Option<V> {
    match entry {
        Some(Entry::Value(v)) => Some(v),
        _ => None,
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum MoveState<V> {
    Start,
    ReadSource,
    /// Wrote the source's entry (or its absence) to the target.
    Copied(Entry<V>),
    /// Swapped the source's entry for `Moved`? (reply pending)
    Swapping,
    /// Deleting the `Moved` marker.
    Clearing,
}

/// The migrator's move of one key from a step's source to its target (sans-IO).
///
/// Copy the source's entry (a tombstone deletes the target's copy), swap the source's entry
/// for [`Entry::Moved`] if it is still the one copied (else start over: a client changed it),
/// then delete the marker. Finished when the source no longer holds the key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MoveKey<V> {
    source: ShardId,
    target: ShardId,
    state: MoveState<V>,
}

impl<V: Clone + PartialEq> MoveKey<V> {
    /// A move from `source` to `target`.
    #[must_use]
    pub fn new(source: ShardId, target: ShardId) -> Self {
        MoveKey {
            source,
            target,
            state: MoveState::Start,
        }
    }

    /// Advances with the reply to the previous [`Next::Op`] (`None` on the first call).
    /// Finishes with [`Outcome::Done`].
    pub fn next(&mut self, reply: Option<StoreReply<V>>) -> Next<V> {
        let state = std::mem::replace(&mut self.state, MoveState::Start);
        match (state, reply) {
            (MoveState::ReadSource, Some(StoreReply::Got(entry))) => match entry {
                None => Next::Finished(Outcome::Done),
                Some(Entry::Moved) => {
                    self.state = MoveState::Clearing;
                    Next::Op(StoreOp::Delete(self.source))
                }
                Some(e) => {
                    let op = match &e {
                        Entry::Value(v) => StoreOp::Set(self.target, Entry::Value(v.clone())),
                        _ => StoreOp::Delete(self.target),
                    };
                    self.state = MoveState::Copied(e);
                    Next::Op(op)
                }
            },
            (MoveState::Copied(e), Some(StoreReply::Done)) => {
                self.state = MoveState::Swapping;
                Next::Op(StoreOp::CompareAndSet {
                    shard: self.source,
                    expected: e,
                    new: Entry::Moved,
                })
            }
            (MoveState::Swapping, Some(StoreReply::Swapped(true))) => {
                self.state = MoveState::Clearing;
                Next::Op(StoreOp::Delete(self.source))
            }
            (MoveState::Clearing, Some(StoreReply::Done)) => Next::Finished(Outcome::Done),
            // First call, a lost swap, or a reply that makes no sense: start over.
            _ => {
                self.state = MoveState::ReadSource;
                Next::Op(StoreOp::Get(self.source))
            }
        }
    }
}
