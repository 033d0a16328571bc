//! Starting orders and the gateway in-process for a test, and talking HTTP to it.
#![allow(dead_code, clippy::unwrap_used)]

use std::{net::SocketAddr, time::Duration};

use proto::v1::orders_service_client::OrdersServiceClient;
use serde_json::Value;
use settings::{BrokerList, GoDuration};
use tokio_util::sync::{CancellationToken, DropGuard};
use tonic::transport::Channel;

/// A deadline for things that normally take milliseconds, not a timing assert.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// Orders' settings for a test: loopback port-0 listeners, the given database, a
/// broker address nothing listens on (the relay retries quietly; rows stay unsent).
pub fn orders_config(dsn: String) -> orders::Config {
    orders::Config {
        orders_pg_dsn: dsn,
        orders_grpc_addr: "127.0.0.1:0".parse().unwrap(),
        orders_health_addr: "127.0.0.1:0".parse().unwrap(),
        orders_db_pool_size: 4,
        kafka_brokers: BrokerList::single("127.0.0.1", 1),
        ..orders::Config::default()
    }
}

/// The gateway's settings for a test: port 0, orders at `orders` (`host:port` or URI).
pub fn gateway_config(orders: &str, timeout: Duration) -> gateway::Config {
    gateway::Config {
        gateway_http_addr: "127.0.0.1:0".parse().unwrap(),
        orders_grpc_addr: orders.parse().unwrap(),
        gateway_orders_timeout: GoDuration(timeout),
        ..gateway::Config::default()
    }
}

/// A running orders; stops when dropped.
pub struct Orders {
    pub grpc_addr: SocketAddr,
    pub health_addr: SocketAddr,
    _stop: DropGuard,
}

impl Orders {
    pub async fn start(config: orders::Config) -> Self {
        let stop = CancellationToken::new();
        let running = orders::start(config, stop.clone()).await.unwrap();
        Self {
            grpc_addr: running.grpc_addr,
            health_addr: running.health_addr,
            _stop: stop.drop_guard(),
        }
    }

    pub async fn client(&self) -> OrdersServiceClient<Channel> {
        OrdersServiceClient::connect(format!("http://{}", self.grpc_addr))
            .await
            .unwrap()
    }

    /// orders' own operations endpoint, e.g. `/readyz`.
    pub fn ops_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.health_addr)
    }
}

/// A running gateway; stops when dropped.
pub struct Gateway {
    pub addr: SocketAddr,
    http: reqwest::Client,
    _stop: DropGuard,
}

/// An HTTP answer: status, JSON body (`Value::Null` if the body is not JSON) and the
/// `Allow` header, if any.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub allow: Option<String>,
}

impl Answer {
    /// Asserts an error answer: status, `code`, and the exact `error` message.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str, message: &str) {
        assert_eq!(
            (
                self.status,
                self.body["code"].as_str(),
                self.body["error"].as_str()
            ),
            (status, Some(code), Some(message)),
            "{self:?}"
        );
        assert_eq!(self.body.as_object().map(|o| o.len()), Some(2), "{self:?}");
    }

    /// As [`Answer::assert_error`], with the message only required to contain `part`.
    #[track_caller]
    pub fn assert_error_containing(&self, status: u16, code: &str, part: &str) {
        assert_eq!(
            (self.status, self.body["code"].as_str()),
            (status, Some(code)),
            "{self:?}"
        );
        let message = self.body["error"].as_str().unwrap_or_default();
        assert!(message.contains(part), "{part:?} not in {self:?}");
        assert_eq!(self.body.as_object().map(|o| o.len()), Some(2), "{self:?}");
    }
}

impl Gateway {
    pub async fn start(config: gateway::Config) -> Self {
        let stop = CancellationToken::new();
        let running = gateway::start(config, stop.clone()).await.unwrap();
        Self {
            addr: running.http_addr,
            http: reqwest::Client::builder().no_proxy().build().unwrap(),
            _stop: stop.drop_guard(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn send(&self, method: &str, path: &str, body: Option<Vec<u8>>) -> Answer {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self.http.request(method, self.url(path));
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let allow = response
            .headers()
            .get("allow")
            .map(|value| value.to_str().unwrap().to_owned());
        let bytes = response.bytes().await.unwrap();
        Answer {
            status,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            allow,
        }
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.send("GET", path, None).await
    }

    pub async fn post(&self, path: &str, body: &str) -> Answer {
        self.send("POST", path, Some(body.as_bytes().to_vec()))
            .await
    }

    /// Asserts the same error answer from both order routes: `POST /orders` with
    /// `order`, then `GET /orders/1`.
    pub async fn assert_order_routes_error(
        &self,
        order: &str,
        status: u16,
        code: &str,
        message: &str,
    ) {
        self.post("/orders", order)
            .await
            .assert_error(status, code, message);
        self.get("/orders/1")
            .await
            .assert_error(status, code, message);
    }

    pub async fn text(&self, path: &str) -> String {
        self.http
            .get(self.url(path))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
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

/// Rows in `orders`, `order_items` and `events`.
pub async fn row_counts(dsn: &str) -> (i64, i64, i64) {
    let [orders, items, events] =
        testkit::row_counts(dsn, ["orders", "order_items", "events"]).await;
    (orders, items, events)
}

/// A ready orders on `db` and a gateway in front of it (5 s timeout).
pub async fn orders_and_gateway(db: &testkit::TestDatabase) -> (Orders, Gateway) {
    let orders = Orders::start(orders_config(db.dsn())).await;
    wait_orders_ready(&orders).await;
    let gateway = Gateway::start(gateway_config(
        &orders.grpc_addr.to_string(),
        Duration::from_secs(5),
    ))
    .await;
    (orders, gateway)
}

/// Waits until orders' `/readyz` is 200 (the database is migrated and reachable).
pub async fn wait_orders_ready(orders: &Orders) {
    let url = orders.ops_url("/readyz");
    testkit::wait_until_async(DEADLINE, "orders /readyz 200", || {
        let url = url.clone();
        async move { (get_status(&url).await == Some(200)).then_some(()) }
    })
    .await;
}
