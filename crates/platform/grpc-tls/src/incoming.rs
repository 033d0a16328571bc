//! The incoming-connection stream a TLS gRPC server is served from
//! (`tonic::transport::Server::serve_with_incoming_shutdown`).
//!
//! One task accepts TCP connections; each connection's TLS handshake runs in a task
//! of its own, bounded by a timeout, so a client that connects and then stays silent
//! (or is slow) delays no one else's accept. The stream yields only completed TLS
//! streams: a failed or timed-out handshake is logged and dropped, and never ends or
//! errors the stream. Each handshake uses the newest server configuration
//! ([`crate::Reloading::current`]), so a reloaded certificate reaches new connections while
//! established ones keep theirs.
//!
//! tonic serves `tokio_rustls::server::TlsStream<TcpStream>` directly: its
//! `tls-ring` feature implements `tonic::transport::server::Connected` for it (the
//! request extensions then carry the peer address and client certificates).

use std::{
    convert::Infallible,
    io,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use tokio::{
    net::{TcpListener, TcpStream},
    sync::mpsc,
};
use tokio_rustls::{TlsAcceptor, server::TlsStream};
use tokio_stream::{Stream, wrappers::ReceiverStream};

use crate::server::ReloadingServerConfig;

/// How long a client may take to complete its TLS handshake when nothing else says:
/// a handshake is two round trips, so this only ends connections that stalled.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Completed handshakes waiting for the server to take them. The server takes them
/// as they come; the bound only stops a server that stopped taking them from
/// collecting connections.
const QUEUE: usize = 64;

/// Pause after an accept error that is not about one connection (e.g. out of file
/// descriptors), so the loop does not spin while the cause lasts.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// TLS connections accepted on a listener; see the module docs. Dropping it (the
/// server stopped) stops the accept task and closes the listener.
pub struct TlsIncoming {
    completed: ReceiverStream<TlsStream<TcpStream>>,
}

impl TlsIncoming {
    /// Starts accepting on `listener`. Must be called within a Tokio runtime.
    pub fn new(
        listener: TcpListener,
        config: ReloadingServerConfig,
        handshake_timeout: Duration,
    ) -> Self {
        let (completed, receiver) = mpsc::channel(QUEUE);
        tokio::spawn(accept_loop(listener, config, handshake_timeout, completed));
        Self {
            completed: ReceiverStream::new(receiver),
        }
    }
}

impl Stream for TlsIncoming {
    /// Never an error: failed handshakes are left out.
    type Item = Result<TlsStream<TcpStream>, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.completed)
            .poll_next(cx)
            .map(|next| next.map(Ok))
    }
}

async fn accept_loop(
    listener: TcpListener,
    config: ReloadingServerConfig,
    handshake_timeout: Duration,
    completed: mpsc::Sender<TlsStream<TcpStream>>,
) {
    loop {
        let accepted = tokio::select! {
            () = completed.closed() => return,
            accepted = listener.accept() => accepted,
        };
        let (tcp, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(err) if is_connection_error(&err) => {
                tracing::debug!(error = %err, "a gRPC connection was gone before its accept");
                continue;
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot accept gRPC connections; trying again");
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                continue;
            }
        };
        // gRPC's small messages must not wait for Nagle's algorithm behind TLS records.
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::debug!(%peer, error = %err, "cannot set TCP_NODELAY");
        }
        let acceptor = TlsAcceptor::from(config.current());
        let completed = completed.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(handshake_timeout, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => {
                    // An error only means the server stopped: the stream is dropped.
                    let _ = completed.send(stream).await;
                }
                Ok(Err(err)) => match tls_refusal(&err) {
                    // A TLS client that was refused (no or wrong certificate, no
                    // common protocol, plaintext gRPC): worth an operator's eye.
                    Some(refusal) => {
                        tracing::info!(%peer, reason = %refusal, "TLS handshake refused")
                    }
                    // A connection closed before or during the handshake: load
                    // balancers' TCP checks and port scanners do that all day.
                    None => tracing::debug!(%peer, error = %err, "TLS handshake not completed"),
                },
                Err(_elapsed) => {
                    tracing::debug!(%peer, timeout = ?handshake_timeout, "TLS handshake timed out");
                }
            }
        });
    }
}

/// Accept errors that concern one connection only, not the listener.
fn is_connection_error(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
    )
}

/// The rustls error behind a failed handshake (tokio-rustls wraps it in an
/// `io::Error`), if rustls refused the peer rather than the connection ending.
fn tls_refusal(err: &io::Error) -> Option<&rustls::Error> {
    err.get_ref()?.downcast_ref::<rustls::Error>()
}
