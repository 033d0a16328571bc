//! Serving a warp filter over HTTP/1.1 with the timeouts warp's own server lacks.
//!
//! warp 0.4's `warp::serve` builds its hyper connections without a timer, so hyper's
//! header read timeout never runs, and it has no idle timeout: a client that opens a
//! connection and sends half a request line, or that keeps an idle keep-alive
//! connection open, holds a connection (a task and a file descriptor) for ever.
//! [`serve_http`] serves the same filter (`warp::service`) on hyper's HTTP/1.1
//! connections itself, with the two timeouts Go's `net/http` server has:
//!
//! - **read header** ([`HttpTimeouts::read_header`], Go's `ReadHeaderTimeout`): a new
//!   connection must deliver a complete request head within it, counted from the
//!   accept; on a kept-alive connection, counted from the first byte of the next
//!   request;
//! - **idle** ([`HttpTimeouts::idle`], Go's `IdleTimeout`): a kept-alive connection
//!   waiting for its next request is closed once it has been idle that long.
//!
//! Past either, the connection is closed (no answer: the client has not finished a
//! request to answer). While a request is being handled (its body read, the answer
//! computed and written) neither runs: how long that may take is the handler's
//! business.
//!
//! hyper's own `header_read_timeout` cannot express both: on a kept-alive connection
//! it starts when the previous answer is written, so it is the idle and the header
//! timeout at once. The connection's stream is wrapped instead ([`TimedStream`]),
//! and the service tells it when a request is in hand ([`Busy`]).
//!
//! HTTP/1.1 only, as Go's `net/http` serves plaintext: no HTTP/2 prior knowledge
//! (h2c), which would keep a connection reading while requests are handled.
//! Graceful shutdown: when `shutdown` resolves the listener is closed, idle
//! connections are closed, and the call returns once in-flight requests are answered.

use std::{
    convert::Infallible,
    future::Future,
    io,
    pin::{Pin, pin},
    sync::{Arc, Mutex, PoisonError},
    task::{Context, Poll, Waker},
    time::Duration,
};

use hyper_util::{rt::TokioIo, server::graceful::GracefulShutdown};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    time::{Instant, Sleep},
};
use warp::hyper;

/// Default of [`HttpTimeouts::read_header`]: 10 s, generous for any real client on any
/// network (a request head is one packet) and short enough that a slow-loris client
/// ties up a connection for seconds, not for ever.
pub const DEFAULT_READ_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Default of [`HttpTimeouts::idle`]: 60 s, longer than the usual client pool's idle
/// time (reqwest/hyper 90 s is the exception; Go's 90 s, browsers about 60 s), so a
/// busy client rarely finds its pooled connection closed under it.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// The connection timeouts of [`serve_http`]; see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpTimeouts {
    /// Longest wait for a complete request head (Go's `ReadHeaderTimeout`).
    pub read_header: Duration,
    /// Longest wait, on a kept-alive connection, for the next request to start
    /// (Go's `IdleTimeout`).
    pub idle: Duration,
}

impl Default for HttpTimeouts {
    fn default() -> Self {
        Self {
            read_header: DEFAULT_READ_HEADER_TIMEOUT,
            idle: DEFAULT_IDLE_TIMEOUT,
        }
    }
}

/// Serves `service` (a warp filter as `warp::service(filter)`) on `listener` until `shutdown` resolves, then closes the listener
/// and idle connections and returns once in-flight requests are answered. See the
/// module docs.
pub async fn serve_http<S>(
    service: S,
    listener: TcpListener,
    timeouts: HttpTimeouts,
    shutdown: impl Future<Output = ()>,
) where
    S: tower_service::Service<
            hyper::Request<hyper::body::Incoming>,
            Response = warp::reply::Response,
            Error = Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let graceful = GracefulShutdown::new();
    let mut shutdown = pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    accept_failed(err).await;
                    continue;
                }
            },
        };
        let state = shared(Phase::Head {
            since: Instant::now(),
        });
        let io = TokioIo::new(TimedStream::new(stream, state.clone(), timeouts));
        let service = Tracked {
            service: service.clone(),
            state,
        };
        let connection = hyper::server::conn::http1::Builder::new().serve_connection(io, service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                // Timeouts, resets and malformed requests: the client's doing.
                tracing::debug!(%peer, %err, "HTTP connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// As warp's server: a failed accept for lack of file descriptors is logged and
/// retried after a second; a connection reset before it was accepted is ignored.
async fn accept_failed(err: io::Error) {
    if matches!(
        err.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(%err, "cannot accept an HTTP connection");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// Where a connection is: what its reads are waiting for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Reading a request head, started at `since` (the accept, or the first byte).
    Head { since: Instant },
    /// A request is being handled: no read deadline.
    Busy,
    /// Answered; waiting since `since` for the next request to start.
    Idle { since: Instant },
}

/// The connection's [`Phase`], shared by its stream and its service.
type SharedPhase = Arc<Mutex<PhaseCell>>;

struct PhaseCell {
    phase: Phase,
    /// The reader that found nothing to read while a request was handled: woken when
    /// the request is answered, to start the idle timer. (hyper does not read again
    /// by itself after writing an answer when its last read found nothing.)
    parked: Option<Waker>,
}

fn shared(phase: Phase) -> SharedPhase {
    Arc::new(Mutex::new(PhaseCell {
        phase,
        parked: None,
    }))
}

fn lock(phase: &SharedPhase) -> std::sync::MutexGuard<'_, PhaseCell> {
    phase.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The connection's stream, failing its reads with `TimedOut` past the deadline of
/// the current [`Phase`].
struct TimedStream {
    stream: TcpStream,
    phase: SharedPhase,
    timeouts: HttpTimeouts,
    /// The timer and the deadline it is set for.
    timer: Pin<Box<Sleep>>,
    armed: Option<Instant>,
}

impl TimedStream {
    fn new(stream: TcpStream, phase: SharedPhase, timeouts: HttpTimeouts) -> Self {
        Self {
            stream,
            phase,
            timeouts,
            timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
            armed: None,
        }
    }

    /// The current phase's deadline; `None` while a request is handled, in which
    /// case `waker` is woken when it is answered.
    fn deadline(&self, waker: &Waker) -> Option<Instant> {
        let mut cell = lock(&self.phase);
        match cell.phase {
            Phase::Head { since } => since.checked_add(self.timeouts.read_header),
            Phase::Idle { since } => since.checked_add(self.timeouts.idle),
            Phase::Busy => {
                cell.parked = Some(waker.clone());
                None
            }
        }
    }
}

impl AsyncRead for TimedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    let mut cell = lock(&this.phase);
                    if matches!(cell.phase, Phase::Idle { .. }) {
                        // The next request's first byte: its head must follow in time.
                        cell.phase = Phase::Head {
                            since: Instant::now(),
                        };
                    }
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(err)) => Poll::Ready(Err(err)),
            Poll::Pending => {
                let Some(deadline) = this.deadline(cx.waker()) else {
                    return Poll::Pending;
                };
                if this.armed != Some(deadline) {
                    this.timer.as_mut().reset(deadline);
                    this.armed = Some(deadline);
                }
                match this.timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "no complete request in time (read header or idle timeout)",
                    ))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl AsyncWrite for TimedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// warp's service, marking the connection [`Phase::Busy`] while a request is handled
/// and [`Phase::Idle`] once it is answered (or abandoned).
struct Tracked<S> {
    service: S,
    state: SharedPhase,
}

/// Sets the connection idle when the request's handling ends, however it ends.
struct Busy(SharedPhase);

impl Drop for Busy {
    fn drop(&mut self) {
        let parked = {
            let mut cell = lock(&self.0);
            cell.phase = Phase::Idle {
                since: Instant::now(),
            };
            cell.parked.take()
        };
        if let Some(reader) = parked {
            reader.wake();
        }
    }
}

impl<S> hyper::service::Service<hyper::Request<hyper::body::Incoming>> for Tracked<S>
where
    S: tower_service::Service<
            hyper::Request<hyper::body::Incoming>,
            Response = warp::reply::Response,
            Error = Infallible,
        > + Clone,
    S::Future: Send + 'static,
{
    type Response = warp::reply::Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, request: hyper::Request<hyper::body::Incoming>) -> Self::Future {
        lock(&self.state).phase = Phase::Busy;
        let busy = Busy(self.state.clone());
        // warp's service is always ready (its `poll_ready` is `Ready(Ok(()))`).
        let answer = tower_service::Service::call(&mut self.service.clone(), request);
        Box::pin(async move {
            let answer = answer.await;
            drop(busy);
            answer
        })
    }
}
