//! The server's certificate rotated without a restart: on a change of its files, at
//! once on SIGHUP, and never to a broken file.

use std::time::Duration;

use grpc_tls::ReloadOptions;
use testkit::TestCa;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::{
    EchoServer, FAST_POLL, certificate_of, der_of, replace_file, rotate, send_sighup, server_files,
    wait_for_failures,
};

/// One echo over an established connection: it still works.
async fn echo(stream: &mut tokio_rustls::client::TlsStream<tokio::net::TcpStream>) {
    stream.write_all(b"ping").await.unwrap();
    stream.flush().await.unwrap();
    let mut answer = [0u8; 4];
    stream.read_exact(&mut answer).await.unwrap();
    assert_eq!(&answer, b"ping");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_certificate_reaches_new_connections_and_established_ones_keep_theirs() {
    let ca = TestCa::new("rotation");
    let first = ca.server(&["localhost"]);
    let files = ca.issue_files("orders", &first);
    let server = EchoServer::start(server_files(&files, None), FAST_POLL).await;

    let mut established = server.connect(ca.ca_pem()).await;
    assert_eq!(certificate_of(&established), der_of(&first.cert_pem));
    echo(&mut established).await;

    let second = ca.server(&["localhost"]);
    rotate(&files, &second);
    server.wait_for_certificate(&ca, &second).await;

    // The connection made before the rotation goes on, with the certificate it began with.
    echo(&mut established).await;
    assert_eq!(certificate_of(&established), der_of(&first.cert_pem));
    assert!(
        server.config.status().reloads >= 1,
        "{:?}",
        server.config.status()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_at_once() {
    let ca = TestCa::new("sighup");
    let first = ca.server(&["localhost"]);
    let files = ca.issue_files("orders", &first);
    // No poll within the test: only the signal can bring the new certificate.
    let hour = ReloadOptions {
        poll_interval: Duration::from_secs(3600),
    };
    let server = EchoServer::start(server_files(&files, None), hour).await;
    assert_eq!(
        server.served_certificate(ca.ca_pem()).await,
        der_of(&first.cert_pem)
    );

    let second = ca.server(&["localhost"]);
    rotate(&files, &second);
    send_sighup();
    server.wait_for_certificate(&ca, &second).await;
    assert_eq!(server.config.status().reloads, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_file_keeps_the_current_certificate_until_a_good_one_comes() {
    let ca = TestCa::new("broken");
    let first = ca.server(&["localhost"]);
    let files = ca.issue_files("orders", &first);
    let server = EchoServer::start(server_files(&files, None), FAST_POLL).await;
    let served = || server.served_certificate(ca.ca_pem());

    // Not PEM at all.
    replace_file(&files.cert, "not a certificate\n");
    let error = wait_for_failures(&server.config, 1).await;
    testkit::assert_mentions(
        &error,
        &[
            "ORDERS_GRPC_TLS_CERT",
            &files.cert.display().to_string(),
            "no certificate",
        ],
    );
    assert_eq!(served().await, der_of(&first.cert_pem));

    // A certificate whose key is not the one beside it.
    let other = ca.server(&["localhost"]);
    replace_file(&files.cert, &other.cert_pem);
    let error = wait_for_failures(&server.config, 2).await;
    testkit::assert_mentions(
        &error,
        &[
            "ORDERS_GRPC_TLS_KEY",
            "ORDERS_GRPC_TLS_CERT",
            "not the one of the certificate",
        ],
    );
    assert_eq!(served().await, der_of(&first.cert_pem));

    // A missing key file.
    std::fs::remove_file(&files.key).unwrap();
    let error = wait_for_failures(&server.config, 3).await;
    testkit::assert_mentions(
        &error,
        &[
            "ORDERS_GRPC_TLS_KEY",
            &files.key.display().to_string(),
            "cannot read it",
        ],
    );
    assert_eq!(served().await, der_of(&first.cert_pem));

    // A failed reload is not retried while nothing changes (one error in the log,
    // not one per poll).
    tokio::time::sleep(FAST_POLL.poll_interval * 5).await;
    assert_eq!(server.config.status().failures, 3);

    // The next change is tried again: a good pair is taken.
    rotate(&files, &other);
    server.wait_for_certificate(&ca, &other).await;
    let status = server.config.status();
    assert_eq!((status.reloads, status.last_error), (1, None));
}
