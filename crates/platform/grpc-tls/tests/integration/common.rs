//! What the tests share: server files from a test CA, a TLS server that echoes, and a
//! TLS client that reports the certificate it was shown.

use std::{net::SocketAddr, path::Path, sync::Arc, time::Duration};

use grpc_tls::{PemFile, ReloadOptions, Reloading, ServerTlsFiles, TlsIncoming};
use rustls::{
    ClientConfig, RootCertStore,
    pki_types::{CertificateDer, ServerName, pem::PemObject},
};
use testkit::{CertFiles, Issued, TestCa};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};
use tokio_rustls::{TlsConnector, client::TlsStream};
use tokio_stream::StreamExt;
use tokio_util::sync::{CancellationToken, DropGuard};

/// Fast enough for a test to see a change within a fraction of a second.
pub const FAST_POLL: ReloadOptions = ReloadOptions {
    poll_interval: Duration::from_millis(50),
};

/// Generous: for things that normally take milliseconds, not a timing assert.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// `files` as the server's settings, under the names orders uses.
pub fn server_files(files: &CertFiles, client_ca: Option<&Path>) -> ServerTlsFiles {
    ServerTlsFiles {
        cert: PemFile::new("ORDERS_GRPC_TLS_CERT", &files.cert),
        key: PemFile::new("ORDERS_GRPC_TLS_KEY", &files.key),
        client_ca: client_ca.map(|ca| PemFile::new("ORDERS_GRPC_CLIENT_CA", ca)),
    }
}

/// Writes `contents` to `path` at once (beside it, then renamed over it), so a poll
/// never sees the file half-written.
pub fn replace_file(path: &Path, contents: &str) {
    let staged = path.with_extension("staged.tmp");
    std::fs::write(&staged, contents).unwrap();
    std::fs::rename(&staged, path).unwrap();
}

/// Replaces a certificate and key the way rotation tools do: each file written
/// beside its target, then renamed over it.
pub fn rotate(files: &CertFiles, issued: &Issued) {
    let dir = files.cert.parent().unwrap();
    let staged = CertFiles {
        cert: dir.join("staged-cert.tmp"),
        key: dir.join("staged-key.tmp"),
    };
    issued.write_to(&staged);
    std::fs::rename(&staged.cert, &files.cert).unwrap();
    std::fs::rename(&staged.key, &files.key).unwrap();
}

/// A TLS server on loopback, served from `TlsIncoming`, echoing what each connection
/// sends; stops when dropped.
pub struct EchoServer {
    pub addr: SocketAddr,
    pub config: Reloading<Arc<rustls::ServerConfig>>,
    _stop: DropGuard,
}

impl EchoServer {
    pub async fn start(files: ServerTlsFiles, options: ReloadOptions) -> Self {
        let stop = CancellationToken::new();
        let config = files
            .reloading("test server", options, stop.clone())
            .unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut incoming = TlsIncoming::new(listener, config.clone(), Duration::from_secs(5));
        let serving = stop.clone();
        tokio::spawn(async move {
            loop {
                let next = tokio::select! {
                    () = serving.cancelled() => return,
                    next = incoming.next() => next,
                };
                let Some(Ok(mut stream)) = next else { return };
                tokio::spawn(async move {
                    let mut buf = [0u8; 64];
                    while let Ok(read) = stream.read(&mut buf).await {
                        if read == 0 || stream.write_all(&buf[..read]).await.is_err() {
                            return;
                        }
                        let _ = stream.flush().await;
                    }
                });
            }
        });
        Self {
            addr,
            config,
            _stop: stop.drop_guard(),
        }
    }

    /// A new connection that trusts `ca_pem`, asking for `localhost`.
    pub async fn connect(&self, ca_pem: &str) -> TlsStream<TcpStream> {
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            roots.add(cert.unwrap()).unwrap();
        }
        let mut config =
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth();
        config.alpn_protocols = vec![b"h2".to_vec()];
        let tcp = TcpStream::connect(self.addr).await.unwrap();
        TlsConnector::from(Arc::new(config))
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap()
    }

    /// The certificate (DER) a new connection is shown.
    pub async fn served_certificate(&self, ca_pem: &str) -> Vec<u8> {
        certificate_of(&self.connect(ca_pem).await)
    }

    /// Waits until new connections are shown `issued`'s certificate.
    pub async fn wait_for_certificate(&self, ca: &TestCa, issued: &Issued) {
        let want = der_of(&issued.cert_pem);
        let deadline = tokio::time::Instant::now() + DEADLINE;
        while self.served_certificate(ca.ca_pem()).await != want {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the new certificate was not served within {DEADLINE:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The end-entity certificate (DER) a client connection was shown.
pub fn certificate_of(stream: &TlsStream<TcpStream>) -> Vec<u8> {
    stream.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

/// The DER of a PEM certificate.
pub fn der_of(pem: &str) -> Vec<u8> {
    CertificateDer::from_pem_slice(pem.as_bytes())
        .unwrap()
        .to_vec()
}

/// Sends SIGHUP to this test process (nextest runs each test in a process of its own).
pub fn send_sighup() {
    let status = std::process::Command::new("kill")
        .args(["-HUP", &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -HUP failed: {status}");
}

/// Waits until `config`'s watcher has had `failures` failed reloads; the last error.
pub async fn wait_for_failures(
    config: &Reloading<Arc<rustls::ServerConfig>>,
    failures: u64,
) -> String {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let status = config.status();
        if status.failures >= failures {
            return status.last_error.unwrap_or_default();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no failed reload within {DEADLINE:?}: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
