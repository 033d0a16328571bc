//! The files made by the openssl commands the documentation gives (an RSA CA, a SEC1
//! EC key for orders, a traditional RSA key for the gateway) load and serve mutual
//! TLS: the formats operators actually have, not only rcgen's PKCS#8.

use std::{path::Path, process::Command, time::Duration};

use grpc_tls::{ClientIdentity, ClientTlsFiles, PemFile, ServerTlsFiles};

use crate::grpc::{MutualServer, check};

/// The documentation's commands, as written there (one CA signs both certificates).
const MAKE_CERTS: &str = r#"set -eu
openssl req -x509 -newkey rsa:3072 -nodes -keyout ca.key -out ca.pem -days 3650 \
  -subj "/CN=order platform gRPC CA"
openssl ecparam -name prime256v1 -genkey -noout -out orders.key
openssl req -new -key orders.key -out orders.csr -subj "/CN=orders"
printf 'subjectAltName=DNS:orders,DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > orders.ext
openssl x509 -req -in orders.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 90 \
  -extfile orders.ext -out orders.pem
openssl genrsa -traditional -out gateway.key 2048
openssl req -new -key gateway.key -out gateway.csr -subj "/CN=gateway"
printf 'extendedKeyUsage=clientAuth\n' > gateway.ext
openssl x509 -req -in gateway.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 90 \
  -extfile gateway.ext -out gateway.pem
"#;

fn first_line(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_made_with_openssl_serve_mutual_tls() {
    let dir = tempfile::tempdir().unwrap();
    let made = Command::new("sh")
        .args(["-c", MAKE_CERTS])
        .current_dir(dir.path())
        .output()
        .expect("this test needs the openssl command (Debian: apt-get install openssl)");
    assert!(
        made.status.success(),
        "openssl failed: {}",
        String::from_utf8_lossy(&made.stderr)
    );
    let file = |name: &str| dir.path().join(name);
    // The key formats this test is about.
    assert_eq!(
        first_line(&file("orders.key")),
        "-----BEGIN EC PRIVATE KEY-----"
    );
    assert_eq!(
        first_line(&file("gateway.key")),
        "-----BEGIN RSA PRIVATE KEY-----"
    );

    let server = MutualServer::start_with(ServerTlsFiles {
        cert: PemFile::new("ORDERS_GRPC_TLS_CERT", file("orders.pem")),
        key: PemFile::new("ORDERS_GRPC_TLS_KEY", file("orders.key")),
        client_ca: Some(PemFile::new("ORDERS_GRPC_CLIENT_CA", file("ca.pem"))),
    })
    .await;
    let client = ClientTlsFiles {
        ca: PemFile::new("ORDERS_GRPC_CA", file("ca.pem")),
        identity: Some(ClientIdentity {
            cert: PemFile::new("GATEWAY_GRPC_TLS_CERT", file("gateway.pem")),
            key: PemFile::new("GATEWAY_GRPC_TLS_KEY", file("gateway.key")),
        }),
    };
    let channel = client.channel(&server.uri, Duration::from_secs(5)).unwrap();
    assert_eq!(check(channel).await.unwrap(), 1, "SERVING");
}
