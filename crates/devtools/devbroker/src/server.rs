//! Connection handling: the accept loop and one task per connection.
//!
//! Requests on a connection are handled one at a time, in order (as Kafka does: a
//! connection is muted while its request is in flight), so responses never need
//! reordering. A frame that is oversized, truncated or unparseable ends that connection
//! only; other connections are untouched.

use lifecycle::ErrorChain;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::handler::{self, Advertised, Outcome};
use crate::state::State;

/// How long shutdown waits for connections to finish their current request.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) async fn serve(
    listener: TcpListener,
    state: Arc<State>,
    advertised_host: Option<String>,
    shutdown: CancellationToken,
) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let state = state.clone();
                    let shutdown = shutdown.child_token();
                    let host = advertised_host.clone();
                    conns.spawn(async move {
                        connection(stream, peer, state, host, shutdown).await;
                    });
                }
                Err(e) => {
                    // E.g. out of file descriptors: back off instead of spinning.
                    tracing::warn!(error = %ErrorChain(&e), "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            () = shutdown.cancelled() => break,
        }
    }
    drop(listener);
    let drain = async { while conns.join_next().await.is_some() {} };
    if tokio::time::timeout(DRAIN_TIMEOUT, drain).await.is_err() {
        tracing::warn!("connections did not finish in time; aborting them");
        conns.shutdown().await;
    }
}

enum Frame {
    Request(Vec<u8>),
    Eof,
    Bad(String),
}

/// Reads one size-prefixed frame. The body buffer grows as bytes arrive, so a client that
/// announces a huge frame and sends nothing does not get memory reserved for it.
async fn read_frame<R: AsyncRead + Unpin>(r: &mut R, max: usize) -> std::io::Result<Frame> {
    let mut size = [0u8; 4];
    match r.read_exact(&mut size).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(Frame::Eof),
        Err(e) => return Err(e),
    }
    let size = i32::from_be_bytes(size);
    let Ok(size) = usize::try_from(size) else {
        return Ok(Frame::Bad(format!("negative frame size {size}")));
    };
    if size > max {
        return Ok(Frame::Bad(format!(
            "frame of {size} bytes exceeds the {max} byte limit"
        )));
    }
    let mut buf = Vec::with_capacity(size.min(64 * 1024));
    (&mut *r).take(size as u64).read_to_end(&mut buf).await?;
    if buf.len() < size {
        return Ok(Frame::Bad(format!(
            "truncated frame: got {} of {size} bytes",
            buf.len()
        )));
    }
    Ok(Frame::Request(buf))
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    state: Arc<State>,
    advertised_host: Option<String>,
    shutdown: CancellationToken,
) {
    // Advertise the address this client reached us on, so Metadata and FindCoordinator
    // always point back at a reachable listener (also when bound to 0.0.0.0).
    let me = match stream.local_addr() {
        Ok(local) => Advertised {
            host: advertised_host.unwrap_or_else(|| local.ip().to_string()),
            port: i32::from(local.port()),
        },
        Err(e) => {
            tracing::warn!(%peer, error = %ErrorChain(&e), "no local address; dropping connection");
            return;
        }
    };
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(%peer, error = %ErrorChain(&e), "set_nodelay failed");
    }
    tracing::debug!(%peer, "connection opened");
    let (read_half, mut write_half) = stream.into_split();
    let mut reader = BufReader::with_capacity(64 * 1024, read_half);
    loop {
        let frame = tokio::select! {
            f = read_frame(&mut reader, state.max_frame_bytes) => f,
            () = shutdown.cancelled() => break,
        };
        let frame = match frame {
            Ok(Frame::Request(f)) => f,
            Ok(Frame::Eof) => {
                tracing::debug!(%peer, "connection closed by client");
                break;
            }
            Ok(Frame::Bad(reason)) => {
                tracing::warn!(%peer, %reason, "closing connection");
                break;
            }
            Err(e) => {
                tracing::debug!(%peer, error = %ErrorChain(&e), "read failed");
                break;
            }
        };
        match handler::handle(&state, &me, &frame, &shutdown).await {
            Outcome::Respond(bytes) => {
                if let Err(e) = write_half.write_all(&bytes).await {
                    tracing::debug!(%peer, error = %ErrorChain(&e), "write failed");
                    break;
                }
            }
            Outcome::NoResponse => {}
            Outcome::Close(reason) => {
                tracing::warn!(%peer, %reason, "closing connection");
                break;
            }
        }
    }
}
