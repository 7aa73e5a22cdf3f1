//! Proxy mode: hyper server -> retry -> tierkit balancer -> pooled hyper-util client.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderName, Request, Response, StatusCode, Uri, header};
use http_body_util::{BodyExt, Either, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tierkit::lb::tower::{BalanceLayer, Balanced, Retries, ServerErrors, Tried, retire};
use tierkit::lb::{
    Backend, BackendId, Balancer, CheckConfig, HealthCheck, LeastConnections, LeastLatency,
    OutlierDetection, Policy, PowerOfTwoChoices, RoundRobin, SlowStart,
};
use tokio::net::TcpListener;
use tower::retry::Retry;
use tower::{BoxError, Layer, ServiceExt};

use crate::{Args, PolicyArg};

/// One backend: its address and the URI authority requests to it carry.
#[derive(Debug)]
pub(crate) struct Upstream {
    addr: SocketAddr,
    authority: Authority,
}

impl Upstream {
    fn new(addr: SocketAddr) -> Result<Backend<Self>, BoxError> {
        let authority = Authority::try_from(addr.to_string())?;
        Ok(Backend::new(id_of(addr), Self { addr, authority }))
    }
}

fn id_of(addr: SocketAddr) -> BackendId {
    BackendId::from_name(&addr.to_string())
}

type Body = Full<Bytes>;
type HttpClient = Client<HttpConnector, Body>;
type Route = fn(&Upstream, &mut Request<Body>);
type Stack<P> =
    Retry<Retries<ServerErrors>, Balanced<HttpClient, Upstream, P, Route, ServerErrors>>;
type Reply = Response<Either<Incoming, Full<Bytes>>>;

/// Points a request at the picked backend: `http://<backend><path?query>`.
fn route(up: &Upstream, req: &mut Request<Body>) {
    let pq = req
        .uri()
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    let mut parts = http::uri::Parts::default();
    parts.scheme = Some(Scheme::HTTP);
    parts.authority = Some(up.authority.clone());
    parts.path_and_query = Some(pq);
    if let Ok(uri) = Uri::from_parts(parts) {
        *req.uri_mut() = uri;
    }
}

/// Active check: `GET /healthz` answers 2xx.
struct HttpCheck(HttpClient);

impl HealthCheck<Upstream> for HttpCheck {
    fn check(&self, up: &Upstream) -> impl Future<Output = bool> + Send {
        let client = self.0.clone();
        let uri = format!("http://{}/healthz", up.authority);
        async move {
            let Ok(req) = Request::get(uri).body(Full::new(Bytes::new())) else {
                return false;
            };
            match client.request(req).await {
                Ok(res) => {
                    let ok = res.status().is_success();
                    let _ = res.into_body().collect().await;
                    ok
                }
                Err(_) => false,
            }
        }
    }
}

/// Runs the proxy until the process ends.
pub(crate) async fn serve(args: &Args) -> Result<(), BoxError> {
    match args.policy {
        PolicyArg::LeastLatency => run(args, LeastLatency::new()).await,
        PolicyArg::P2c => run(args, PowerOfTwoChoices::new()).await,
        PolicyArg::LeastConn => run(args, LeastConnections::new()).await,
        PolicyArg::RoundRobin => run(args, RoundRobin::new()).await,
    }
}

struct Proxy<P: Policy<Upstream>> {
    lb: Arc<Balancer<Upstream, P>>,
    stack: Stack<P>,
}

async fn run<P: Policy<Upstream>>(args: &Args, policy: P) -> Result<(), BoxError> {
    if args.backends.is_empty() {
        return Err(
            "--backends: give at least one address (or --backend PORT for a backend)".into(),
        );
    }
    let backends = args
        .backends
        .iter()
        .map(|&a| Upstream::new(a))
        .collect::<Result<Vec<_>, _>>()?;
    let lb = Arc::new(
        Balancer::builder()
            .policy(policy)
            .backends(backends)
            .outlier_detection(
                OutlierDetection::new()
                    .consecutive_failures(args.eject_after.max(1))
                    .base_ejection(Duration::from_secs(2))
                    .max_ejection(Duration::from_secs(10))
                    .max_ejected_percent(50),
            )
            .slow_start(SlowStart::new(Duration::from_secs(2)))
            .build()?,
    );
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(Duration::from_millis(500)));
    let client: HttpClient = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(1024)
        .build(connector);
    if args.check_ms > 0 {
        let every = Duration::from_millis(args.check_ms);
        let config = CheckConfig::new(every)
            .timeout(every.min(Duration::from_millis(250)))
            .rise(2)
            .fall(2);
        lb.spawn_health_checks(HttpCheck(client.clone()), config)?;
    }
    let layer = BalanceLayer::new(Arc::clone(&lb), route as Route)
        .classify(ServerErrors)
        .timeout(Duration::from_millis(args.timeout_ms.max(1)));
    let stack = Retry::new(
        Retries::new(args.retries).classify(ServerErrors),
        layer.layer(client),
    );
    let proxy = Arc::new(Proxy { lb, stack });
    let addr = SocketAddr::from(([127, 0, 0, 1], args.listen));
    let listener = TcpListener::bind(addr).await?;
    eprintln!(
        "proxy: listening on {addr}, {} backends, policy {}, retries {}",
        args.backends.len(),
        proxy.lb.policy().name(),
        args.retries
    );
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                eprintln!("proxy: accept: {e}");
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let proxy = Arc::clone(&proxy);
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let proxy = Arc::clone(&proxy);
                async move { Ok::<_, Infallible>(proxy.handle(req).await) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

/// Hop-by-hop headers (RFC 9110, section 7.6.1): not forwarded.
const HOP_BY_HOP: [HeaderName; 6] = [
    header::CONNECTION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHORIZATION,
];

fn text(status: StatusCode, body: String) -> Reply {
    let mut res = Response::new(Either::Right(Full::new(Bytes::from(body))));
    *res.status_mut() = status;
    res
}

impl<P: Policy<Upstream>> Proxy<P> {
    async fn handle(&self, req: Request<Incoming>) -> Reply {
        if req.uri().path().starts_with("/_tierkit/") {
            return self.admin(req.uri()).await;
        }
        let (mut parts, body) = req.into_parts();
        let body = match body.collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) => return text(StatusCode::BAD_REQUEST, format!("request body: {e}\n")),
        };
        for h in &HOP_BY_HOP {
            parts.headers.remove(h);
        }
        let mut out = Request::from_parts(parts, Full::new(body));
        out.extensions_mut().insert(Tried::new());
        match self.stack.clone().oneshot(out).await {
            Ok(res) => res.map(Either::Left),
            Err(e) => {
                let status = match e.downcast_ref::<tierkit::lb::Error>() {
                    Some(tierkit::lb::Error::NoBackend(_)) => StatusCode::SERVICE_UNAVAILABLE,
                    Some(tierkit::lb::Error::Timeout(_)) => StatusCode::GATEWAY_TIMEOUT,
                    _ => StatusCode::BAD_GATEWAY,
                };
                text(status, format!("{e}\n"))
            }
        }
    }

    /// `/_tierkit/stats`, `/_tierkit/add?addr=A`, `/_tierkit/remove?addr=A` (drain, then
    /// remove; answers when drained or after 10 s).
    async fn admin(&self, uri: &Uri) -> Reply {
        let addr = uri
            .query()
            .and_then(|q| q.strip_prefix("addr="))
            .and_then(|a| a.parse::<SocketAddr>().ok());
        match (uri.path(), addr) {
            ("/_tierkit/stats", _) => {
                let stats = self.lb.stats();
                let mut out = format!("policy {} eligible {}\n", stats.policy, stats.eligible);
                for b in &stats.backends {
                    let addr = self
                        .lb
                        .members()
                        .into_iter()
                        .find(|m| m.id() == b.id)
                        .map(|m| m.value().addr.to_string())
                        .unwrap_or_default();
                    let _ = writeln!(
                        out,
                        "{addr} health {:?} picks {} ok {} failed {} in_flight {} ejections {} latency {:?}",
                        b.health, b.picks, b.successes, b.failures, b.in_flight, b.ejections, b.latency
                    );
                }
                text(StatusCode::OK, out)
            }
            ("/_tierkit/add", Some(addr)) => match Upstream::new(addr) {
                Ok(b) => match self.lb.add(b) {
                    Ok(()) => text(StatusCode::OK, format!("added {addr}\n")),
                    Err(e) => text(StatusCode::CONFLICT, format!("{e}\n")),
                },
                Err(e) => text(StatusCode::BAD_REQUEST, format!("{e}\n")),
            },
            ("/_tierkit/remove", Some(addr)) => {
                match retire(&self.lb, id_of(addr), Duration::from_secs(10)).await {
                    Ok(drained) => text(
                        StatusCode::OK,
                        format!("removed {addr} (drained: {drained})\n"),
                    ),
                    Err(e) => text(StatusCode::NOT_FOUND, format!("{e}\n")),
                }
            }
            _ => text(
                StatusCode::NOT_FOUND,
                "admin: /_tierkit/stats, /_tierkit/add?addr=IP:PORT, /_tierkit/remove?addr=IP:PORT\n"
                    .to_string(),
            ),
        }
    }
}
