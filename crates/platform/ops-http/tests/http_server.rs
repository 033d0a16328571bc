//! `serve_http`: header read and idle timeouts close slow and idle connections, a
//! request being handled is never cut by them, and shutdown answers in-flight
//! requests before returning.
#![allow(clippy::unwrap_used)]

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

/// `/fast` answers at once; `/slow` answers when the test says so.
async fn start(
    release: tokio::sync::watch::Receiver<bool>,
    shutdown: CancellationToken,
) -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let fast = warp::path!("fast").map(|| "fast");
    let slow = warp::path!("slow").then(move || {
        let mut release = release.clone();
        async move {
            let _ = release.wait_for(|go| *go).await;
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
        shutdown.cancelled_owned(),
    ));
    (addr, task)
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
    let (_release_tx, release) = tokio::sync::watch::channel(false);
    let shutdown = CancellationToken::new();
    let (addr, _task) = start(release, shutdown.clone()).await;

    let mut half = TcpStream::connect(addr).await.unwrap();
    half.write_all(b"GET /fast HTTP/1.1\r\nHo").await.unwrap();
    let (closed, answer) = read_to_close(&mut half).await;
    assert!(closed && answer.is_empty(), "{answer:?}");

    let mut silent = TcpStream::connect(addr).await.unwrap();
    assert!(read_to_close(&mut silent).await.0);

    // Two requests on one connection, then idle: both answered, then closed.
    let mut kept = TcpStream::connect(addr).await.unwrap();
    kept.write_all(b"GET /fast HTTP/1.1\r\nHost: t\r\n\r\nGET /fast HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    let (closed, answer) = read_to_close(&mut kept).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(closed, "{answer}");
    assert_eq!(answer.matches("HTTP/1.1 200 OK").count(), 2, "{answer}");
    shutdown.cancel();
}

#[tokio::test]
async fn a_request_being_handled_is_not_cut_and_shutdown_waits_for_it() {
    let (release_tx, release) = tokio::sync::watch::channel(false);
    let shutdown = CancellationToken::new();
    let (addr, task) = start(release, shutdown.clone()).await;

    let mut waiting = TcpStream::connect(addr).await.unwrap();
    waiting
        .write_all(b"GET /slow HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    // Let both timeouts pass several times over while the handler waits: a request
    // in hand has no read deadline. (A sleep to give the timers their chance, not a
    // timing assert: the answer must come whatever the machine's speed.)
    tokio::time::sleep(SHORT * 4).await;
    shutdown.cancel();
    let (answered_tx, answered) = oneshot::channel();
    tokio::spawn(async move {
        let answer = read_to_close(&mut waiting).await;
        let _ = answered_tx.send(answer);
    });
    // The server waits for the slow request.
    release_tx.send(true).unwrap();
    let (closed, answer) = tokio::time::timeout(DEADLINE, answered)
        .await
        .unwrap()
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(closed, "{answer}");
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
    assert!(answer.ends_with("slow"), "{answer}");
    tokio::time::timeout(DEADLINE, task).await.unwrap().unwrap();
}
