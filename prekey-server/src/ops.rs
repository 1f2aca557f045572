//! Operations: the Prometheus metrics the service records (names in one place, recorded
//! through the `metrics` facade, rendered by `metrics-exporter-prometheus`) and the
//! loopback HTTP endpoint serving them (`GET /metrics`) with a health check (`GET /health`).
//!
//! Without an installed recorder (tests, library use) recording is a no-op. The HTTP side
//! is deliberately minimal: one request per connection, a bounded request head, a timeout.

//! The metric names are always here (the service records them); the endpoint and the
//! recorder are the feature `standalone` (the binary's), off for library users such as the
//! demo's in-memory server.

#[cfg(feature = "standalone")]
use {
    metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle},
    std::future::Future,
    std::net::SocketAddr,
    std::time::Duration,
    tokio::io::{AsyncReadExt, AsyncWriteExt},
    tokio::net::{TcpListener, TcpStream},
    tokio::sync::watch,
    tracing::{debug, warn},
};

/// Counter: messages handled, labels `kind` (dake1, dake3, query, fragment, invalid) and
/// `result` (ok, or the rejection's reason).
pub const REQUESTS: &str = "prekey_requests_total";
/// Histogram: seconds to handle a message, label `kind`.
pub const LATENCY: &str = "prekey_request_duration_seconds";
/// Counter: limit hits, label `limit` (see [`crate::limits::LimitKind::as_str`]).
pub const LIMIT_HITS: &str = "prekey_limit_hits_total";
/// Gauge: DAKEs in flight (DAKE slots in use).
pub const DAKE_SLOTS: &str = "prekey_dake_slots_in_use";
/// Gauge: bytes buffered for fragment reassembly.
pub const REASSEMBLY_BYTES: &str = "prekey_reassembly_bytes";
/// Gauge: rows in the store, label `table` (client_profiles, prekey_profiles,
/// prekey_messages).
pub const STORED: &str = "prekey_stored";
/// Gauge: 1 while the transport is connected (component) or serving (stdio).
pub const UP: &str = "prekey_transport_up";

#[cfg(feature = "standalone")]
/// Latency buckets, seconds: 100 µs … 5 s.
const LATENCY_BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

#[cfg(feature = "standalone")]
/// Why the operations endpoint could not start.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    /// The Prometheus recorder could not be built or installed.
    #[error("metrics recorder: {0}")]
    Recorder(String),
    /// The listening socket could not be opened.
    #[error("metrics listener {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The error.
        source: std::io::Error,
    },
}

#[cfg(feature = "standalone")]
/// Installs the process-wide Prometheus recorder and returns the handle that renders it.
pub fn install_recorder() -> Result<PrometheusHandle, OpsError> {
    PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(LATENCY.to_owned()), &LATENCY_BUCKETS)
        .map_err(|e| OpsError::Recorder(e.to_string()))?
        .install_recorder()
        .map_err(|e| OpsError::Recorder(e.to_string()))
}

#[cfg(feature = "standalone")]
/// Binds the endpoint (loopback only; the configuration refuses other addresses).
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, OpsError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| OpsError::Bind { addr, source })
}

#[cfg(feature = "standalone")]
/// Most bytes of a request head read.
const MAX_REQUEST_HEAD: usize = 8 * 1024;
#[cfg(feature = "standalone")]
/// How long a client may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

#[cfg(feature = "standalone")]
/// Serves `/metrics` (the rendered recorder) and `/health` (200 if `healthy()` resolves to
/// true, else 503) until `shutdown`.
pub async fn serve<H, F>(
    listener: TcpListener,
    metrics: PrometheusHandle,
    healthy: H,
    mut shutdown: watch::Receiver<bool>,
) where
    H: Fn() -> F + Clone + Send + Sync + 'static,
    F: Future<Output = bool> + Send,
{
    loop {
        let (sock, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    warn!(error = %e, "metrics endpoint: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        debug!(%peer, "metrics endpoint connection");
        let (metrics, healthy) = (metrics.clone(), healthy.clone());
        tokio::spawn(async move {
            let _ = tokio::time::timeout(REQUEST_TIMEOUT, answer(sock, &metrics, healthy)).await;
        });
    }
}

#[cfg(feature = "standalone")]
async fn answer<H, F>(mut sock: TcpStream, metrics: &PrometheusHandle, healthy: H)
where
    H: Fn() -> F,
    F: Future<Output = bool>,
{
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_REQUEST_HEAD {
        match sock.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(buf.get(..n).unwrap_or_default()),
        }
    }
    let line = head.split(|b| *b == b'\r').next().unwrap_or_default();
    let mut parts = line.split(|b| *b == b' ');
    let (method, path) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    let (status, ctype, body) = match (method, path) {
        (b"GET", b"/metrics") => (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            metrics.render(),
        ),
        (b"GET", b"/health") => {
            if healthy().await {
                ("200 OK", "text/plain", "ok\n".to_owned())
            } else {
                (
                    "503 Service Unavailable",
                    "text/plain",
                    "unavailable\n".to_owned(),
                )
            }
        }
        (b"GET", _) => ("404 Not Found", "text/plain", "not found\n".to_owned()),
        _ => (
            "405 Method Not Allowed",
            "text/plain",
            "GET only\n".to_owned(),
        ),
    };
    let resp = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = sock.write_all(resp.as_bytes()).await;
    let _ = sock.shutdown().await;
}
