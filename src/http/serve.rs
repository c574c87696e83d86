//! Serving HTTP connections: the accept loop, its timeouts and its budget.
//!
//! `axum::serve` sets no header timeout (a client that sends half a request
//! header holds its connection for as long as it likes), sleeps a whole
//! second after any accept error, and accepts without limit. This loop is
//! the same thing with those three bounded:
//! - a connection has `header_timeout` to send each request's headers, and
//!   the same to start its next request when kept alive (hyper starts the
//!   timer as soon as it waits for a request head);
//! - at most `max_open` HTTP connections are served at once (upgraded
//!   WebSockets leave this budget: they hold a permit of their own); past it
//!   a new connection is closed at once, so the open-file budget of the
//!   WebSockets and the database is never touched;
//! - accept errors (the open-file limit reached, say) back off from a
//!   millisecond up to a second and reset on the next success, instead of
//!   stalling every client for a second each time.

use std::convert::Infallible;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

/// How connections are served.
#[derive(Debug, Clone, Copy)]
pub struct ServeLimits {
    /// Time to send a request's headers, and to start the next request.
    pub header_timeout: Duration,
    /// HTTP connections served at once (not counting upgraded WebSockets).
    pub max_open: usize,
}

const BACKOFF_MIN: Duration = Duration::from_millis(1);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Serves `app` on `listener` until `shutdown` is cancelled, then lets every
/// connection finish its request in flight (idle ones close at once) and
/// returns once they have. Upgraded connections are not waited for: their
/// tasks belong to whoever took the upgrade.
pub async fn serve<S>(
    listener: TcpListener,
    app: S,
    limits: ServeLimits,
    shutdown: CancellationToken,
) where
    S: tower::Service<Request<Body>, Response = axum::response::Response, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let open = Arc::new(Semaphore::new(limits.max_open));
    let connections = TaskTracker::new();
    let mut backoff = BACKOFF_MIN;
    let mut shed = 0u64;
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (tcp, peer) = match accepted {
            Ok(accepted) => {
                backoff = BACKOFF_MIN;
                accepted
            }
            Err(err) if is_connection_error(&err) => continue,
            Err(err) => {
                // Most likely out of file descriptors: connections closing
                // (timeouts, clients leaving) free some soon.
                tracing::warn!(error = %err, retry_in_ms = backoff.as_millis() as u64, "accept failed");
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            }
        };
        let Ok(permit) = open.clone().try_acquire_owned() else {
            // Dropping the socket closes it: the client learns at once.
            shed += 1;
            if shed.is_power_of_two() {
                tracing::warn!(
                    shed,
                    max = limits.max_open,
                    "too many HTTP connections; closing new ones"
                );
            }
            continue;
        };
        // Small frames (acks, typing, a lone message) go out at once: with
        // Nagle's algorithm they would wait for the peer's delayed ACK (40 ms).
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::debug!(error = %err, "could not set TCP_NODELAY");
        }
        let app = app.clone();
        let shutdown = shutdown.clone();
        connections.spawn(async move {
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                let mut request = request.map(Body::new);
                request.extensions_mut().insert(ConnectInfo(peer));
                app.clone().oneshot(request)
            });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout);
            let mut connection = pin!(
                builder
                    .serve_connection(TokioIo::new(tcp), service)
                    .with_upgrades()
            );
            let mut stopping = pin!(shutdown.cancelled());
            let mut asked_to_stop = false;
            loop {
                tokio::select! {
                    result = connection.as_mut() => {
                        if let Err(err) = result {
                            tracing::debug!(error = %err, %peer, "HTTP connection ended");
                        }
                        break;
                    }
                    () = &mut stopping, if !asked_to_stop => {
                        asked_to_stop = true;
                        connection.as_mut().graceful_shutdown();
                    }
                }
            }
            drop(permit);
        });
    }
    connections.close();
    connections.wait().await;
}

fn is_connection_error(err: &std::io::Error) -> bool {
    matches!(
        err.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}

/// What the open-file limit leaves for connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionBudget {
    /// WebSockets served at once: `--max-connections`, clamped.
    pub websockets: usize,
    /// HTTP connections served at once.
    pub http: usize,
}

/// Files kept for everything but client connections and the database: the
/// listener, Redis, logs, the runtime's own.
const RESERVED_FILES: u64 = 64;
/// Files per database connection (SQLite: the database, its WAL and shared
/// memory; PostgreSQL: a socket), counting the writer and the checkpointer.
const FILES_PER_DB_CONNECTION: u64 = 3;

/// Splits the open-file limit between HTTP connections and WebSockets, after
/// `RESERVED_FILES` and the database's own. WebSockets get at most
/// `max_websockets`; HTTP an eighth of what is left (at least 16, at most
/// 4 096), so plain requests (`/healthz` included) always find a descriptor
/// however many WebSockets are open.
pub fn connection_budget(
    open_files: u64,
    db_connections: u32,
    max_websockets: usize,
) -> ConnectionBudget {
    let database = FILES_PER_DB_CONNECTION * (u64::from(db_connections) + 2);
    let usable = open_files.saturating_sub(RESERVED_FILES + database);
    let http = (usable / 8).clamp(16, 4096);
    let websockets = usable.saturating_sub(http).max(1);
    ConnectionBudget {
        websockets: max_websockets.min(usize::try_from(websockets).unwrap_or(usize::MAX)),
        http: usize::try_from(http).unwrap_or(4096),
    }
}

/// The process's open-file limit, raised to its hard limit first (as a
/// server that holds many sockets should).
pub fn open_file_limit() -> u64 {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(err) => {
            tracing::warn!(error = %err, "could not read the open-file limit; assuming 1024");
            1024
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_keeps_files_for_http_and_the_database() {
        // The default --max-connections (200 000) on a 20 000-file machine.
        let budget = connection_budget(20_000, 8, 200_000);
        let kept = 64 + 3 * 10;
        assert_eq!(budget.http, (20_000 - kept) / 8);
        assert_eq!(budget.websockets, 20_000 - kept - budget.http);
        // A lower --max-connections is kept as it is.
        assert_eq!(connection_budget(20_000, 8, 500).websockets, 500);
        // A tiny limit still serves someone.
        let tiny = connection_budget(120, 8, 200_000);
        assert_eq!((tiny.http, tiny.websockets), (16, 120 - 64 - 30 - 16));
        assert_eq!(connection_budget(50, 8, 200_000).websockets, 1);
        // A huge limit caps HTTP, not WebSockets.
        let huge = connection_budget(1 << 20, 8, 200_000);
        assert_eq!((huge.http, huge.websockets), (4096, 200_000));
    }
}
