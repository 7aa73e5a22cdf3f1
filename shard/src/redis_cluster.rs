//! Reading a real Redis Cluster through the `redis` crate: its [`Topology`] from
//! `CLUSTER SHARDS` (or `CLUSTER SLOTS` on servers before 7.0), and its redirects from
//! [`redis::RedisError`]s.
//!
//! The crate routes; the application's `redis` client sends. A request loop looks like this
//! (see the crate's `tests/integration/redis_cluster.rs` and the `sharded_users --redis`
//! example for complete ones):
//!
//! ```no_run
//! use tierkit_shard::redis_cluster::fetch_topology;
//! use tierkit_shard::{ClusterRouter, RedirectAction};
//!
//! # async fn run(conns: &mut Vec<redis::aio::MultiplexedConnection>) -> Result<(), Box<dyn std::error::Error>> {
//! let router = ClusterRouter::new(&fetch_topology(&mut conns[0]).await?);
//! let (mut node, mut asking) = (router.route("user:42").ok_or("uncovered")?, false);
//! loop {
//!     let conn = &mut conns[node.0 as usize]; // one connection per router node
//!     let mut pipe = redis::pipe();
//!     if asking {
//!         pipe.cmd("ASKING").ignore();
//!     }
//!     pipe.cmd("GET").arg("user:42");
//!     match pipe.query_async::<(Option<String>,)>(conn).await {
//!         Ok((value,)) => break,
//!         Err(e) => match router.on_redis_error(&e)? {
//!             Some(RedirectAction::Retry { node: n, asking: a }) => (node, asking) = (n, a),
//!             Some(RedirectAction::RetryLater) => {
//!                 tokio::time::sleep(std::time::Duration::from_millis(5)).await
//!             }
//!             _ => return Err(e.into()),
//!         },
//!     }
//! }
//! if router.refresh_due() {
//!     router.refresh(&fetch_topology(&mut conns[0]).await?);
//! }
//! # Ok(())
//! # }
//! ```

use redis::Value;

use crate::{ClusterRedirect, Error, Node, Result, Topology, parse_redirect_parts};

/// Reads the cluster's topology through `conn` (any node): `CLUSTER SHARDS`, or
/// `CLUSTER SLOTS` if the server does not know that command (Redis before 7.0).
///
/// # Errors
/// [`Error::Protocol`] if both commands fail or the reply cannot be read.
pub async fn fetch_topology<C>(conn: &mut C) -> Result<Topology>
where
    C: redis::aio::ConnectionLike + Send,
{
    match redis::cmd("CLUSTER")
        .arg("SHARDS")
        .query_async::<Value>(conn)
        .await
    {
        Ok(reply) => topology_from_shards(&reply),
        Err(shards_error) => {
            let reply = redis::cmd("CLUSTER")
                .arg("SLOTS")
                .query_async::<Value>(conn)
                .await
                .map_err(|e| {
                    Error::Protocol(format!(
                        "CLUSTER SHARDS: {shards_error}; CLUSTER SLOTS: {e}"
                    ))
                })?;
            topology_from_slots(&reply)
        }
    }
}

/// The redirect in a `redis` error of a single command (`MOVED`, `ASK`, `TRYAGAIN`,
/// `CROSSSLOT`), if it is one. A pipeline's error (a command sent after `ASKING`) carries its
/// details inside: use [`ClusterRouter::on_redis_error`](crate::ClusterRouter::on_redis_error),
/// which reads both.
///
/// # Errors
/// [`Error::Protocol`] for a malformed `MOVED`/`ASK`.
pub fn redirect_of(error: &redis::RedisError) -> Result<Option<ClusterRedirect<'_>>> {
    match error.code() {
        Some(code) => parse_redirect_parts(code, error.detail().unwrap_or("")),
        None => Ok(None),
    }
}

fn bad(what: &str, v: &Value) -> Error {
    let mut shown = format!("{v:?}");
    shown.truncate(200);
    Error::Protocol(format!("{what}: {shown}"))
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        Value::VerbatimString { text, .. } => Some(text.clone()),
        Value::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        other => text(other)?.parse().ok(),
    }
}

fn slot(v: &Value) -> Option<u16> {
    int(v).and_then(|i| u16::try_from(i).ok())
}

/// A RESP3 map or a RESP2 array of alternating keys and values, as (key, value) pairs.
fn pairs(v: &Value) -> Option<Vec<(String, &Value)>> {
    match v {
        Value::Map(m) => m.iter().map(|(k, v)| Some((text(k)?, v))).collect(),
        Value::Array(a) if a.len() % 2 == 0 => a
            .chunks_exact(2)
            .map(|kv| Some((text(&kv[0])?, &kv[1])))
            .collect(),
        _ => None,
    }
}

fn items(v: &Value) -> Option<&[Value]> {
    match v {
        Value::Array(a) | Value::Set(a) => Some(a),
        _ => None,
    }
}

/// Reads a `CLUSTER SHARDS` reply (RESP2 or RESP3): each shard's slot ranges go to its master
/// (the node whose `role` is `master`), reached at its `endpoint` (or `ip` when the endpoint
/// is unknown) and `port`.
///
/// # Errors
/// [`Error::Protocol`] if the reply is not shaped as Redis documents it.
pub fn topology_from_shards(reply: &Value) -> Result<Topology> {
    let mut topology = Topology::new();
    for shard in items(reply).ok_or_else(|| bad("CLUSTER SHARDS", reply))? {
        let fields = pairs(shard).ok_or_else(|| bad("shard", shard))?;
        let get = |name: &str| fields.iter().find(|(k, _)| k == name).map(|(_, v)| *v);
        let slots = get("slots")
            .and_then(items)
            .ok_or_else(|| bad("shard slots", shard))?;
        let nodes = get("nodes")
            .and_then(items)
            .ok_or_else(|| bad("shard nodes", shard))?;
        let mut master = None;
        for node in nodes {
            let f = pairs(node).ok_or_else(|| bad("node", node))?;
            let field = |name: &str| f.iter().find(|(k, _)| k == name).and_then(|(_, v)| text(v));
            if field("role").as_deref() != Some("master") {
                continue;
            }
            let host = match field("endpoint") {
                Some(e) if !e.is_empty() && e != "?" => e,
                _ => field("ip").ok_or_else(|| bad("node ip", node))?,
            };
            let port = field("port")
                .or_else(|| field("tls-port"))
                .ok_or_else(|| bad("node port", node))?;
            master = Some(Node::new(
                field("id").unwrap_or_default(),
                format!("{host}:{port}"),
            ));
        }
        if slots.is_empty() {
            continue;
        }
        let master = master.ok_or_else(|| bad("shard without a master", shard))?;
        if slots.len() % 2 != 0 {
            return Err(bad("odd slot list", shard));
        }
        for range in slots.chunks_exact(2) {
            let (first, last) = (slot(&range[0]), slot(&range[1]));
            let (Some(first), Some(last)) = (first, last) else {
                return Err(bad("slot range", shard));
            };
            topology.add_slots(first, last, master.clone())?;
        }
    }
    Ok(topology)
}

/// Reads a `CLUSTER SLOTS` reply: `[first, last, [host, port, id, ...], replicas...]` per range.
///
/// # Errors
/// [`Error::Protocol`] if the reply is not shaped as Redis documents it.
pub fn topology_from_slots(reply: &Value) -> Result<Topology> {
    let mut topology = Topology::new();
    for range in items(reply).ok_or_else(|| bad("CLUSTER SLOTS", reply))? {
        let r = items(range).ok_or_else(|| bad("slot range", range))?;
        let (Some(first), Some(last), Some(master)) = (
            r.first().and_then(slot),
            r.get(1).and_then(slot),
            r.get(2).and_then(items),
        ) else {
            return Err(bad("slot range", range));
        };
        let host = master
            .first()
            .and_then(text)
            .ok_or_else(|| bad("host", range))?;
        let port = master
            .get(1)
            .and_then(int)
            .ok_or_else(|| bad("port", range))?;
        let id = master.get(2).and_then(text).unwrap_or_default();
        topology.add_slots(first, last, Node::new(id, format!("{host}:{port}")))?;
    }
    Ok(topology)
}

impl crate::ClusterRouter {
    /// Applies the redirect in a `redis` error (of a single command or of a pipeline, whose
    /// first redirect counts) and says what to do; `Ok(None)` if the error is not a redirect.
    ///
    /// # Errors
    /// As [`on_redirect`](Self::on_redirect); [`Error::Protocol`] for a malformed redirect.
    pub fn on_redis_error(
        &self,
        error: &redis::RedisError,
    ) -> Result<Option<crate::RedirectAction>> {
        // A clone shares the server errors (an `Arc`).
        let Some(errors) = error.clone().into_server_errors() else {
            return Ok(None);
        };
        for (_, e) in errors.iter() {
            if let Some(r) = parse_redirect_parts(e.code(), e.details().unwrap_or(""))? {
                return self.on_redirect(&r).map(Some);
            }
        }
        Ok(None)
    }

    /// Fetches the topology through `conn` and installs it ([`refresh`](Self::refresh)).
    ///
    /// # Errors
    /// As [`fetch_topology`].
    pub async fn refresh_from<C>(&self, conn: &mut C) -> Result<()>
    where
        C: redis::aio::ConnectionLike + Send,
    {
        let topology = fetch_topology(conn).await?;
        self.refresh(&topology);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn reads_resp2_cluster_shards_and_slots() {
        let node = |id: &str, port: i64, role: &str| {
            Value::Array(vec![
                bulk("id"),
                bulk(id),
                bulk("port"),
                Value::Int(port),
                bulk("ip"),
                bulk("127.0.0.1"),
                bulk("endpoint"),
                bulk("127.0.0.1"),
                bulk("role"),
                bulk(role),
                bulk("health"),
                bulk("online"),
            ])
        };
        let shards = Value::Array(vec![
            Value::Array(vec![
                bulk("slots"),
                Value::Array(vec![Value::Int(0), Value::Int(8191)]),
                bulk("nodes"),
                Value::Array(vec![node("r", 7002, "replica"), node("a", 7000, "master")]),
            ]),
            Value::Array(vec![
                bulk("slots"),
                Value::Array(vec![Value::Int(8192), Value::Int(16383)]),
                bulk("nodes"),
                Value::Array(vec![node("b", 7001, "master")]),
            ]),
        ]);
        let t = topology_from_shards(&shards).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.covered(), 16_384);
        assert_eq!(t.owner(0).map(|n| n.addr.as_str()), Some("127.0.0.1:7000"));
        assert_eq!(t.owner(16_383).map(|n| n.id.as_str()), Some("b"));
        let slots = Value::Array(vec![
            Value::Array(vec![
                Value::Int(0),
                Value::Int(8191),
                Value::Array(vec![bulk("127.0.0.1"), Value::Int(7000), bulk("a")]),
            ]),
            Value::Array(vec![
                Value::Int(8192),
                Value::Int(16383),
                Value::Array(vec![bulk("127.0.0.1"), Value::Int(7001), bulk("b")]),
            ]),
        ]);
        assert_eq!(topology_from_slots(&slots).ok(), Some(t));
        assert!(topology_from_shards(&Value::Int(3)).is_err());
        assert!(topology_from_slots(&Value::Array(vec![Value::Nil])).is_err());
    }
}
