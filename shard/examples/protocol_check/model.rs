//! An exhaustive explorer of the migration protocol: every interleaving of a few clients (reads,
//! writes, deletes, a multi-key write) with every step of a migrator, over two shard stores
//! that offer only single-key atomic operations (get, set, set-if-absent, compare-and-set,
//! delete). Each transition is one store operation or one map change.
//!
//! Clients run the crate's own [`KeyOp`] machine and the migrator its [`MoveKey`] machine, with
//! routes from real [`ShardMap`] snapshots, so the checker checks the shipped code. Two
//! deliberately broken variants run the same exploration: the protocol this crate had before
//! (writes to the target, deletes to both, reads target-source-target, a copy that skips keys
//! the target already has), and the fixed protocol without its drain.
//!
//! Guarantees checked, per key, against an independent record of real-time order (never
//! against the stores' layout):
//! - **regular reads**: a read returns the value of a write (or the absence left by a delete
//!   or the initial state) that had not been superseded when the read began — an operation is
//!   superseded by one that started after it ended and has itself ended;
//! - **monotonic reads**: a client never reads a value strictly older than one it read before;
//! - **nothing lost, nothing resurrected**: when everything has finished, the owner holds a
//!   value (or absence) of an operation no later operation superseded, and no other shard holds
//!   anything for the key.

use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use tierkit_shard::{
    Entry, HashSlots, KeyOp, MoveKey, Next, Outcome, Request, Route, ShardId, ShardMap, Snapshot,
    StoreOp, StoreReply,
};

/// Which protocol to explore.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Variant {
    /// The crate's protocol: source first, tombstones, compare-and-set moves, the drain.
    Fixed,
    /// The old protocol: target-first writes, deletes to both, a copy that skips existing keys.
    TargetFirst,
    /// The fixed protocol without the drain (the step opens as soon as it starts).
    NoDrain,
    /// The old protocol with the drain added: still broken (a delete between the copy's read
    /// at the source and its insert at the target is undone).
    TargetFirstDrained,
}

impl Variant {
    /// Parses `fixed`, `target-first`, `no-drain`.
    pub(crate) fn parse(s: &str) -> Option<Variant> {
        match s {
            "fixed" => Some(Variant::Fixed),
            "target-first" => Some(Variant::TargetFirst),
            "no-drain" => Some(Variant::NoDrain),
            "target-first-drained" => Some(Variant::TargetFirstDrained),
            _ => None,
        }
    }
}

/// One client request in a script.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Req {
    /// Read key `k`.
    Read(u8),
    /// Write key `k` (the value is the operation's id).
    Write(u8),
    /// Delete key `k`.
    Delete(u8),
    /// Write both keys in one multi-key request (co-located keys).
    MSet,
}

/// Two keys, both moving from shard 0 to shard 1.
pub(crate) const KEYS: [&str; 2] = ["{u}a", "{u}b"];
const SOURCE: ShardId = ShardId(0);
const TARGET: ShardId = ShardId(1);

/// A scenario: scripts of client requests.
#[derive(Debug, Clone)]
pub(crate) struct Scenario {
    /// One script per client.
    pub(crate) clients: Vec<Vec<Req>>,
}

impl Scenario {
    /// Small enough for a debug-build unit test (seconds), large enough to break both mutants.
    pub(crate) fn small() -> Self {
        Scenario {
            clients: vec![
                vec![Req::Write(0), Req::Read(0)],
                vec![Req::Delete(0)],
                vec![Req::Read(0), Req::Read(0)],
            ],
        }
    }

    /// Four clients, seven requests: 35.9 M states, about 6 minutes in a release build.
    pub(crate) fn large() -> Self {
        Scenario {
            clients: vec![
                vec![Req::Write(0), Req::Read(0)],
                vec![Req::Delete(0), Req::Read(1)],
                vec![Req::Read(0), Req::Read(0)],
                vec![Req::MSet],
            ],
        }
    }

    /// CI's run (release build).
    pub(crate) fn full() -> Self {
        Scenario {
            clients: vec![
                vec![Req::Write(0), Req::Read(0)],
                vec![Req::Delete(0), Req::MSet],
                vec![Req::Read(0), Req::Read(1)],
            ],
        }
    }
}

/// Operation ids are bits of a `u32`: 0 and 1 are the keys' initial values.
type Mask = u32;

fn bit(id: u8) -> Mask {
    1 << id
}

/// The abstract machine of one client request, per variant.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Machine {
    New(KeyOp<u8>),
    /// The old protocol's request: the route and how far it went.
    Old {
        route: Route,
        stage: u8,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct InFlight {
    /// Index of the view (snapshot) the request routed with.
    view: u8,
    /// For each key touched: (key, effect op id (0 for reads), machine, reply to feed).
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Part {
    key: u8,
    op: u8,
    request: Request<u8>,
    machine: Machine,
    /// The store operation this part executes next (new protocol).
    pending: Option<StoreOp<u8>>,
    finished: Option<Outcome<u8>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Client {
    /// Next request in the script.
    pc: usize,
    flight: Option<InFlight>,
    /// The view the last TRYAGAIN was answered under (retry only with a newer one).
    tried_at: Option<u8>,
    /// Per key: the candidate ops of the last read (0 if none yet).
    last_seen: [Mask; 2],
    /// Per key: the admissible set of the read in flight.
    adm: [Mask; 2],
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Mig {
    Start,
    /// Preparing: waits for the drain.
    Drain,
    Scan,
    /// Moving keys: remaining key mask, the machine of the current key, its pending reply.
    Moving {
        left: u8,
        key: u8,
        machine: MoveMachine,
        pending: Option<StoreOp<u8>>,
    },
    Finish,
    Complete,
    Done,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum MoveMachine {
    New(MoveKey<u8>),
    /// The old copy: stage 0 get source, 1 set-if-absent target, 2 delete source.
    Old {
        stage: u8,
        value: Option<u8>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct State {
    stores: [[Option<Entry<u8>>; 2]; 2],
    view: u8,
    clients: Vec<Client>,
    mig: Mig,
    /// Per key: effect ops done and not superseded; in flight; ever done.
    live: [Mask; 2],
    flying: [Mask; 2],
    ever: [Mask; 2],
    /// Per op: the effect ops of its key done when it started.
    before: [Mask; 32],
}

/// The views, by index: 0 pending, 1 preparing, 2 copying, 3 done, 4 after the cut-over.
struct Views {
    snaps: Vec<Arc<Snapshot<()>>>,
}

impl Views {
    fn new() -> Views {
        let all0 = HashSlots::from_table(&[SOURCE; 16_384]).expect("table");
        let all1 = HashSlots::from_table(&[TARGET; 16_384]).expect("table");
        let map: ShardMap<()> = ShardMap::builder()
            .shard(SOURCE, ())
            .shard(TARGET, ())
            .strategy(all0)
            .build()
            .expect("map");
        let plan = map.plan_to(all1).expect("plan");
        let id = map.begin(plan).expect("begin");
        let mut snaps = vec![map.snapshot()];
        map.start_step(id, 0).expect("start");
        snaps.push(map.snapshot());
        map.open_step(id, 0).expect("open");
        snaps.push(map.snapshot());
        map.finish_step(id, 0).expect("finish");
        snaps.push(map.snapshot());
        map.complete(id).expect("complete");
        snaps.push(map.snapshot());
        Views { snaps }
    }

    fn route(&self, view: u8, key: u8) -> Route {
        self.snaps[usize::from(view)].route(KEYS[usize::from(key)])
    }

    fn route_all(&self, view: u8) -> Result<Option<ShardId>, tierkit_shard::Redirect> {
        self.snaps[usize::from(view)].route_all(KEYS)
    }
}

/// What the exploration found.
#[derive(Debug)]
pub(crate) struct Report {
    /// Distinct states visited.
    pub(crate) states: u64,
    /// Complete executions checked at their end.
    pub(crate) finals: u64,
    /// The first violation, with the transitions leading to it.
    pub(crate) violation: Option<(String, Vec<String>)>,
}

struct Explorer {
    variant: Variant,
    scripts: Vec<Vec<Req>>,
    /// Op id of each (client, request index, key) effect.
    op_ids: Vec<Vec<[u8; 2]>>,
    deletes: Mask,
    views: Views,
    seen: HashSet<u64>,
    path: Vec<String>,
    finals: u64,
    max_states: u64,
}

fn shard_index(s: ShardId) -> usize {
    usize::from(s != SOURCE)
}

/// Executes one store operation atomically.
fn execute(stores: &mut [[Option<Entry<u8>>; 2]; 2], key: u8, op: &StoreOp<u8>) -> StoreReply<u8> {
    let k = usize::from(key);
    match op {
        StoreOp::Get(s) => StoreReply::Got(stores[shard_index(*s)][k].clone()),
        StoreOp::Set(s, e) => {
            stores[shard_index(*s)][k] = Some(e.clone());
            StoreReply::Done
        }
        StoreOp::CompareAndSet {
            shard,
            expected,
            new,
        } => {
            let slot = &mut stores[shard_index(*shard)][k];
            if slot.as_ref() == Some(expected) {
                *slot = Some(new.clone());
                StoreReply::Swapped(true)
            } else {
                StoreReply::Swapped(false)
            }
        }
        StoreOp::Delete(s) => {
            stores[shard_index(*s)][k] = None;
            StoreReply::Done
        }
    }
}

fn set_if_absent(stores: &mut [[Option<Entry<u8>>; 2]; 2], s: ShardId, key: u8, v: u8) {
    let slot = &mut stores[shard_index(s)][usize::from(key)];
    if slot.is_none() {
        *slot = Some(Entry::Value(v));
    }
}

/// The old client protocol, one store operation per call: writes to the target; deletes to the
/// source, then the target; reads target, source, target.
fn old_step(
    stores: &mut [[Option<Entry<u8>>; 2]; 2],
    key: u8,
    route: Route,
    stage: &mut u8,
    request: &Request<u8>,
) -> Option<Outcome<u8>> {
    let get = |stores: &[[Option<Entry<u8>>; 2]; 2], s: ShardId| match &stores[shard_index(s)]
        [usize::from(key)]
    {
        Some(Entry::Value(v)) => Some(*v),
        _ => None,
    };
    let (source, target) = match route {
        Route::Shard(s) => {
            return Some(match request {
                Request::Read => Outcome::Read(get(stores, s)),
                Request::Write(v) => {
                    stores[shard_index(s)][usize::from(key)] = Some(Entry::Value(*v));
                    Outcome::Done
                }
                Request::Delete => {
                    stores[shard_index(s)][usize::from(key)] = None;
                    Outcome::Done
                }
            });
        }
        Route::Preparing { source, target } | Route::Migrating { source, target } => {
            (source, target)
        }
        _ => return Some(Outcome::TryAgain),
    };
    *stage += 1;
    match (request, *stage) {
        (Request::Write(v), _) => {
            stores[shard_index(target)][usize::from(key)] = Some(Entry::Value(*v));
            Some(Outcome::Done)
        }
        (Request::Delete, 1) => {
            stores[shard_index(source)][usize::from(key)] = None;
            None
        }
        (Request::Delete, _) => {
            stores[shard_index(target)][usize::from(key)] = None;
            Some(Outcome::Done)
        }
        (Request::Read, 1) => get(stores, target).map(|v| Outcome::Read(Some(v))),
        (Request::Read, 2) => get(stores, source).map(|v| Outcome::Read(Some(v))),
        (Request::Read, _) => Some(Outcome::Read(get(stores, target))),
    }
}

impl Explorer {
    fn initial(&self) -> State {
        let mut before = [0; 32];
        before[0] = 0;
        before[1] = 0;
        State {
            stores: [[Some(Entry::Value(0)), Some(Entry::Value(1))], [None, None]],
            view: 0,
            clients: self
                .scripts
                .iter()
                .map(|_| Client {
                    pc: 0,
                    flight: None,
                    tried_at: None,
                    last_seen: [0; 2],
                    adm: [0; 2],
                })
                .collect(),
            mig: Mig::Start,
            live: [bit(0), bit(1)],
            flying: [0; 2],
            ever: [bit(0), bit(1)],
            before,
        }
    }

    fn fingerprint(state: &State) -> u64 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        state.hash(&mut h);
        h.finish()
    }

    /// Every transition enabled in `state`: (description, next state) or a violation.
    fn successors(&self, state: &State) -> Result<Vec<(String, State)>, String> {
        let mut out = Vec::new();
        for c in 0..state.clients.len() {
            if let Some(next) = self.client_step(state, c)? {
                out.push(next);
            }
        }
        if let Some(next) = self.migrator_step(state) {
            out.push(next);
        }
        Ok(out)
    }

    fn client_step(&self, state: &State, c: usize) -> Result<Option<(String, State)>, String> {
        let client = &state.clients[c];
        let Some(flight) = &client.flight else {
            return Ok(self.client_start(state, c));
        };
        // Advance the first unfinished part by one store operation; computing the machine's
        // next operation is local, so it happens in the same transition.
        let Some(p) = flight.parts.iter().position(|p| p.finished.is_none()) else {
            return self.client_finish(state, c).map(Some);
        };
        let mut s = state.clone();
        let flight = s.clients[c].flight.as_mut().expect("in flight");
        let part = &mut flight.parts[p];
        let desc;
        match &mut part.machine {
            Machine::New(op) => {
                let store_op = part.pending.take().expect("a pending operation");
                desc = format!("client {c} key {} op {}: {store_op:?}", part.key, part.op);
                let reply = execute(&mut s.stores, part.key, &store_op);
                match op.next(Some(reply)) {
                    Next::Op(o) => part.pending = Some(o),
                    Next::Finished(outcome) => part.finished = Some(outcome),
                }
            }
            Machine::Old { route, stage } => {
                let route = *route;
                desc = format!(
                    "client {c} key {} (old, stage {stage}) {:?}",
                    part.key, part.request
                );
                let request = part.request.clone();
                part.finished = old_step(&mut s.stores, part.key, route, stage, &request);
            }
        }
        let all = s.clients[c]
            .flight
            .as_ref()
            .is_some_and(|f| f.parts.iter().all(|p| p.finished.is_some()));
        if all {
            let (end, s) = self.client_finish(&s, c)?;
            return Ok(Some((format!("{desc}; {end}"), s)));
        }
        Ok(Some((desc, s)))
    }

    /// Starts the client's next request with the current view.
    fn client_start(&self, state: &State, c: usize) -> Option<(String, State)> {
        let client = &state.clients[c];
        let req = *self.scripts[c].get(client.pc)?;
        if client.tried_at.is_some_and(|v| v >= state.view) {
            return None; // TRYAGAIN: wait for a newer view.
        }
        let mut s = state.clone();
        let view = s.view;
        let keys: Vec<(u8, Request<u8>)> = match req {
            Req::Read(k) => vec![(k, Request::Read)],
            Req::Write(k) => vec![(k, Request::Write(self.op_ids[c][client.pc][usize::from(k)]))],
            Req::Delete(k) => vec![(k, Request::Delete)],
            Req::MSet => {
                if self.views.route_all(view).is_err() {
                    s.clients[c].tried_at = Some(view);
                    return Some((format!("client {c}: MSET answered TRYAGAIN"), s));
                }
                vec![
                    (0, Request::Write(self.op_ids[c][client.pc][0])),
                    (1, Request::Write(self.op_ids[c][client.pc][1])),
                ]
            }
        };
        let mut parts = Vec::new();
        for (key, request) in keys {
            let k = usize::from(key);
            let op = self.op_ids[c][client.pc][k];
            if matches!(request, Request::Read) {
                s.clients[c].adm[k] = s.live[k] | s.flying[k];
            } else {
                s.flying[k] |= bit(op);
                s.before[usize::from(op)] = s.ever[k];
                // Reads in flight on this key may now see it.
                for other in &mut s.clients {
                    if other.flight.is_some() {
                        other.adm[k] |= bit(op);
                    }
                }
            }
            let route = self.views.route(view, key);
            let (machine, pending, finished) = match self.variant {
                Variant::TargetFirst | Variant::TargetFirstDrained => {
                    (Machine::Old { route, stage: 0 }, None, None)
                }
                _ => {
                    let mut m = KeyOp::new(route, request.clone());
                    match m.next(None) {
                        Next::Op(o) => (Machine::New(m), Some(o), None),
                        Next::Finished(f) => (Machine::New(m), None, Some(f)),
                    }
                }
            };
            parts.push(Part {
                key,
                op,
                request,
                machine,
                pending,
                finished,
            });
        }
        s.clients[c].flight = Some(InFlight { view, parts });
        Some((format!("client {c}: start {req:?} with view {view}"), s))
    }

    /// All parts finished: check and record.
    fn client_finish(&self, state: &State, c: usize) -> Result<(String, State), String> {
        let mut s = state.clone();
        let flight = s.clients[c].flight.take().expect("in flight");
        let mut retry = false;
        for part in &flight.parts {
            let k = usize::from(part.key);
            match part.finished.clone().expect("finished") {
                Outcome::TryAgain => {
                    retry = true;
                    if !matches!(part.request, Request::Read) {
                        // No effect: as if it never started.
                        s.flying[k] &= !bit(part.op);
                        for other in &mut s.clients {
                            other.adm[k] &= !bit(part.op);
                        }
                    }
                }
                Outcome::Read(value) => {
                    let adm = s.clients[c].adm[k];
                    let matching = match value {
                        Some(v) => bit(v) & adm,
                        None => self.deletes & adm,
                    };
                    if matching == 0 {
                        return Err(format!(
                            "client {c} read key {k} = {value:?}, not admissible (admissible ops {adm:#b})"
                        ));
                    }
                    let last = s.clients[c].last_seen[k];
                    if last != 0 && self.older(&s, matching, last) {
                        return Err(format!(
                            "client {c} read key {k} = {value:?} (ops {matching:#b}), older than what it read before (ops {last:#b})"
                        ));
                    }
                    s.clients[c].last_seen[k] = matching;
                }
                Outcome::Done => {
                    let op = part.op;
                    s.flying[k] &= !bit(op);
                    s.live[k] = (s.live[k] & !s.before[usize::from(op)]) | bit(op);
                    s.ever[k] |= bit(op);
                }
            }
        }
        if retry {
            s.clients[c].tried_at = Some(flight.view);
            return Ok((format!("client {c}: TRYAGAIN"), s));
        }
        s.clients[c].pc += 1;
        s.clients[c].tried_at = None;
        Ok((format!("client {c}: done"), s))
    }

    /// Whether every op of `new` ended before every op of `old` started.
    fn older(&self, s: &State, new: Mask, old: Mask) -> bool {
        (0..32u8).filter(|i| old & bit(*i) != 0).all(|o| {
            let before = s.before[usize::from(o)];
            new & !before == 0
        })
    }

    fn migrator_step(&self, state: &State) -> Option<(String, State)> {
        let mut s = state.clone();
        let desc = match &mut s.mig {
            Mig::Start => {
                match self.variant {
                    Variant::Fixed | Variant::TargetFirstDrained => {
                        s.view = 1;
                        s.mig = Mig::Drain;
                    }
                    Variant::NoDrain | Variant::TargetFirst => {
                        s.view = 2;
                        s.mig = Mig::Scan;
                    }
                }
                "migrator: start step".to_string()
            }
            Mig::Drain => {
                let old = state
                    .clients
                    .iter()
                    .any(|c| c.flight.as_ref().is_some_and(|f| f.view < 1));
                if old {
                    return None;
                }
                s.view = 2;
                s.mig = Mig::Scan;
                "migrator: drained, open step".to_string()
            }
            Mig::Scan => {
                let left = (0..2u8)
                    .filter(|&k| s.stores[0][usize::from(k)].is_some())
                    .fold(0u8, |m, k| m | (1 << k));
                s.mig = if left == 0 {
                    Mig::Finish
                } else {
                    Self::next_move(self.variant, left)
                };
                format!("migrator: scan found {left:#b}")
            }
            Mig::Moving {
                left,
                key,
                machine,
                pending,
            } => {
                let (k, l) = (*key, *left);
                let mut what = String::new();
                let done = match machine {
                    MoveMachine::New(m) => {
                        let op = pending.take().expect("a pending operation");
                        what = format!("{op:?}");
                        let reply = execute(&mut s.stores, k, &op);
                        match m.next(Some(reply)) {
                            Next::Op(o) => {
                                *pending = Some(o);
                                false
                            }
                            Next::Finished(_) => true,
                        }
                    }
                    MoveMachine::Old { stage, value } => {
                        match *stage {
                            0 => {
                                *value = match &s.stores[0][usize::from(k)] {
                                    Some(Entry::Value(v)) => Some(*v),
                                    _ => None,
                                }
                            }
                            1 => {
                                if let Some(v) = *value {
                                    set_if_absent(&mut s.stores, TARGET, k, v);
                                }
                            }
                            _ => s.stores[0][usize::from(k)] = None,
                        }
                        *stage += 1;
                        *stage == 3
                    }
                };
                if done {
                    let rest = l & !(1 << k);
                    s.mig = if rest == 0 {
                        Mig::Scan
                    } else {
                        Self::next_move(self.variant, rest)
                    };
                }
                format!("migrator: move key {k} {what}")
            }
            Mig::Finish => {
                s.view = 3;
                s.mig = Mig::Complete;
                "migrator: finish step".to_string()
            }
            Mig::Complete => {
                s.view = 4;
                s.mig = Mig::Done;
                "migrator: cut over".to_string()
            }
            Mig::Done => return None,
        };
        Some((desc, s))
    }

    fn next_move(variant: Variant, left: u8) -> Mig {
        let key = if left & 1 != 0 { 0 } else { 1 };
        let (machine, pending) = match variant {
            Variant::TargetFirst | Variant::TargetFirstDrained => (
                MoveMachine::Old {
                    stage: 0,
                    value: None,
                },
                None,
            ),
            _ => {
                let mut m = MoveKey::new(SOURCE, TARGET);
                let first = match m.next(None) {
                    Next::Op(o) => Some(o),
                    Next::Finished(_) => None,
                };
                (MoveMachine::New(m), first)
            }
        };
        Mig::Moving {
            left,
            key,
            machine,
            pending,
        }
    }

    /// The end of a complete execution: every key on its owner only, at a live value.
    fn check_final(&self, s: &State) -> Result<(), String> {
        for k in 0..2usize {
            if let Some(e) = &s.stores[0][k] {
                return Err(format!(
                    "key {k}: the old owner still holds {e:?} after the cut-over"
                ));
            }
            let value = match &s.stores[1][k] {
                None => None,
                Some(Entry::Value(v)) => Some(*v),
                Some(other) => return Err(format!("key {k}: the owner holds a marker {other:?}")),
            };
            let matching = match value {
                Some(v) => bit(v) & s.live[k],
                None => self.deletes & s.live[k],
            };
            if matching == 0 {
                return Err(format!(
                    "key {k}: ends as {value:?}, but the last operations were {:#b} (a write lost or a delete undone)",
                    s.live[k]
                ));
            }
        }
        Ok(())
    }

    fn dfs(&mut self, state: State) -> Option<String> {
        if !self.seen.insert(Self::fingerprint(&state)) {
            return None;
        }
        if self.seen.len() as u64 > self.max_states {
            return Some(format!("state budget of {} exceeded", self.max_states));
        }
        let next = match self.successors(&state) {
            Ok(n) => n,
            Err(violation) => return Some(violation),
        };
        if next.is_empty() {
            let all_done = state
                .clients
                .iter()
                .enumerate()
                .all(|(c, cl)| cl.pc == self.scripts[c].len() && cl.flight.is_none());
            if !all_done || state.mig != Mig::Done {
                return Some("deadlock: nothing can move".to_string());
            }
            self.finals += 1;
            return self.check_final(&state).err();
        }
        for (desc, s) in next {
            self.path.push(desc);
            if let Some(v) = self.dfs(s) {
                return Some(v);
            }
            self.path.pop();
        }
        None
    }
}

/// Explores every interleaving of `scenario` under `variant`.
pub(crate) fn explore(variant: Variant, scenario: &Scenario, max_states: u64) -> Report {
    let mut next_id = 2u8;
    let mut deletes = 0;
    let op_ids = scenario
        .clients
        .iter()
        .map(|script| {
            script
                .iter()
                .map(|r| {
                    let mut ids = [0u8; 2];
                    match r {
                        Req::Read(_) => {}
                        Req::Write(k) | Req::Delete(k) => {
                            ids[usize::from(*k)] = next_id;
                            if matches!(r, Req::Delete(_)) {
                                deletes |= bit(next_id);
                            }
                            next_id += 1;
                        }
                        Req::MSet => {
                            ids = [next_id, next_id + 1];
                            next_id += 2;
                        }
                    }
                    ids
                })
                .collect()
        })
        .collect();
    assert!(next_id <= 32, "at most 30 effect operations");
    let mut explorer = Explorer {
        variant,
        scripts: scenario.clients.clone(),
        op_ids,
        deletes,
        views: Views::new(),
        seen: HashSet::new(),
        path: Vec::new(),
        finals: 0,
        max_states,
    };
    let init = explorer.initial();
    let violation = explorer.dfs(init);
    Report {
        states: explorer.seen.len() as u64,
        finals: explorer.finals,
        violation: violation.map(|v| (v, explorer.path.clone())),
    }
}
