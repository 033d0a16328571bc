//! Starting the gateway in-process for a test, and talking HTTP to it; orders in
//! front of it comes from orders' own harness (`orders::testing`).

use std::{net::SocketAddr, path::Path, time::Duration};

use orders::testing::{Orders, config as orders_config};
use reqwest::header::HeaderValue;
use serde_json::Value;
use settings::GoDuration;
use testkit::TestDatabase;
use tokio_util::sync::{CancellationToken, DropGuard};

/// The gateway's settings for a test: port 0, orders at `orders` (`host:port` or URI).
pub fn gateway_config(orders: &str, timeout: Duration) -> gateway::Config {
    gateway::Config {
        gateway_http_addr: "127.0.0.1:0".parse().unwrap(),
        orders_grpc_addr: orders.parse().unwrap(),
        gateway_orders_timeout: GoDuration(timeout),
        ..gateway::Config::default()
    }
}

/// A running gateway; stops when dropped.
pub struct Gateway {
    pub addr: SocketAddr,
    http: reqwest::Client,
    _stop: DropGuard,
}

/// An HTTP answer: status, JSON body (`Value::Null` if the body is not JSON) and the
/// `Allow` and `Idempotent-Replayed` headers, if any.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub allow: Option<String>,
    pub replayed: Option<String>,
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
    /// Starts the gateway in-process with `config`; it stops when dropped.
    pub async fn start(config: gateway::Config) -> Self {
        let stop = CancellationToken::new();
        let addr = gateway::start(config, stop.clone())
            .await
            .unwrap()
            .http_addr;
        Self {
            addr,
            http: reqwest::Client::builder().no_proxy().build().unwrap(),
            _stop: stop.drop_guard(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn send(&self, method: &str, path: &str, body: Option<Vec<u8>>) -> Answer {
        self.send_with_headers(method, path, body, &[]).await
    }

    /// [`Gateway::send`] with `headers` added (a name may come more than once).
    pub async fn send_with_headers(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
        headers: &[(&str, HeaderValue)],
    ) -> Answer {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self.http.request(method, self.url(path));
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body);
        }
        for (name, value) in headers {
            request = request.header(*name, value.clone());
        }
        let response = request.send().await.unwrap();
        let header = |name: &str| {
            let value = response.headers().get(name)?;
            Some(value.to_str().unwrap().to_owned())
        };
        let (allow, replayed) = (header("allow"), header("idempotent-replayed"));
        let status = response.status().as_u16();
        let bytes = response.bytes().await.unwrap();
        Answer {
            status,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            allow,
            replayed,
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

    /// `POST /orders` with `order`, which must be accepted: its `order_id`.
    pub async fn create_order(&self, order: &str) -> i64 {
        let created = self.post("/orders", order).await;
        assert_eq!(created.status, 200, "{created:?}");
        let order_id = created.body["order_id"].as_i64().unwrap();
        // The whole answer: the id and nothing else.
        assert_eq!(created.body, serde_json::json!({ "order_id": order_id }));
        order_id
    }

    /// `GET /orders/{order_id}`, which must be found: the body.
    pub async fn get_order(&self, order_id: i64) -> Value {
        let got = self.get(&format!("/orders/{order_id}")).await;
        assert_eq!(got.status, 200, "{got:?}");
        got.body
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

/// A ready orders on `db` and a gateway in front of it (5 s timeout).
pub async fn orders_and_gateway(db: &TestDatabase) -> (Orders, Gateway) {
    orders_and_gateway_configured(db, |config| config).await
}

/// [`orders_and_gateway`] with `configure` applied to orders' test settings first.
pub async fn orders_and_gateway_configured(
    db: &TestDatabase,
    configure: impl FnOnce(orders::Config) -> orders::Config,
) -> (Orders, Gateway) {
    let orders = Orders::start(configure(orders_config(db.dsn()))).await;
    orders.wait_ready().await;
    let gateway = Gateway::start(gateway_config(
        &orders.grpc_addr.to_string(),
        Duration::from_secs(5),
    ))
    .await;
    (orders, gateway)
}

/// Runs `test` on a fresh two-thread runtime against [`orders_and_gateway`] on a new
/// database (`TestDatabase::new(db_name)`); the database is dropped once the runtime
/// is gone.
pub fn with_gateway(db_name: &str, test: impl AsyncFnOnce(Orders, Gateway, &TestDatabase)) {
    with_gateway_configured(db_name, |config| config, test);
}

/// [`with_gateway`] with `configure` applied to orders' test settings first.
pub fn with_gateway_configured(
    db_name: &str,
    configure: impl FnOnce(orders::Config) -> orders::Config,
    test: impl AsyncFnOnce(Orders, Gateway, &TestDatabase),
) {
    let db = TestDatabase::new(db_name);
    testkit::runtime().block_on(async {
        let (orders, gateway) = orders_and_gateway_configured(&db, configure).await;
        test(orders, gateway, &db).await;
    });
}

/// Asserts that each `(variable, value, message part)` stops the real gateway binary
/// with a non-zero exit and a message naming the variable.
pub fn assert_settings_refused(cases: &[(&str, &str, &str)]) {
    let mut clear = gateway::config::ENV_VARS.to_vec();
    clear.push(gateway::config::CONFIG_FILE_VAR);
    for &case in cases {
        testkit::assert_setting_refused(
            Path::new(env!("CARGO_BIN_EXE_gateway")),
            &clear,
            // Should the value be accepted by mistake, do not take port 8080.
            &[("GATEWAY_HTTP_ADDR", "127.0.0.1:0")],
            case,
        );
    }
}
