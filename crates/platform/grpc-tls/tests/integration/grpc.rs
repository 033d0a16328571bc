//! gRPC over `TlsIncoming` with mutual TLS, called through the client channel of
//! `ClientTlsFiles`: the calls a verified client makes succeed, every other client
//! is refused at the handshake, and the client's certificate is rotated without a
//! restart.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use grpc_tls::{ClientIdentity, ClientTlsFiles, PemFile, Reloading, ServerTlsFiles, TlsIncoming};
use testkit::{CertFiles, TestCa};
use tokio::net::TcpListener;
use tokio_util::sync::{CancellationToken, DropGuard};
use tonic::transport::{
    Channel, Server,
    server::{TcpConnectInfo, TlsConnectInfo},
};
use tonic_health::{
    pb::{HealthCheckRequest, health_client::HealthClient, health_server::HealthServer},
    server::HealthService,
};

use crate::common::{DEADLINE, FAST_POLL, der_of, rotate, server_files};

/// A gRPC health server on `localhost` requiring client certificates of `client_ca`;
/// it keeps the last client certificate it saw. Stops when dropped.
pub struct MutualServer {
    pub uri: String,
    last_client_cert: Arc<Mutex<Option<Vec<u8>>>>,
    _stop: DropGuard,
}

impl MutualServer {
    async fn start(server_ca: &TestCa, client_ca: &TestCa) -> Self {
        let files = server_ca.issue_files("orders", &server_ca.server(&["localhost"]));
        Self::start_with(server_files(&files, Some(&client_ca.ca_file()))).await
    }

    /// [`MutualServer::start`] on given files.
    pub async fn start_with(files: ServerTlsFiles) -> Self {
        let stop = CancellationToken::new();
        let config = files
            .reloading("test server", FAST_POLL, stop.clone())
            .unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let last_client_cert = Arc::new(Mutex::new(None));
        let seen = last_client_cert.clone();
        // What tonic's `Connected` for the TLS stream puts into every request.
        let record = move |request: tonic::Request<()>| {
            let info = request.extensions().get::<TlsConnectInfo<TcpConnectInfo>>();
            if let Some(certs) = info.and_then(TlsConnectInfo::peer_certs) {
                *seen.lock().unwrap() = certs.first().map(|cert| cert.to_vec());
            }
            Ok(request)
        };
        let (reporter, _) = tonic_health::server::health_reporter();
        let health =
            HealthServer::with_interceptor(HealthService::from_health_reporter(reporter), record);
        let incoming = TlsIncoming::new(listener, config, Duration::from_secs(5));
        tokio::spawn(
            Server::builder()
                .add_service(health)
                .serve_with_incoming_shutdown(incoming, stop.clone().cancelled_owned()),
        );
        Self {
            uri: format!("http://localhost:{port}"),
            last_client_cert,
            _stop: stop.drop_guard(),
        }
    }

    fn last_client_cert(&self) -> Option<Vec<u8>> {
        self.last_client_cert.lock().unwrap().clone()
    }
}

pub fn client_files(ca: &TestCa, identity: Option<&CertFiles>) -> ClientTlsFiles {
    ClientTlsFiles {
        ca: PemFile::new("ORDERS_GRPC_CA", ca.ca_file()),
        identity: identity.map(|files| ClientIdentity {
            cert: PemFile::new("GATEWAY_GRPC_TLS_CERT", &files.cert),
            key: PemFile::new("GATEWAY_GRPC_TLS_KEY", &files.key),
        }),
    }
}

/// One server-wide `Health/Check` over `channel`.
pub async fn check(channel: Channel) -> Result<i32, tonic::Status> {
    let request = tonic::Request::new(HealthCheckRequest {
        service: String::new(),
    });
    let answer = tokio::time::timeout(DEADLINE, HealthClient::new(channel).check(request))
        .await
        .expect("no answer in time")?;
    Ok(answer.into_inner().status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_client_with_a_certificate_of_the_client_ca_gets_through() {
    let (server_ca, client_ca, other_ca) = (
        TestCa::new("orders"),
        TestCa::new("gateways"),
        TestCa::new("other"),
    );
    let server = MutualServer::start(&server_ca, &client_ca).await;
    let timeout = Duration::from_secs(5);

    let gateway = client_ca.issue_files("gateway", &client_ca.client("gateway"));
    let channel = client_files(&server_ca, Some(&gateway))
        .channel(&server.uri, timeout)
        .unwrap();
    assert_eq!(check(channel).await.unwrap(), 1, "SERVING");
    let expected = der_of(&std::fs::read_to_string(&gateway.cert).unwrap());
    assert_eq!(server.last_client_cert(), Some(expected));

    // A client that does not trust the server fails its own handshake: UNAVAILABLE.
    // One the server refuses learns it, under TLS 1.3, only after its side of the
    // handshake is done, on its first call: CANCELLED ("connection closed") or
    // UNKNOWN (the server's alert, e.g. "CertificateRequired"), whichever comes first.
    let refused = |channel: Channel| async move {
        let status = check(channel).await.unwrap_err();
        assert!(
            matches!(
                status.code(),
                tonic::Code::Unavailable | tonic::Code::Cancelled | tonic::Code::Unknown
            ),
            "{status:?}"
        );
    };
    // No client certificate.
    refused(
        client_files(&server_ca, None)
            .channel(&server.uri, timeout)
            .unwrap(),
    )
    .await;
    // A client certificate from another CA.
    let stranger = other_ca.issue_files("stranger", &other_ca.client("gateway"));
    refused(
        client_files(&server_ca, Some(&stranger))
            .channel(&server.uri, timeout)
            .unwrap(),
    )
    .await;
    // The right client certificate, but the server's is not trusted.
    refused(
        client_files(&other_ca, Some(&gateway))
            .channel(&server.uri, timeout)
            .unwrap(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_certificate_is_rotated_without_a_restart() {
    let (server_ca, client_ca) = (TestCa::new("orders"), TestCa::new("gateways"));
    let server = MutualServer::start(&server_ca, &client_ca).await;
    let first = client_ca.client("gateway");
    let files = client_ca.issue_files("gateway", &first);
    let stop = CancellationToken::new();
    let _stop = stop.clone().drop_guard();
    let channel: Reloading<Channel> = client_files(&server_ca, Some(&files))
        .reloading(
            "test client",
            server.uri.clone(),
            Duration::from_secs(5),
            FAST_POLL,
            stop,
        )
        .unwrap();
    check(channel.current()).await.unwrap();
    assert_eq!(server.last_client_cert(), Some(der_of(&first.cert_pem)));

    let second = client_ca.client("gateway");
    rotate(&files, &second);
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        check(channel.current()).await.unwrap();
        if server.last_client_cert() == Some(der_of(&second.cert_pem)) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the new client certificate was not used within {DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(channel.status().reloads >= 1, "{:?}", channel.status());
}

#[test]
fn wrong_client_files_are_refused_naming_the_variable_and_the_file() {
    let ca = TestCa::new("orders");
    let gateway = ca.issue_files("gateway", &ca.client("gateway"));
    let runtime = testkit::runtime();
    let _entered = runtime.enter();

    let missing_ca = ClientTlsFiles {
        ca: PemFile::new("ORDERS_GRPC_CA", ca.dir().join("nope.pem")),
        identity: None,
    };
    let error = missing_ca
        .channel("orders:50051", Duration::from_secs(1))
        .unwrap_err();
    testkit::assert_mentions(
        &error.to_string(),
        &["ORDERS_GRPC_CA", "nope.pem", "cannot read it"],
    );

    // A key that is not the certificate's.
    let other = ca.issue_files("other", &ca.client("other"));
    let mismatched = CertFiles {
        cert: gateway.cert.clone(),
        key: other.key.clone(),
    };
    let error = client_files(&ca, Some(&mismatched))
        .channel("orders:50051", Duration::from_secs(1))
        .unwrap_err();
    testkit::assert_mentions(
        &error.to_string(),
        &[
            "GATEWAY_GRPC_TLS_KEY",
            "GATEWAY_GRPC_TLS_CERT",
            "other.key",
            "gateway.pem",
        ],
    );

    // A CA file with no certificate in it.
    let error = ClientTlsFiles {
        ca: PemFile::new("ORDERS_GRPC_CA", &gateway.key),
        identity: None,
    }
    .channel("orders:50051", Duration::from_secs(1))
    .unwrap_err();
    testkit::assert_mentions(
        &error.to_string(),
        &["ORDERS_GRPC_CA", "gateway.key", "no certificate"],
    );
}
