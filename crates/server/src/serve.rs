//! The accept loop: one hyper HTTP/1 connection per TCP connection, at most `max_connections`
//! of them open at once, a deadline for every request's headers, and a graceful shutdown
//! bounded in time. `axum::serve` can set none of these.
//!
//! HTTP/1 only, as `axum::serve` served without axum's `http2` feature, so hyper's HTTP/1
//! builder rather than `hyper_util`'s `auto` one: `auto` sniffs for the HTTP/2 preface with no
//! deadline before the header read timeout starts, and HTTP/2 has no header read timeout.

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tower::Service;

use crate::tls::TlsFiles;

/// The limits that belong to connections rather than requests (`ServerConfig::serve_options`),
/// and TLS when the server speaks HTTPS itself.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// How long a connection may take to send a request's headers. hyper starts the clock when
    /// it starts waiting for a request: on a new connection, and again each time a keep-alive
    /// connection goes idle, so it is the idle timeout of kept-alive connections too.
    pub header_read_timeout: Duration,
    /// How long shutting down waits for in-flight requests before dropping their connections.
    pub shutdown_timeout: Duration,
    /// The most connections open at once. Past it the next connection is not accepted until
    /// one closes: it waits in the kernel's backlog, so clients that only open connections can
    /// never take the descriptors the database and the open connections need.
    pub max_connections: usize,
    /// HTTPS: the handshake must finish within `header_read_timeout` too.
    pub tls: Option<Arc<TlsFiles>>,
}

/// Serves `router` on `listener` until `shutdown` resolves, then stops accepting, lets the
/// requests in flight finish (idle connections close at once), and returns once they have, or
/// once `shutdown_timeout` has passed, dropping whatever connection is still open. Handlers
/// see the peer's address as `ConnectInfo<SocketAddr>`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_read_timeout)
        .keep_alive(true);
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(options.max_connections.max(1)));
    // The connections' tasks, so that none outlives `serve`: whatever the shutdown timeout
    // leaves is aborted before returning. Finished ones are collected while waiting, so the
    // set stays small.
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    'serving: loop {
        // A free slot first, then a connection: a full server leaves new ones in the backlog.
        let slot = loop {
            tokio::select! {
                () = &mut shutdown => break 'serving,
                slot = slots.clone().acquire_owned() => match slot {
                    Ok(slot) => break slot,
                    Err(_) => break 'serving, // never closed
                },
                Some(_) = connections.join_next() => {}
            }
        };
        let accepted = loop {
            tokio::select! {
                () = &mut shutdown => break 'serving,
                accepted = listener.accept() => break accepted,
                Some(_) = connections.join_next() => {}
            }
        };
        let (stream, remote) = match accepted {
            Ok(pair) => pair,
            Err(err) => {
                pause_after(&err).await;
                continue;
            }
        };
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request
                .extensions_mut()
                .insert(ConnectInfo::<SocketAddr>(remote));
            router.clone().call(request)
        });
        let acceptor = options.tls.as_ref().and_then(|tls| tls.acceptor());
        let Some(acceptor) = acceptor else {
            if options.tls.is_some() {
                continue;
            }
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            connections.spawn(finish(graceful.watch(connection), slot));
            continue;
        };
        // The handshake runs in the connection's task, bounded like a request's headers, so a
        // client that never finishes it holds neither the loop nor a slot for long.
        let (builder, watcher) = (builder.clone(), graceful.watcher());
        let handshake_timeout = options.header_read_timeout;
        connections.spawn(async move {
            let stream =
                match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(err)) => {
                        tracing::debug!(error = %err, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!("TLS handshake timed out");
                        return;
                    }
                };
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            finish(watcher.watch(connection), slot).await;
        });
    }
    drop(listener);
    if tokio::time::timeout(options.shutdown_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            open = connections.len(),
            "shutdown timeout reached: closing the connections still open"
        );
    }
    connections.shutdown().await;
    Ok(())
}

/// Runs a connection to its end, then gives back its slot. Timeouts, resets and malformed
/// requests end here; none is the server's fault, and hyper's messages carry no client input.
async fn finish<E: std::fmt::Display>(
    connection: impl Future<Output = Result<(), E>>,
    _slot: tokio::sync::OwnedSemaphorePermit,
) {
    if let Err(err) = connection.await {
        tracing::debug!(error = %err, "connection closed with an error");
    }
}

/// After a failed accept: a connection reset before it was accepted is the peer's business;
/// anything else (out of file descriptors) is logged, and accepting pauses so it can clear.
async fn pause_after(err: &io::Error) {
    if matches!(
        err.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %err, "accepting a connection failed");
    tokio::time::sleep(Duration::from_millis(100)).await;
}
