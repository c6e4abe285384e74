//! The accept loop: HTTP/1.1 connections with a header-read timeout (which also closes
//! keep-alive connections left idle that long, so slow or idle clients hold nothing),
//! TCP_NODELAY, and a graceful shutdown with a deadline.

use std::future::Future;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

use crate::lifecycle::Lifecycle;

/// HTTP/1.1 connection settings: the header-read timer (which also bounds keep-alive idling).
fn connections(header_read_timeout: Duration, keep_alive: bool) -> http1::Builder {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout)
        .keep_alive(keep_alive);
    builder
}

/// Serves `app` until `shutdown` resolves; then drains: requests and streams in flight get up
/// to `grace` to finish while new requests are refused with 503; what is left is cut.
pub async fn run(
    listener: TcpListener,
    app: Router,
    header_read_timeout: Duration,
    grace: Duration,
    lifecycle: Lifecycle,
    shutdown: impl Future<Output = ()>,
) {
    let builder = connections(header_read_timeout, true);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let tcp = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    // Out of file descriptors and the like: back off rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Every streamed token is a small write: without TCP_NODELAY, Nagle's algorithm
        // holds it back until the client's (delayed) ACK of the previous one.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::warn!(error = %e, "could not set TCP_NODELAY");
        }
        let service = TowerToHyperService::new(app.clone());
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(tcp), service));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    lifecycle.start_draining();
    tracing::info!(
        connections = graceful.count(),
        grace_secs = grace.as_secs(),
        "shutting down: in-flight requests may finish; new ones get 503 and /health says draining"
    );
    // Still answer while draining (a 503 a load balancer understands, not a refused
    // connection), one request per connection, untracked: they never hold the exit back.
    let closing = connections(header_read_timeout, false);
    let drain = tokio::time::timeout(grace, graceful.shutdown());
    tokio::pin!(drain);
    let finished = loop {
        tokio::select! {
            done = &mut drain => break done.is_ok(),
            accepted = listener.accept() => {
                if let Ok((tcp, _)) = accepted {
                    let service = TowerToHyperService::new(app.clone());
                    let connection = closing.serve_connection(TokioIo::new(tcp), service);
                    tokio::spawn(async move {
                        let _ = connection.await;
                    });
                }
            }
        }
    };
    if finished {
        tracing::info!("all requests finished");
        return;
    }
    tracing::warn!(
        grace_secs = grace.as_secs(),
        "grace period over: cutting the streams still running"
    );
    lifecycle.cut();
    // Let the cut streams write their error event.
    tokio::time::sleep(Duration::from_millis(200)).await;
}
