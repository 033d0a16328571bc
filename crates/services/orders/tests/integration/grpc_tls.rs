//! orders' gRPC port over TLS (`ORDERS_GRPC_TLS_CERT`, `ORDERS_GRPC_TLS_KEY`) and
//! mutual TLS (`ORDERS_GRPC_CLIENT_CA`), with certificates made in the test: a
//! plaintext client is refused, under mutual TLS so is a client without a
//! certificate or with another CA's, and the real grpcurl lists the services
//! (reflection) and gets SERVING from the health service with `-cacert -cert -key`.
//! A file that cannot be used stops the binary naming the variable and the file.

use std::{path::Path, time::Duration};

use grpc_tls::{ClientIdentity, ClientTlsFiles, PemFile};
use orders::testing::{Orders, TlsFiles, item, request};
use proto::v1::orders_service_client::OrdersServiceClient;
use testkit::{CertFiles, TestDatabase};
use tonic::transport::Channel;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

/// Long enough for a loaded test machine; a refusal comes at once anyway.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// The test certificates ([`TlsFiles`]), with this module's helpers.
struct Pki(TlsFiles);

impl std::ops::Deref for Pki {
    type Target = TlsFiles;

    fn deref(&self) -> &TlsFiles {
        &self.0
    }
}

impl Pki {
    /// A TLS channel to `orders` trusting orders' CA, presenting `identity`.
    fn channel(&self, orders: &Orders, identity: Option<&CertFiles>) -> Channel {
        ClientTlsFiles {
            ca: PemFile::new("ORDERS_GRPC_CA", self.orders_ca.ca_file()),
            identity: identity.map(|files| ClientIdentity {
                cert: PemFile::new("GATEWAY_GRPC_TLS_CERT", &files.cert),
                key: PemFile::new("GATEWAY_GRPC_TLS_KEY", &files.key),
            }),
        }
        .channel(
            &format!("https://localhost:{}", orders.grpc_addr.port()),
            CALL_TIMEOUT,
        )
        .unwrap()
    }
}

/// orders' `Health/Check` for its service over `channel`.
async fn health(channel: Channel) -> Result<ServingStatus, tonic::Status> {
    let request = HealthCheckRequest {
        service: orders::SERVICE_NAME.to_owned(),
    };
    let mut client = HealthClient::new(channel);
    match tokio::time::timeout(CALL_TIMEOUT, client.check(request)).await {
        Ok(answer) => Ok(answer?.into_inner().status()),
        Err(_) => Err(tonic::Status::deadline_exceeded("no answer in time")),
    }
}

/// Starts orders with `orders_config` and waits until its database is ready
/// (`/readyz`, on the plaintext operations port).
fn with_tls_orders(
    db_name: &str,
    orders_config: impl FnOnce(&TestDatabase) -> orders::Config,
    test: impl AsyncFnOnce(Orders),
) {
    let db = TestDatabase::new(db_name);
    testkit::runtime().block_on(async {
        let orders = Orders::start(orders_config(&db)).await;
        orders.wait_ready().await;
        test(orders).await;
    });
}

#[test]
fn a_plaintext_client_is_refused_and_a_tls_client_is_served() {
    let pki = Pki(TlsFiles::new());
    with_tls_orders(
        "grpc_tls_plain",
        |db| pki.orders_config(db.dsn(), false),
        async |orders| {
            // What the gateway did before TLS: a plaintext HTTP/2 connection.
            let plaintext = tonic::transport::Endpoint::from_shared(orders.uri())
                .unwrap()
                .connect_lazy();
            let refused = health(plaintext).await.unwrap_err();
            assert_ne!(refused.code(), tonic::Code::Ok, "{refused:?}");

            // TLS without a client certificate is what this orders asks for.
            assert_eq!(
                health(pki.channel(&orders, None)).await.unwrap(),
                ServingStatus::Serving
            );
            let created = OrdersServiceClient::new(pki.channel(&orders, None))
                .create_order(request(7, vec![item(1, 2, 150)]))
                .await
                .unwrap()
                .into_inner();
            assert!(created.order_id > 0, "{created:?}");
        },
    );
}

#[test]
fn under_mutual_tls_only_a_certificate_of_the_client_ca_is_accepted() {
    let pki = Pki(TlsFiles::new());
    with_tls_orders(
        "grpc_tls_mutual",
        |db| pki.orders_config(db.dsn(), true),
        async |orders| {
            // No client certificate.
            let refused = health(pki.channel(&orders, None)).await.unwrap_err();
            assert_ne!(refused.code(), tonic::Code::Ok, "{refused:?}");
            // A client certificate from another CA (here: orders' own).
            let stranger = pki
                .orders_ca
                .issue_files("stranger", &pki.orders_ca.client("gateway"));
            let refused = health(pki.channel(&orders, Some(&stranger)))
                .await
                .unwrap_err();
            assert_ne!(refused.code(), tonic::Code::Ok, "{refused:?}");
            // A plaintext client, for good measure.
            let plaintext = tonic::transport::Endpoint::from_shared(orders.uri())
                .unwrap()
                .connect_lazy();
            assert!(health(plaintext).await.is_err());

            let verified = pki.channel(&orders, Some(&pki.gateway));
            assert_eq!(
                health(verified.clone()).await.unwrap(),
                ServingStatus::Serving
            );
            let mut client = OrdersServiceClient::new(verified);
            let created = client
                .create_order(request(7, vec![item(1, 2, 150)]))
                .await
                .unwrap()
                .into_inner();
            let got = client
                .get_order(proto::v1::GetOrderRequest {
                    order_id: created.order_id,
                })
                .await
                .unwrap()
                .into_inner();
            assert_eq!(got.order.map(|order| order.user_id), Some(7));
        },
    );
}

/// grpcurl with `args` then `localhost:<port>` and `rest`; its output, which must be
/// a success.
async fn grpcurl(args: &[&str], port: u16, rest: &[&str]) -> String {
    let address = format!("localhost:{port}");
    let output = tokio::process::Command::new("grpcurl")
        .args(args)
        .arg(&address)
        .args(rest)
        .output()
        .await
        .unwrap_or_else(|err| {
            panic!(
                "cannot run grpcurl ({err}); this test needs grpcurl 1.8 on PATH \
                 (scripts/setup-test-tools.sh installs it)"
            )
        });
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "grpcurl {args:?} {address} {rest:?} failed ({}):\nstdout: {stdout}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

fn path(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn grpcurl_lists_the_services_and_checks_health_over_mutual_tls() {
    let pki = Pki(TlsFiles::new());
    with_tls_orders(
        "grpc_tls_grpcurl",
        |db| pki.orders_config(db.dsn(), true),
        async |orders| {
            let port = orders.grpc_addr.port();
            let ca = pki.orders_ca.ca_file();
            let tls = [
                "-cacert",
                path(&ca),
                "-cert",
                path(&pki.gateway.cert),
                "-key",
                path(&pki.gateway.key),
            ];

            let list = grpcurl(&tls, port, &["list"]).await;
            let services: Vec<&str> = list.lines().map(str::trim).collect();
            assert!(services.contains(&"orders.v1.OrdersService"), "{list}");
            assert!(services.contains(&"grpc.health.v1.Health"), "{list}");

            let mut check = tls.to_vec();
            check.extend(["-d", r#"{"service": "orders.v1.OrdersService"}"#]);
            let answer = grpcurl(&check, port, &["grpc.health.v1.Health/Check"]).await;
            assert!(answer.contains(r#""status": "SERVING""#), "{answer}");

            // Without its client certificate grpcurl is refused (it retries a refused
            // connection until its connect timeout: keep that short).
            let refused = tokio::process::Command::new("grpcurl")
                .args(["-connect-timeout", "2", "-cacert", path(&ca)])
                .args([&format!("localhost:{port}"), "list"])
                .output()
                .await
                .unwrap();
            assert!(!refused.status.success(), "{refused:?}");
        },
    );
}

#[test]
fn a_tls_file_that_cannot_be_used_stops_orders_naming_the_variable_and_the_file() {
    let pki = Pki(TlsFiles::new());
    let binary = Path::new(env!("CARGO_BIN_EXE_orders"));
    let clear = testkit::service_vars(orders::config::ENV_VARS, orders::config::CONFIG_FILE_VAR);
    let missing = pki.orders_ca.dir().join("missing.pem");
    let base = [
        ("ORDERS_GRPC_ADDR", "127.0.0.1:0"),
        ("ORDERS_HEALTH_ADDR", "127.0.0.1:0"),
        ("ORDERS_GRPC_TLS_KEY", path(&pki.orders.key)),
    ];
    // Refused before any database is looked for.
    testkit::assert_setting_refused(
        binary,
        &clear,
        &base,
        ("ORDERS_GRPC_TLS_CERT", path(&missing), "cannot read it"),
    );
    // A key that is not the certificate's.
    testkit::assert_setting_refused(
        binary,
        &clear,
        &base,
        (
            "ORDERS_GRPC_TLS_CERT",
            path(&pki.gateway.cert),
            "ORDERS_GRPC_TLS_KEY",
        ),
    );
    // Only one of the pair.
    testkit::assert_setting_refused(
        binary,
        &clear,
        &base[..2],
        (
            "ORDERS_GRPC_TLS_CERT",
            path(&pki.orders.cert),
            "ORDERS_GRPC_TLS_KEY",
        ),
    );
    // A client CA without TLS.
    testkit::assert_setting_refused(
        binary,
        &clear,
        &base[..2],
        (
            "ORDERS_GRPC_CLIENT_CA",
            path(&pki.clients_ca.ca_file()),
            "ORDERS_GRPC_TLS_CERT",
        ),
    );
}
