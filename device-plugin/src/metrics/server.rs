//! The scrape endpoint: a deliberately tiny HTTP/1.1 responder on a TCP listener.
//!
//! `GET /metrics` (or `HEAD`) → 200 with [`Registry::render`]; other methods on `/metrics` → 405;
//! any other path → 404; a request that cannot be parsed → 400. One request per connection
//! (`Connection: close`). The agent runs with hostNetwork, so by default it binds only loopback
//! addresses: exposing node metrics beyond the node is an explicit choice.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::registry::{CONTENT_TYPE, Registry};

/// Where the metrics endpoint listens unless configured otherwise.
pub const DEFAULT_ADDR: &str = "127.0.0.1:9808";

/// The path Prometheus scrapes.
pub const METRICS_PATH: &str = "/metrics";

/// Longest request head accepted; a scrape request is a few hundred bytes.
const MAX_HEAD: usize = 8 * 1024;

/// Connections served at once. More wait in the kernel's listen backlog, holding none of the
/// agent's file descriptors (idle connections used to be able to exhaust them, and with them
/// the sysfs rescans). With [`IO_TIMEOUT`], a client can delay scrapes, never starve the agent.
const MAX_CONNECTIONS: usize = 16;

/// A client has this long to send its request and read the answer.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the metrics server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The address is not loopback and non-loopback binding was not allowed.
    #[error(
        "refusing to serve metrics on non-loopback address {0} (allow it explicitly to expose node metrics off the node)"
    )]
    NotLoopback(SocketAddr),
    /// The metrics listener could not bind.
    #[error("cannot listen for metrics on {addr}: {source}")]
    Bind {
        /// The address asked for (`--metrics-addr`).
        addr: SocketAddr,
        /// The OS error (address in use, permission…).
        source: std::io::Error,
    },
}

/// A bound metrics listener, not yet serving. Split from [`MetricsServer::run`] so callers (and
/// tests binding port 0) learn the address before serving.
pub struct MetricsServer {
    listener: TcpListener,
    registry: Registry,
}

impl MetricsServer {
    /// Binds `addr`. Unless `allow_non_loopback`, only loopback addresses (`127.0.0.0/8`, `::1`)
    /// are accepted.
    pub async fn bind(
        addr: SocketAddr,
        allow_non_loopback: bool,
        registry: Registry,
    ) -> Result<Self, ServeError> {
        if !allow_non_loopback && !addr.ip().is_loopback() {
            return Err(ServeError::NotLoopback(addr));
        }
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::Bind { addr, source })?;
        Ok(MetricsServer { listener, registry })
    }

    /// The address actually bound (the port, when bound to port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` completes. Each connection is answered on its own task; failures
    /// of one connection are logged at debug level and never stop the server.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
        loop {
            let slot = tokio::select! {
                _ = &mut shutdown => return,
                slot = std::sync::Arc::clone(&slots).acquire_owned() => match slot {
                    Ok(slot) => slot,
                    Err(_) => return,
                },
            };
            tokio::select! {
                _ = &mut shutdown => return,
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let registry = self.registry.clone();
                        tokio::spawn(async move {
                            let _slot = slot;
                            let r = tokio::time::timeout(IO_TIMEOUT, answer(stream, &registry)).await;
                            match r {
                                Ok(Ok(())) => {}
                                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "metrics request failed"),
                                Err(_) => tracing::debug!(%peer, "metrics request timed out"),
                            }
                        });
                    }
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!(error = %e, "metrics accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
            }
        }
    }
}

/// Binds `addr` and serves `registry` until `shutdown` (see [`MetricsServer`]).
pub async fn serve(
    addr: SocketAddr,
    allow_non_loopback: bool,
    registry: Registry,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    MetricsServer::bind(addr, allow_non_loopback, registry)
        .await?
        .run(shutdown)
        .await;
    Ok(())
}

/// What a request asked for, as far as this server cares.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    Metrics { head_only: bool },
    MethodNotAllowed,
    NotFound,
    BadRequest,
}

/// Routes a request head (request line first).
fn route(head: &[u8]) -> Route {
    let Ok(head) = std::str::from_utf8(head) else {
        return Route::BadRequest;
    };
    let line = head.lines().next().unwrap_or_default();
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Route::BadRequest;
    };
    if !version.starts_with("HTTP/1.") || method.is_empty() || !target.starts_with('/') {
        return Route::BadRequest;
    }
    let path = target.split('?').next().unwrap_or_default();
    if path != METRICS_PATH {
        return Route::NotFound;
    }
    match method {
        "GET" => Route::Metrics { head_only: false },
        "HEAD" => Route::Metrics { head_only: true },
        _ => Route::MethodNotAllowed,
    }
}

/// Reads one request head and writes the answer.
async fn answer(mut stream: TcpStream, registry: &Registry) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    let complete = loop {
        if head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n") {
            break true;
        }
        if head.len() > MAX_HEAD {
            break false;
        }
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break !head.is_empty();
        }
        head.extend_from_slice(&buf[..n]);
    };
    let route = if complete {
        route(&head)
    } else {
        Route::BadRequest
    };
    let (status, content_type, body, head_only) = match route {
        Route::Metrics { head_only } => ("200 OK", CONTENT_TYPE, registry.render(), head_only),
        Route::MethodNotAllowed => (
            "405 Method Not Allowed",
            "text/plain; charset=utf-8",
            "only GET and HEAD\n".into(),
            false,
        ),
        Route::NotFound => (
            "404 Not Found",
            "text/plain; charset=utf-8",
            format!("not found; metrics are at {METRICS_PATH}\n"),
            false,
        ),
        Route::BadRequest => (
            "400 Bad Request",
            "text/plain; charset=utf-8",
            "bad request\n".into(),
            false,
        ),
    };
    let allow = if route == Route::MethodNotAllowed {
        "Allow: GET, HEAD\r\n"
    } else {
        ""
    };
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{allow}Connection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(body.as_bytes());
    }
    stream.write_all(&out).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_requests() {
        let r = |s: &str| route(s.as_bytes());
        assert_eq!(
            r("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Route::Metrics { head_only: false }
        );
        assert_eq!(
            r("GET /metrics?x=1 HTTP/1.0\r\n\r\n"),
            Route::Metrics { head_only: false }
        );
        assert_eq!(
            r("HEAD /metrics HTTP/1.1\r\n\r\n"),
            Route::Metrics { head_only: true }
        );
        assert_eq!(r("POST /metrics HTTP/1.1\r\n\r\n"), Route::MethodNotAllowed);
        assert_eq!(r("GET / HTTP/1.1\r\n\r\n"), Route::NotFound);
        assert_eq!(r("GET /metricsx HTTP/1.1\r\n\r\n"), Route::NotFound);
        assert_eq!(r("GET /metrics\r\n\r\n"), Route::BadRequest);
        assert_eq!(r("GET /metrics SPDY/3\r\n\r\n"), Route::BadRequest);
        assert_eq!(route(&[0xff, 0xfe]), Route::BadRequest);
    }
}
