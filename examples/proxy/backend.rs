//! Backend mode: a tiny HTTP/1.1 server answering after a delay, failing at a given rate.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// Response bodies: one owned chunk.
type Body = Full<Bytes>;

/// A SplitMix64 step on a shared state: a deterministic stream of failure decisions.
fn next(state: &AtomicU64) -> u64 {
    let mut z = state
        .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
        .wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Serves on `127.0.0.1:port` until the process ends.
pub(crate) async fn serve(port: u16, delay_ms: u64, fail_rate: f64) -> Result<(), tower::BoxError> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let listener = TcpListener::bind(addr).await?;
    eprintln!("backend: listening on {addr}, delay {delay_ms} ms, fail rate {fail_rate}");
    let delay = Duration::from_millis(delay_ms);
    // Fail when the top 53 bits, as a fraction, fall below the rate.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let threshold = (fail_rate * (1u64 << 53) as f64) as u64;
    let rng = Arc::new(AtomicU64::new(u64::from(port)));
    let ok = Bytes::from(format!("ok from {port}\n"));
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                eprintln!("backend: accept: {e}");
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let (rng, ok) = (Arc::clone(&rng), ok.clone());
        tokio::spawn(async move {
            let svc = service_fn(move |req: Request<Incoming>| {
                let (rng, ok) = (Arc::clone(&rng), ok.clone());
                async move { Ok::<_, Infallible>(answer(&req, delay, threshold, &rng, ok).await) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

async fn answer(
    req: &Request<Incoming>,
    delay: Duration,
    threshold: u64,
    rng: &AtomicU64,
    ok: Bytes,
) -> Response<Body> {
    if req.uri().path() == "/healthz" {
        return Response::new(Full::new(Bytes::from_static(b"healthy\n")));
    }
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if threshold > 0 && next(rng) >> 11 < threshold {
        let mut res = Response::new(Full::new(Bytes::from_static(b"injected failure\n")));
        *res.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        return res;
    }
    Response::new(Full::new(ok))
}
