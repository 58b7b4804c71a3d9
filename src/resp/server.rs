//! The accept loop: a cap on open connections (past it a client is told Redis' "max number
//! of clients reached" and closed), optional TLS, one task per connection, and a stop that
//! closes every connection before the session store is flushed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsAcceptor;

use super::client::Shared;
use super::connection;
use super::metrics::RespMetrics;
use crate::app::App;
use crate::config::RespListener;

/// Most refusals being written at once; beyond, a connection over the cap is closed unanswered.
const MAX_REFUSING: usize = 256;
/// Time a TLS client gets to finish its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Time open connections get to close after the stop signal.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// A bound listener, ready to serve.
pub(crate) struct Bound {
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    pub(crate) addr: SocketAddr,
}

/// Binds `resp.listen` and loads the TLS certificate, if any: called before the server
/// reports that it listens, so a bad address or certificate stops start-up.
pub(crate) async fn bind(settings: &RespListener) -> Result<Bound, String> {
    let tls = match &settings.tls {
        Some(tls) => Some(super::tls::acceptor(tls)?),
        None => None,
    };
    let listener = TcpListener::bind(settings.listen)
        .await
        .map_err(|e| format!("cannot listen on {} (resp.listen): {e}", settings.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    Ok(Bound {
        listener,
        tls,
        addr,
    })
}

/// Serves until `shutdown` turns true, then closes every connection (waiting at most
/// [`DRAIN_TIMEOUT`]).
pub(crate) async fn serve(
    app: Arc<App>,
    settings: RespListener,
    bound: Bound,
    mut shutdown: watch::Receiver<bool>,
) {
    let metrics = RespMetrics::register();
    let shared = Arc::new(Shared::new(app, &settings.password, metrics));
    let max = settings.max_connections;
    let slots = Arc::new(Semaphore::new(max));
    let refusers = Arc::new(Semaphore::new(MAX_REFUSING));
    let Bound { listener, tls, .. } = bound;
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "RESP accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = stopped(&mut shutdown) => break,
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            shared.metrics.refused.increment(1);
            if let Ok(refuser) = refusers.clone().try_acquire_owned() {
                let plain = tls.is_none();
                tokio::spawn(async move {
                    refuse(stream, plain).await;
                    drop(refuser);
                });
            }
            continue;
        };
        shared.metrics.accepted.increment(1);
        shared.metrics.open.increment(1.0);
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        let tls = tls.clone();
        let idle = settings.idle_timeout;
        let stop = shutdown.clone();
        tokio::spawn(async move {
            match tls {
                None => connection::serve(Box::new(stream), &shared, peer, idle, stop).await,
                Some(acceptor) => {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => {
                            connection::serve(Box::new(stream), &shared, peer, idle, stop).await
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "RESP TLS handshake failed")
                        }
                        Err(_) => tracing::debug!(%peer, "RESP TLS handshake timed out"),
                    }
                }
            }
            shared.metrics.open.decrement(1.0);
            drop(permit);
        });
    }
    drop(listener);
    // Every connection watches the same signal; they are all closed once their permits are
    // back.
    let all = u32::try_from(max).unwrap_or(u32::MAX);
    if tokio::time::timeout(DRAIN_TIMEOUT, slots.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!("RESP connections did not close in time");
    }
}

/// Resolves once `shutdown` turns true (or its sender is gone). The watch's guard is dropped
/// here, so the futures that wait on this stay `Send`.
pub(crate) async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// Tells a client over the cap what Redis would, then closes (a TLS client just sees the
/// close: answering would cost a handshake). What the client sent meanwhile is read and
/// dropped until it closes too, for at most a second: closing with unread data would reset
/// the connection before the client reads the answer.
async fn refuse(mut stream: TcpStream, plain: bool) {
    if !plain {
        return;
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = stream
            .write_all(b"-ERR max number of clients reached\r\n")
            .await;
        let _ = stream.shutdown().await;
        let mut sink = [0u8; 1024];
        while let Ok(n) = stream.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}
