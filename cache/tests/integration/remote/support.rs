//! Servers, raw connections and bounded waits for the remote-tier tests.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;

/// The shared nodes, or a loud failure naming the variable and the command that sets it.
pub(crate) fn shared_nodes() -> String {
    match std::env::var("TIERKIT_REDIS_NODES") {
        Ok(v) if !v.trim().is_empty() => v,
        _ => panic!(
            "TIERKIT_REDIS_NODES is unset: these tests need three redis-server processes; run \
             `TIERKIT_SERVERS=redis .ci/with-servers cargo test -p tierkit-cache --all-features`"
        ),
    }
}

/// A redis-server this test owns: killed (SIGKILL) when dropped.
pub(crate) struct OwnRedis {
    pub(crate) port: u16,
    child: Option<Child>,
}

impl OwnRedis {
    /// Starts `redis-server` on 127.0.0.1:`port` (26382-26389) without persistence and waits
    /// until it answers.
    pub(crate) fn start(port: u16) -> Self {
        assert!(
            (26382..=26389).contains(&port),
            "own servers use 26382-26389"
        );
        let _ = shared_nodes(); // same environment as the shared servers
        let dir = std::env::temp_dir().join(format!("tierkit-redis-test-{port}"));
        std::fs::create_dir_all(&dir).unwrap();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server on PATH (installed by .ci/servers.d/redis.sh)");
        let me = Self {
            port,
            child: Some(child),
        };
        wait_port(port);
        me
    }

    pub(crate) fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn pid(&self) -> String {
        self.child.as_ref().expect("running").id().to_string()
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.pid()])
            .status()
            .unwrap();
        assert!(ok.success(), "kill {sig}");
    }

    /// SIGSTOP: the server keeps its sockets and data but answers nothing.
    pub(crate) fn pause(&self) {
        self.signal("-STOP");
    }

    /// SIGCONT.
    pub(crate) fn resume(&self) {
        self.signal("-CONT");
    }

    /// SIGKILL, and wait for the process to be gone.
    pub(crate) fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        if let Some(c) = &self.child {
            // A paused server must be resumed to die cleanly under SIGKILL? SIGKILL works on
            // stopped processes; resume anyway so nothing lingers.
            let _ = Command::new("kill")
                .args(["-CONT", &c.id().to_string()])
                .status();
        }
        self.kill();
    }
}

/// Waits (at most 10 s) until 127.0.0.1:`port` accepts connections.
pub(crate) fn wait_port(port: u16) {
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "redis on {port} did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Polls `cond` until it holds; fails after `limit`. A bounded wait for an event the code
/// under test produces asynchronously (a probe, a push message), not a sleep hiding a race.
pub(crate) async fn eventually<F: FnMut() -> bool>(what: &str, limit: Duration, mut cond: F) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A plain connection to one server, for checking where keys physically are.
pub(crate) async fn raw(addr: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(format!("redis://{addr}/"))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

pub(crate) async fn raw_get(
    conn: &mut redis::aio::MultiplexedConnection,
    key: &[u8],
) -> Option<Bytes> {
    redis::cmd("GET").arg(key).query_async(conn).await.unwrap()
}

/// A loader that cannot fail, returning `v`.
pub(crate) fn value(
    v: &str,
) -> impl Future<Output = Result<Option<Bytes>, std::io::Error>> + Send + 'static {
    let v = Bytes::copy_from_slice(v.as_bytes());
    async move { Ok(Some(v)) }
}
