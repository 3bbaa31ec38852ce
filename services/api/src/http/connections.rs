//! The HTTP listener's connection loop: hyper serving HTTP/1.1 and HTTP/2 on each
//! admitted connection, with the header-read timeout and HTTP/2 keep-alive pings that
//! `axum::serve` does not set, and a graceful shutdown that lets requests in flight
//! finish.

use axum::extract::connect_info::ConnectInfo;
use axum::serve::Listener;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio_util::sync::CancellationToken;

use crate::listener::{ConnectionLimits, MAX_CONCURRENT_STREAMS, PING_TIMEOUT};

/// Serves `app` on every connection `listener` hands out until `shutdown`; then stops
/// accepting, asks each connection to finish, and waits for them.
pub(super) async fn run<L>(
    mut listener: L,
    app: axum::Router,
    limits: ConnectionLimits,
    shutdown: CancellationToken,
) -> std::io::Result<()>
where
    L: Listener,
    L::Addr: Clone + Send + Sync + 'static,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(limits.heartbeat())
        .keep_alive_timeout(PING_TIMEOUT)
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS);
    let graceful = GracefulShutdown::new();
    loop {
        let (io, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let service = tower::ServiceExt::map_request(
            app.clone(),
            move |mut request: http::Request<Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer.clone()));
                request
            },
        );
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(io), TowerToHyperService::new(service))
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(error = %error, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}
