//! The gateway -> orders hop over mutual TLS, end to end with certificates made in
//! the test: a gateway with orders' CA (`ORDERS_GRPC_CA`) and a client certificate
//! of the CA orders trusts (`GATEWAY_GRPC_TLS_CERT`/`_KEY`) creates and reads an
//! order and is ready; one with the wrong CA answers 503 and is not ready, and so
//! is one without a client certificate; a TLS file that cannot be used stops it.
//! Two orders, each by its name resolved into addresses, share the CA and the
//! client certificate behind one gateway.

use std::{path::Path, time::Duration};

use orders::testing::{Orders, TlsFiles};
use testkit::{CertFiles, TestDatabase};

use crate::common::{Gateway, gateway_config};

const ORDER: &str =
    r#"{"user_id": 42, "items": [{"product_id": 1, "quantity": 2, "price": 1500}]}"#;

/// The test certificates ([`TlsFiles`]), with this module's helpers.
struct Pki(TlsFiles);

impl std::ops::Deref for Pki {
    type Target = TlsFiles;

    fn deref(&self) -> &TlsFiles {
        &self.0
    }
}

impl Pki {
    /// A ready orders on `db` serving gRPC over mutual TLS.
    async fn orders(&self, db: &TestDatabase) -> Orders {
        let orders = Orders::start(self.orders_config(db.dsn(), true)).await;
        orders.wait_ready().await;
        orders
    }

    /// The gateway's settings: orders at `https://localhost:<port>`, trusting `ca`,
    /// presenting `identity`.
    fn gateway_config(
        &self,
        orders: &Orders,
        ca: &Path,
        identity: Option<&CertFiles>,
    ) -> gateway::Config {
        let address = format!("https://localhost:{}", orders.grpc_addr.port());
        self.gateway_config_for(&address, ca, identity)
    }

    /// [`Pki::gateway_config`] for orders at `address` (one or a list).
    fn gateway_config_for(
        &self,
        address: &str,
        ca: &Path,
        identity: Option<&CertFiles>,
    ) -> gateway::Config {
        gateway::Config {
            orders_grpc_ca: Some(ca.to_owned()),
            gateway_grpc_tls_cert: identity.map(|files| files.cert.clone()),
            gateway_grpc_tls_key: identity.map(|files| files.key.clone()),
            ..gateway_config(address, Duration::from_secs(5))
        }
    }
}

fn with_tls_orders(db_name: &str, test: impl AsyncFnOnce(&Pki, Orders)) {
    with_tls_orders_db(db_name, async |pki, orders, _| test(pki, orders).await);
}

/// [`with_tls_orders`], the test also getting the database (for more orders on it).
fn with_tls_orders_db(db_name: &str, test: impl AsyncFnOnce(&Pki, Orders, &TestDatabase)) {
    let pki = Pki(TlsFiles::new());
    let db = TestDatabase::new(db_name);
    testkit::runtime().block_on(async {
        let orders = pki.orders(&db).await;
        test(&pki, orders, &db).await;
    });
}

#[test]
fn a_gateway_with_the_ca_and_its_client_certificate_creates_and_reads_an_order() {
    with_tls_orders("gateway_grpc_tls", async |pki, orders| {
        let config = pki.gateway_config(&orders, &pki.orders_ca.ca_file(), Some(&pki.gateway));
        let gateway = Gateway::start(config).await;

        let ready = gateway.get("/readyz").await;
        assert_eq!(ready.status, 200, "{ready:?}");
        let order_id = gateway.create_order(ORDER).await;
        let got = gateway.get_order(order_id).await;
        assert_eq!(got["order"]["order_id"], order_id, "{got}");
        assert_eq!(got["order"]["user_id"], 42, "{got}");
        assert_eq!(got["order"]["total_amount"], 3000, "{got}");
    });
}

#[test]
fn a_gateway_with_the_wrong_ca_answers_503_and_is_not_ready() {
    with_tls_orders("gateway_grpc_tls_wrong_ca", async |pki, orders| {
        // The CA of the clients did not sign orders' certificate.
        let config = pki.gateway_config(&orders, &pki.clients_ca.ca_file(), Some(&pki.gateway));
        let gateway = Gateway::start(config).await;

        let created = gateway.post("/orders", ORDER).await;
        assert_eq!(created.status, 503, "{created:?}");
        let got = gateway.get("/orders/1").await;
        assert_eq!(got.status, 503, "{got:?}");
        let ready = gateway.get("/readyz").await;
        assert_eq!(ready.status, 503, "{ready:?}");
        assert_eq!(ready.body["status"], "not ready", "{ready:?}");
    });
}

#[test]
fn a_gateway_without_a_client_certificate_is_not_ready_under_mutual_tls() {
    with_tls_orders("gateway_grpc_tls_no_cert", async |pki, orders| {
        let config = pki.gateway_config(&orders, &pki.orders_ca.ca_file(), None);
        let gateway = Gateway::start(config).await;

        let ready = gateway.get("/readyz").await;
        assert_eq!(ready.status, 503, "{ready:?}");
        // orders refuses it after the gateway's side of the TLS 1.3 handshake, so the
        // call fails without an answer: never a created order.
        let created = gateway.post("/orders", ORDER).await;
        assert!(created.status >= 500, "{created:?}");
    });
}

#[test]
fn a_tls_file_that_cannot_be_used_stops_the_gateway_naming_it() {
    let pki = Pki(TlsFiles::new());
    let missing = pki.orders_ca.dir().join("missing-ca.pem");
    let path = |path: &Path| path.to_str().unwrap().to_owned();
    let (cert, key) = (path(&pki.gateway.cert), path(&pki.gateway.key));
    let mut clear = gateway::config::ENV_VARS.to_vec();
    clear.push(gateway::config::CONFIG_FILE_VAR);
    let base = [
        ("GATEWAY_HTTP_ADDR", "127.0.0.1:0"),
        ("ORDERS_GRPC_ADDR", "https://localhost:50051"),
    ];
    let binary = Path::new(env!("CARGO_BIN_EXE_gateway"));
    testkit::assert_setting_refused(
        binary,
        &clear,
        &base,
        ("ORDERS_GRPC_CA", &path(&missing), "cannot read it"),
    );
    // The key of another certificate.
    let ca = path(&pki.orders_ca.ca_file());
    let other_key = path(&pki.orders.key);
    let with_ca = [base[0], base[1], ("ORDERS_GRPC_CA", ca.as_str())];
    let mismatched = [
        with_ca[0],
        with_ca[1],
        with_ca[2],
        ("GATEWAY_GRPC_TLS_CERT", &cert),
    ];
    testkit::assert_setting_refused(
        binary,
        &clear,
        &mismatched,
        ("GATEWAY_GRPC_TLS_KEY", &other_key, "GATEWAY_GRPC_TLS_CERT"),
    );
    // A client certificate without the CA.
    testkit::assert_setting_refused(
        binary,
        &clear,
        &[base[0], ("GATEWAY_GRPC_TLS_CERT", &cert)],
        ("GATEWAY_GRPC_TLS_KEY", &key, "ORDERS_GRPC_CA"),
    );
}

#[test]
fn two_tls_orders_share_the_ca_and_client_certificate_behind_one_gateway() {
    with_tls_orders_db("gateway_grpc_tls_replicas", async |pki, first, db| {
        let second = pki.orders(db).await;
        // Each replica by its name (`localhost`, on its certificate), resolved into
        // its addresses: the channel goes to an address and verifies the name.
        let list = format!(
            "https://localhost:{},https://localhost:{}",
            first.grpc_addr.port(),
            second.grpc_addr.port()
        );
        let config = gateway::Config {
            gateway_orders_resolve_interval: settings::GoDuration::from_secs(1),
            ..pki.gateway_config_for(&list, &pki.orders_ca.ca_file(), Some(&pki.gateway))
        };
        let gateway = Gateway::start(config).await;
        let ready = gateway.get("/readyz").await;
        assert_eq!(ready.status, 200, "{ready:?}");
        // Round robin: both replicas store orders.
        let mut created = Vec::new();
        while first.metric("orders_created_total").await < 1.0
            || second.metric("orders_created_total").await < 1.0
        {
            assert!(created.len() < 50, "one replica never called: {created:?}");
            created.push(gateway.create_order(ORDER).await);
        }
        for order_id in created {
            let got = gateway.get_order(order_id).await;
            assert_eq!(got["order"]["order_id"], order_id, "{got}");
        }
    });
}
