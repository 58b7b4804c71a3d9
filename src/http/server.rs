//! The accept loop: one tokio task per connection, a cap on open connections, hyper's
//! limits on the request head, and graceful shutdown (stop accepting, finish in-flight
//! requests, then return so the caller can flush the store).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::router::{self, Surface};
use crate::app::App;

/// How long in-flight requests get to finish after a shutdown signal.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Most connections being answered 503 at once.
const MAX_SHEDDING: usize = 1024;

/// Answers a connection over the cap with 503 and `Retry-After`, without parsing it: read what
/// the client sent so far (closing with unread data would reset the connection before the
/// client reads the answer), answer, close.
async fn shed(mut stream: tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const BODY: &str = r#"{"type":"urn:gatehouse:problem:busy","title":"Server busy","status":503,"detail":"too many open connections; retry in 1 s"}"#;
    let mut buf = [0u8; 8192];
    let _ = tokio::time::timeout(Duration::from_millis(100), stream.read(&mut buf)).await;
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/problem+json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{BODY}",
        BODY.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = stream.write_all(response.as_bytes()).await;
        let _ = stream.shutdown().await;
        // Let the client read the answer before the socket goes away.
        let _ = stream.read(&mut buf).await;
    })
    .await;
}

/// Serves `listener` until `shutdown` resolves, then drains open connections.
pub async fn serve(
    app: Arc<App>,
    listener: TcpListener,
    surface: Surface,
    shutdown: impl Future<Output = ()>,
) {
    let limits = &app.config.limits;
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(limits.header_read_timeout))
        .max_buf_size(limits.max_header_bytes)
        .max_headers(limits.max_headers);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    // Connections past the cap are answered 503 at once by short-lived tasks, themselves
    // capped: beyond that, a connection is closed unanswered.
    let shedders = Arc::new(Semaphore::new(MAX_SHEDDING));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);

    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            if let Ok(shedder) = shedders.clone().try_acquire_owned() {
                tokio::spawn(async move {
                    shed(stream).await;
                    drop(shedder);
                });
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let service = service_fn(move |req| {
            let app = app.clone();
            async move { Ok::<_, Infallible>(router::handle_on(&app, req, peer, surface).await) }
        });
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, %peer, "connection ended with an error");
            }
            drop(permit);
        });
    }

    drop(listener);
    tracing::info!("shutting down: finishing in-flight requests");
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(DRAIN_TIMEOUT) => {
            tracing::warn!("in-flight requests did not finish in time; closing them");
        }
    }
}
