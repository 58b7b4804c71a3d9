//! One connection: read what arrives, run every complete request in order (pipelining),
//! write the answers, until the client quits or goes quiet, or the server stops.
//!
//! Memory stays bounded whatever the client does: the read buffer holds at most one
//! unfinished request ([`frame::MAX_REQUEST`]) beyond the last read, and answers are written
//! out whenever [`FLUSH_AT`] bytes wait, so a client that pipelines without reading stalls on
//! TCP back-pressure instead of growing our buffer. A silent client, or one that leaves its
//! answers unread, is dropped after `resp.idle_timeout`; one that has not authenticated,
//! at the latest [`super::client::AUTH_DEADLINE`] after it connected.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;

use super::client::{Client, Shared};
use super::command;
use super::frame::{self, Reply};

/// Bytes asked of the socket per read.
const READ_CHUNK: usize = 16 * 1024;
/// Answers waiting beyond this many bytes are written before more requests run.
const FLUSH_AT: usize = 64 * 1024;

/// Why a connection ended (for the debug log).
enum End {
    Quit,
    Closed,
    Idle,
    Shutdown,
    Protocol(frame::ProtocolError),
    Io(std::io::Error),
}

impl std::fmt::Display for End {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            End::Quit => f.write_str("QUIT"),
            End::Closed => f.write_str("closed by the client"),
            End::Idle => write!(f, "idle past resp.idle_timeout, or no AUTH in time"),
            End::Shutdown => f.write_str("server stopping"),
            End::Protocol(e) => write!(f, "{e}"),
            End::Io(e) => write!(f, "I/O error: {e}"),
        }
    }
}

/// A client's byte stream: TCP, or TLS over TCP.
pub(crate) trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Stream for S {}

/// Serves one connection until it ends. The stream is boxed so that the loop is compiled
/// once for TCP and TLS alike (a virtual call per read or write is noise beside the syscall).
pub(crate) async fn serve(
    mut stream: Box<dyn Stream>,
    shared: &Shared,
    peer: SocketAddr,
    idle: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut client = Client::new(shared, peer);
    let end = run(&mut stream, shared, &mut client, idle, &mut shutdown).await;
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = stream.shutdown().await;
        if matches!(end, End::Protocol(_)) {
            // What the client still sends is read and dropped (for a second, a bounded
            // amount): closing with unread input would reset the connection, and the client
            // might lose the error that says what was wrong.
            let mut sink = [0u8; 4096];
            let mut left = DRAIN_MAX;
            while left > 0 {
                match stream.read(&mut sink).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => left = left.saturating_sub(n),
                }
            }
        }
    })
    .await;
    tracing::debug!(%peer, end = %end, "RESP connection closed");
}

/// Most bytes read and dropped after a protocol error, before the connection closes.
const DRAIN_MAX: usize = 2 * frame::MAX_REQUEST;

async fn run(
    stream: &mut dyn Stream,
    shared: &Shared,
    client: &mut Client,
    idle: Duration,
    shutdown: &mut watch::Receiver<bool>,
) -> End {
    let mut input = BytesMut::with_capacity(READ_CHUNK);
    let mut output = BytesMut::with_capacity(READ_CHUNK);
    loop {
        // Every complete request that arrived, in order.
        loop {
            match frame::parse(&mut input) {
                Ok(Some(request)) => {
                    let reply = command::execute(shared, client, &request.args).await;
                    reply.encode(client.protocol, &mut output);
                    if client.quit {
                        let _ = write(stream, &mut output, idle).await;
                        return End::Quit;
                    }
                    if output.len() >= FLUSH_AT {
                        if let Err(end) = write(stream, &mut output, idle).await {
                            return end;
                        }
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    shared.metrics.protocol_errors.increment(1);
                    Reply::error(format!("ERR {e}")).encode(client.protocol, &mut output);
                    let _ = write(stream, &mut output, idle).await;
                    return End::Protocol(e);
                }
            }
        }
        if let Err(end) = write(stream, &mut output, idle).await {
            return end;
        }
        // Room for one more chunk: the buffer grows by what arrives, never by what a
        // request claims it will send.
        input.reserve(READ_CHUNK);
        let Some(patience) = client.patience(idle) else {
            return End::Idle;
        };
        tokio::select! {
            read = tokio::time::timeout(patience, stream.read_buf(&mut input)) => match read {
                Err(_) => return End::Idle,
                Ok(Ok(0)) => return End::Closed,
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return End::Io(e),
            },
            () = super::server::stopped(shutdown) => return End::Shutdown,
        }
    }
}

/// Writes out what waits in `output`, within the idle timeout.
async fn write(stream: &mut dyn Stream, output: &mut BytesMut, idle: Duration) -> Result<(), End> {
    if output.is_empty() {
        return Ok(());
    }
    let written = tokio::time::timeout(idle, async {
        stream.write_all(output).await?;
        // A TLS stream holds records until flushed; a TCP stream flushes at once.
        stream.flush().await
    })
    .await;
    output.clear();
    match written {
        Err(_) => Err(End::Idle),
        Ok(Err(e)) => Err(End::Io(e)),
        Ok(Ok(())) => Ok(()),
    }
}
