//! The test harness for orders (feature `testing`), shared by orders' own tests and
//! the gateway's: start orders in-process on a test database, talk gRPC and HTTP to
//! it, and look into its database. Everything here panics on failure (test code).
#![allow(clippy::unwrap_used, missing_docs)]

use std::{net::SocketAddr, time::Duration};

use proto::v1::{CreateOrderRequest, Money, OrderItem, orders_service_client::OrdersServiceClient};
use settings::BrokerList;
use testkit::{CertFiles, TestCa, TestDatabase};
use tokio_util::sync::{CancellationToken, DropGuard};
use tonic::transport::Channel;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

/// Generous: a deadline for things that normally take milliseconds, not a timing assert.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// Orders' settings for a test: loopback port-0 listeners, the given database, and
/// a broker address nothing listens on (the relay retries quietly; rows stay unsent).
pub fn config(dsn: String) -> crate::Config {
    crate::Config {
        orders_pg_dsn: dsn,
        orders_grpc_addr: "127.0.0.1:0".parse().unwrap(),
        orders_health_addr: "127.0.0.1:0".parse().unwrap(),
        orders_db_pool_size: 4,
        kafka: settings::KafkaConnection {
            brokers: BrokerList::single("127.0.0.1", 1),
            ..Default::default()
        },
        ..crate::Config::default()
    }
}

/// Runs `test` on a fresh two-thread runtime against an orders serving on a new
/// database (`TestDatabase::new(db_name)`) with the test settings of [`config`]. The
/// test gets orders to stop (or drop) and the database to look into; the database is
/// dropped once the runtime is gone.
pub fn with_orders(db_name: &str, test: impl AsyncFnOnce(Orders, &TestDatabase)) {
    with_orders_configured(db_name, |config| config, test);
}

/// [`with_orders`] with `configure` applied to the test settings first (e.g. a
/// shorter `orders_idempotency_ttl`).
pub fn with_orders_configured(
    db_name: &str,
    configure: impl FnOnce(crate::Config) -> crate::Config,
    test: impl AsyncFnOnce(Orders, &TestDatabase),
) {
    let db = TestDatabase::new(db_name);
    testkit::runtime().block_on(async {
        let orders = Orders::start_serving(configure(config(db.dsn()))).await;
        test(orders, &db).await;
    });
}

/// A running orders; stops when dropped.
pub struct Orders {
    pub grpc_addr: SocketAddr,
    pub health_addr: SocketAddr,
    pub running: Option<crate::Running>,
    stop: CancellationToken,
    _guard: DropGuard,
}

impl Orders {
    pub async fn start(config: crate::Config) -> Self {
        let stop = CancellationToken::new();
        let running = crate::start(config, stop.clone()).await.unwrap();
        Self {
            grpc_addr: running.grpc_addr,
            health_addr: running.health_addr,
            running: Some(running),
            _guard: stop.clone().drop_guard(),
            stop,
        }
    }

    /// Starts and waits until gRPC health says SERVING.
    pub async fn start_serving(config: crate::Config) -> Self {
        let orders = Self::start(config).await;
        orders.wait_serving().await;
        orders
    }

    pub fn uri(&self) -> String {
        format!("http://{}", self.grpc_addr)
    }

    pub async fn client(&self) -> OrdersServiceClient<Channel> {
        OrdersServiceClient::connect(self.uri()).await.unwrap()
    }

    /// `CreateOrder` over a new connection, which must succeed; the order id.
    pub async fn create(&self, request: CreateOrderRequest) -> i64 {
        self.client()
            .await
            .create_order(request)
            .await
            .unwrap()
            .into_inner()
            .order_id
    }

    pub async fn health(&self) -> Option<ServingStatus> {
        let channel = tonic::transport::Endpoint::from_shared(self.uri())
            .ok()?
            .connect()
            .await
            .ok()?;
        let mut client = HealthClient::new(channel);
        let response = client
            .check(HealthCheckRequest {
                service: crate::SERVICE_NAME.to_owned(),
            })
            .await
            .ok()?;
        Some(response.into_inner().status())
    }

    /// orders' own operations endpoint, e.g. `/readyz`.
    pub fn ops_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.health_addr)
    }

    /// Waits until orders' `/readyz` is 200 (the database is migrated and reachable).
    pub async fn wait_ready(&self) {
        let url = self.ops_url("/readyz");
        testkit::wait_until_async(DEADLINE, "orders /readyz 200", || {
            let url = url.clone();
            async move { (get_status(&url).await == Some(200)).then_some(()) }
        })
        .await;
    }

    pub async fn wait_serving(&self) {
        testkit::wait_until_async(DEADLINE, "orders to report SERVING", || async {
            (self.health().await == Some(ServingStatus::Serving)).then_some(())
        })
        .await;
    }

    /// The text of orders' `/metrics`.
    pub async fn metrics(&self) -> String {
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        let response = http.get(self.ops_url("/metrics")).send().await.unwrap();
        response.text().await.unwrap()
    }

    /// One series of `/metrics` (e.g. `orders_batch_size_count`), 0 if absent.
    pub async fn metric(&self, series: &str) -> f64 {
        let prefix = format!("{series} ");
        self.metrics()
            .await
            .lines()
            .find_map(|line| line.strip_prefix(&prefix)?.parse().ok())
            .unwrap_or(0.0)
    }

    /// Cancels and waits for the service to stop; its result must be Ok.
    pub async fn stop(mut self) {
        self.stop.cancel();
        if let Some(running) = self.running.take() {
            running.wait().await.unwrap();
        }
    }
}

/// Status of a plain GET (e.g. orders' `/readyz`); `None` if it cannot be reached.
pub async fn get_status(url: &str) -> Option<u16> {
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let response = http
        .get(url)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .ok()?;
    Some(response.status().as_u16())
}

pub fn item(product_id: i64, quantity: i32, price: i64) -> OrderItem {
    OrderItem {
        product_id,
        quantity,
        price: Some(Money { money: price }),
    }
}

pub fn request(user_id: i64, items: Vec<OrderItem>) -> CreateOrderRequest {
    CreateOrderRequest { user_id, items }
}

/// GetOrder of an order that exists.
pub async fn get_order(
    client: &mut OrdersServiceClient<Channel>,
    order_id: i64,
) -> proto::v1::Order {
    client
        .get_order(proto::v1::GetOrderRequest { order_id })
        .await
        .unwrap()
        .into_inner()
        .order
        .unwrap()
}

/// CreateOrder under `key`: the order id and whether the answer was a replay
/// (response metadata `idempotent-replayed: true`, its only value).
pub async fn create_keyed(
    client: &mut OrdersServiceClient<Channel>,
    message: CreateOrderRequest,
    key: &str,
) -> Result<(i64, bool), tonic::Status> {
    let response = client.create_order(keyed(message, key)).await?;
    let replayed = match response
        .metadata()
        .get(crate::idempotency::REPLAYED_METADATA)
    {
        None => false,
        Some(value) => {
            assert_eq!(value, "true", "the only value of idempotent-replayed");
            true
        }
    };
    Ok((response.into_inner().order_id, replayed))
}

/// `message` with `key` as its `idempotency-key` metadata.
pub fn keyed(message: CreateOrderRequest, key: &str) -> tonic::Request<CreateOrderRequest> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert(crate::idempotency::METADATA_KEY, key.parse().unwrap());
    request
}

/// Rows in `orders`, `order_items` and `events`.
pub async fn row_counts(dsn: &str) -> (i64, i64, i64) {
    let [orders, items, events] =
        testkit::row_counts(dsn, ["orders", "order_items", "events"]).await;
    (orders, items, events)
}

/// Rows in `orders`, `events` and `idempotency_keys`.
pub async fn keyed_row_counts(dsn: &str) -> (i64, i64, i64) {
    let [orders, events, keys] =
        testkit::row_counts(dsn, ["orders", "events", "idempotency_keys"]).await;
    (orders, events, keys)
}

/// Asserts that racing creates under one key made one order: `ids`, the order ids
/// of the answers that were not refused, all name it, and the database holds that
/// order, its outbox row and its key, nothing more. The order's id.
pub async fn assert_one_keyed_order(dsn: &str, mut ids: Vec<i64>) -> i64 {
    assert!(!ids.is_empty());
    ids.dedup();
    assert_eq!(ids.len(), 1, "one order id for every answer: {ids:?}");
    assert_eq!(
        keyed_row_counts(dsn).await,
        (1, 1, 1),
        "one order, one outbox row"
    );
    ids[0]
}

/// The orders binary as a separate process (for kill -9 tests), on free loopback
/// ports and the given database, its relay pointed at a port nothing listens on (the
/// rows stay unsent).
pub struct OrdersProcess {
    pub process: testkit::ServiceProcess,
    /// `http://127.0.0.1:<grpc port>`.
    pub uri: String,
    /// `http://127.0.0.1:<health port>/readyz`.
    pub ready_url: String,
}

impl OrdersProcess {
    /// Spawns the binary and waits until `/readyz` answers 200.
    pub fn spawn(dsn: String) -> Self {
        let grpc_port = testkit::free_port();
        let health_port = testkit::free_port();
        let mut process = testkit::ServiceProcess::spawn(
            "orders",
            &[],
            &[
                ("ORDERS_PG_DSN", dsn),
                ("ORDERS_GRPC_ADDR", format!("127.0.0.1:{grpc_port}")),
                ("ORDERS_HEALTH_ADDR", format!("127.0.0.1:{health_port}")),
                (
                    "KAFKA_BROKERS",
                    format!("127.0.0.1:{}", testkit::free_port()),
                ),
            ],
        );
        let ready_url = format!("http://127.0.0.1:{health_port}/readyz");
        testkit::wait_http_ok(&ready_url, DEADLINE);
        process.assert_running();
        Self {
            process,
            uri: format!("http://127.0.0.1:{grpc_port}"),
            ready_url,
        }
    }
}

/// Test certificates for orders' gRPC over TLS: orders' CA and its server certificate
/// (for `localhost` and `127.0.0.1`), and the CA of its clients with one client
/// certificate (the gateway's).
pub struct TlsFiles {
    pub orders_ca: TestCa,
    pub orders: CertFiles,
    pub clients_ca: TestCa,
    pub gateway: CertFiles,
}

impl TlsFiles {
    pub fn new() -> Self {
        let orders_ca = TestCa::new("orders");
        let server = orders_ca.server(&["localhost", "127.0.0.1"]);
        let orders = orders_ca.issue_files("orders", &server);
        let clients_ca = TestCa::new("gateways");
        let gateway = clients_ca.issue_files("gateway", &clients_ca.client("gateway"));
        Self {
            orders_ca,
            orders,
            clients_ca,
            gateway,
        }
    }

    /// orders' test settings on `dsn` serving gRPC over TLS, and requiring client
    /// certificates of the clients' CA when `mutual`.
    pub fn orders_config(&self, dsn: String, mutual: bool) -> crate::Config {
        crate::Config {
            orders_grpc_tls_cert: Some(self.orders.cert.clone()),
            orders_grpc_tls_key: Some(self.orders.key.clone()),
            orders_grpc_client_ca: mutual.then(|| self.clients_ca.ca_file()),
            ..config(dsn)
        }
    }
}

impl Default for TlsFiles {
    fn default() -> Self {
        Self::new()
    }
}
