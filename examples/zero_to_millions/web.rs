//! The web tier: web servers are tokio tasks serving requests from a channel, one at a time,
//! behind a `tierkit::lb::Balancer`. A server is killed by aborting its task (its queued and
//! future requests fail); the client side retries elsewhere with `Context::exclude`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use tierkit::lb::{Backend, BackendId, Balancer, Context, Policy};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::Result;

/// What a user asks the service.
#[derive(Debug, Clone)]
pub enum Request {
    /// `GET /users/{id}`; `token`: the session's last write, for read-your-writes.
    GetUser {
        /// Profile id.
        id: u64,
        /// The reader's own last write, if reading their own profile.
        token: Option<tierkit::replication::SessionToken>,
    },
    /// `PUT /users/{id}` (the bio).
    UpdateUser {
        /// Profile id.
        id: u64,
        /// New bio.
        bio: String,
    },
    /// `POST /login`: creates a session for `user`.
    Login {
        /// User id.
        user: u64,
        /// Session id chosen by the (simulated) client.
        session: u64,
    },
    /// `GET /me` with a session cookie.
    Me {
        /// Session id.
        session: u64,
    },
    /// `POST /photos`: an upload to process in the background.
    Upload {
        /// Uploader.
        user: u64,
        /// Photo id.
        photo: u64,
    },
}

/// What a server answers.
#[derive(Debug, Clone, Default)]
pub struct Reply {
    /// The response body (JSON).
    pub body: String,
    /// The profile version read or written.
    pub version: u64,
    /// After a write: the session token for read-your-writes.
    pub token: Option<tierkit::replication::SessionToken>,
    /// Served by a replica (not the primary).
    pub from_replica: bool,
    /// Served from the cache.
    pub cache_hit: bool,
    /// `GET /me` found no session: the user was logged out.
    pub logged_out: bool,
    /// The response's entity tag (computed while rendering).
    pub etag: u64,
    /// A read-your-writes read whose token predates a failover: the primary answered, and
    /// the session's write may have been lost with the old primary.
    pub after_failover: bool,
}

/// An error a server returns (the server itself is up: the load balancer counts a success).
#[derive(Debug, Clone)]
pub struct AppError(pub String);

/// One server's own state: its id and its in-memory session table (stage 6, sticky).
#[derive(Debug, Default)]
pub struct ServerCtx {
    /// Server id (the balancer's backend id).
    pub id: u64,
    /// Sessions kept in this server's memory: session id -> user id.
    pub sessions: Mutex<HashMap<u64, u64>>,
}

impl ServerCtx {
    /// The session table, locked.
    pub fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<u64, u64>> {
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// What a web server spends on a response besides the application: HTTP framing, templating,
/// compression, TLS. Simulated as a fixed amount of real CPU work (a few microseconds) over
/// the body, so that one server process is a real bottleneck and more servers on more cores
/// (or fewer requests reaching them) show in the numbers.
fn render(reply: &mut Reply) {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for _ in 0..128 {
        for b in reply.body.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    reply.etag = h;
}

/// The application a server runs: the stage decides what a request does.
pub type Handler = Arc<dyn Fn(&ServerCtx, &Request) -> Result<Reply, AppError> + Send + Sync>;

struct Job {
    req: Request,
    reply: oneshot::Sender<Result<Reply, AppError>>,
}

/// The balancer's value for a server: where to send its requests.
#[derive(Debug, Clone)]
pub struct Endpoint {
    tx: mpsc::Sender<Job>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job").field("req", &self.req).finish()
    }
}

struct Running {
    task: JoinHandle<()>,
    killed: Arc<AtomicBool>,
}

/// Web servers behind a load balancer with policy `P`.
pub struct Pool<P: Policy<Endpoint>> {
    /// The load balancer.
    pub lb: Balancer<Endpoint, P>,
    handler: Handler,
    servers: Mutex<HashMap<u64, Running>>,
    /// Requests each server (ever) handled, by id, including removed ones.
    handled: Mutex<Vec<(u64, Arc<AtomicU64>)>>,
}

/// The outcome of one request as the client saw it.
#[derive(Debug)]
pub struct Call {
    /// The answer, or the error after every attempt.
    pub result: Result<Reply, AppError>,
    /// Servers whose attempt failed (dead, or gone mid-request).
    pub failed: Vec<u64>,
    /// The server that answered.
    pub served_by: Option<u64>,
}

impl<P: Policy<Endpoint>> Pool<P> {
    /// A pool with no servers yet.
    ///
    /// # Errors
    /// The balancer's build error.
    pub fn new(
        builder: tierkit::lb::BalancerBuilder<Endpoint, P>,
        handler: Handler,
    ) -> Result<Arc<Self>> {
        Ok(Arc::new(Pool {
            lb: builder.build()?,
            handler,
            servers: Mutex::new(HashMap::new()),
            handled: Mutex::new(Vec::new()),
        }))
    }

    fn servers(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Running>> {
        self.servers.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts server `id` (in `zone`) and adds it to the balancer.
    ///
    /// # Errors
    /// The balancer's error (duplicate id).
    pub fn start(&self, id: u64, zone: Option<&str>) -> Result<()> {
        let (tx, mut rx) = mpsc::channel::<Job>(4096);
        let ctx = Arc::new(ServerCtx {
            id,
            ..ServerCtx::default()
        });
        let handled = Arc::new(AtomicU64::new(0));
        let handler = Arc::clone(&self.handler);
        let count = Arc::clone(&handled);
        let killed = Arc::new(AtomicBool::new(false));
        let dead = Arc::clone(&killed);
        let task = tokio::spawn(async move {
            while let Some(job) = rx.recv().await {
                if dead.load(Ordering::SeqCst) {
                    // A dead server: the connection is reset, the request gets no answer.
                    drop(job);
                    continue;
                }
                let mut out = handler(&ctx, &job.req);
                if let Ok(reply) = &mut out {
                    render(reply);
                }
                count.fetch_add(1, Ordering::Relaxed);
                let _ = job.reply.send(out);
            }
        });
        let mut backend = Backend::new(id, Endpoint { tx });
        if let Some(z) = zone {
            backend = backend.zone(z.to_string());
        }
        self.lb.add(backend)?;
        self.handled
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((id, handled));
        self.servers().insert(id, Running { task, killed });
        Ok(())
    }

    /// Kills server `id`: from now on it answers nothing (queued and new requests fail, as
    /// connections to a dead host would). The balancer is NOT told: it finds out from the
    /// failures. (The task lives on to reset connections, and is stopped by `shutdown`.)
    pub fn kill(&self, id: u64) {
        if let Some(s) = self.servers().get(&id) {
            s.killed.store(true, Ordering::SeqCst);
        }
    }

    /// Scales in gracefully: drains server `id` (no new requests), waits for its in-flight
    /// requests, removes it from the balancer and stops it. Its memory is gone.
    ///
    /// # Errors
    /// The balancer's error (unknown id).
    pub async fn retire(&self, id: u64) -> Result<()> {
        let drain = self.lb.drain(BackendId(id))?;
        let t0 = Instant::now();
        while !drain.is_complete() && t0.elapsed().as_secs() < 5 {
            tokio::task::yield_now().await;
        }
        self.lb.remove(BackendId(id))?;
        self.kill(id);
        Ok(())
    }

    /// Ids of the running (not killed) servers.
    #[must_use]
    pub fn running(&self) -> Vec<u64> {
        let mut v: Vec<u64> = self
            .servers()
            .iter()
            .filter(|(_, s)| !s.killed.load(Ordering::SeqCst))
            .map(|(id, _)| *id)
            .collect();
        v.sort_unstable();
        v
    }

    /// Requests each server handled, by id (every server ever started).
    #[must_use]
    pub fn handled(&self) -> Vec<(u64, u64)> {
        self.handled
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(id, n)| (*id, n.load(Ordering::Relaxed)))
            .collect()
    }

    /// Whether picks can still choose `id` (it is in the balancer's published eligible set).
    #[must_use]
    pub fn is_serving(&self, id: u64) -> bool {
        self.lb.is_eligible(BackendId(id))
    }

    /// Sends a request through the balancer: up to 3 attempts, each on a server not tried yet.
    /// `key`: the session key for hash/sticky policies.
    pub async fn call(&self, req: &Request, key: Option<u64>) -> Call {
        let mut tried: Vec<BackendId> = Vec::new();
        let mut failed = Vec::new();
        let mut last = AppError("no server".to_string());
        for _ in 0..3 {
            let mut ctx = Context::new().exclude(&tried);
            if let Some(k) = key {
                ctx = ctx.with_hash(self.lb.hash_key(&k));
            }
            let lease = match self.lb.pick(&ctx) {
                Ok(l) => l,
                Err(e) => {
                    last = AppError(format!("no backend: {e}"));
                    break;
                }
            };
            let id = lease.id();
            let t0 = Instant::now();
            let (reply, rx) = oneshot::channel();
            let sent = lease
                .tx
                .send(Job {
                    req: req.clone(),
                    reply,
                })
                .await
                .is_ok();
            match rx.await {
                Ok(result) if sent => {
                    lease.success(t0.elapsed());
                    return Call {
                        result,
                        failed,
                        served_by: Some(id.0),
                    };
                }
                _ => {
                    lease.failure();
                    failed.push(id.0);
                    tried.push(id);
                    last = AppError(format!("server {id} is not answering"));
                }
            }
        }
        Call {
            result: Err(last),
            failed,
            served_by: None,
        }
    }

    /// Stops every server.
    pub fn shutdown(&self) {
        for (_, s) in self.servers().drain() {
            s.task.abort();
        }
    }
}

impl<P: Policy<Endpoint>> Drop for Pool<P> {
    fn drop(&mut self) {
        self.shutdown();
    }
}
