//! `serve_http`: header read and idle timeouts close slow and idle connections, a
//! request being handled is never cut by them, and shutdown answers in-flight
//! requests before returning.

use std::{net::SocketAddr, time::Duration};

use ops_http::{HttpTimeouts, serve_http};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::oneshot,
    task::JoinHandle,
};
use tokio_util::sync::CancellationToken;
use warp::Filter;

/// A deadline for what normally takes milliseconds; not a timing assert.
const DEADLINE: Duration = Duration::from_secs(30);
const SHORT: Duration = Duration::from_millis(500);

/// A running `serve_http` and the test's handles on it.
struct Server {
    addr: SocketAddr,
    task: JoinHandle<()>,
    shutdown: CancellationToken,
    /// `true` lets `/slow` answer.
    release: tokio::sync::watch::Sender<bool>,
}

/// `/fast` answers at once; `/slow` answers once `release` is set.
async fn start() -> Server {
    let (release, released) = tokio::sync::watch::channel(false);
    let shutdown = CancellationToken::new();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let fast = warp::path!("fast").map(|| "fast");
    let slow = warp::path!("slow").then(move || {
        let mut released = released.clone();
        async move {
            let _ = released.wait_for(|go| *go).await;
            "slow"
        }
    });
    let routes = fast.or(slow);
    let timeouts = HttpTimeouts {
        read_header: SHORT,
        idle: SHORT,
    };
    let task = tokio::spawn(serve_http(
        warp::service(routes),
        listener,
        timeouts,
        shutdown.clone().cancelled_owned(),
    ));
    Server {
        addr,
        task,
        shutdown,
        release,
    }
}

/// Connects and sends `bytes`.
async fn send(addr: SocketAddr, bytes: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    stream
}

/// Reads until EOF or a reset (true), or `DEADLINE` (false); returns what was read.
async fn read_to_close(stream: &mut TcpStream) -> (bool, Vec<u8>) {
    let mut all = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(DEADLINE, stream.read(&mut buf)).await {
            Err(_elapsed) => return (false, all),
            Ok(Ok(0)) | Ok(Err(_)) => return (true, all),
            Ok(Ok(read)) => all.extend_from_slice(&buf[..read]),
        }
    }
}

#[tokio::test]
async fn slow_headers_and_idle_connections_are_closed() {
    let server = start().await;

    let mut half = send(server.addr, b"GET /fast HTTP/1.1\r\nHo").await;
    let (closed, answer) = read_to_close(&mut half).await;
    assert!(closed && answer.is_empty(), "{answer:?}");

    let mut silent = send(server.addr, b"").await;
    assert!(read_to_close(&mut silent).await.0);

    // Two requests on one connection, then idle: both answered, then closed.
    let both = b"GET /fast HTTP/1.1\r\nHost: t\r\n\r\nGET /fast HTTP/1.1\r\nHost: t\r\n\r\n";
    let mut kept = send(server.addr, both).await;
    let (closed, answer) = read_to_close(&mut kept).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(closed, "{answer}");
    assert_eq!(answer.matches("HTTP/1.1 200 OK").count(), 2, "{answer}");
    server.shutdown.cancel();
}

#[tokio::test]
async fn a_request_being_handled_is_not_cut_and_shutdown_waits_for_it() {
    let server = start().await;

    let mut waiting = send(server.addr, b"GET /slow HTTP/1.1\r\nHost: t\r\n\r\n").await;
    // Let both timeouts pass several times over while the handler waits: a request
    // in hand has no read deadline. (A sleep to give the timers their chance, not a
    // timing assert: the answer must come whatever the machine's speed.)
    tokio::time::sleep(SHORT * 4).await;
    server.shutdown.cancel();
    let (answered_tx, answered) = oneshot::channel();
    tokio::spawn(async move {
        let answer = read_to_close(&mut waiting).await;
        let _ = answered_tx.send(answer);
    });
    // The server waits for the slow request.
    server.release.send(true).unwrap();
    let (closed, answer) = tokio::time::timeout(DEADLINE, answered)
        .await
        .unwrap()
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(closed, "{answer}");
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
    assert!(answer.ends_with("slow"), "{answer}");
    tokio::time::timeout(DEADLINE, server.task)
        .await
        .unwrap()
        .unwrap();
}
