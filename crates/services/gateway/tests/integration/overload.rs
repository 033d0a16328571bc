//! Overload: past `GATEWAY_MAX_IN_FLIGHT` requests are answered 503 with
//! `Retry-After` at once, the admitted ones complete and their orders are stored,
//! `/healthz` answers throughout; slow clients are disconnected (bad settings stopping
//! the binary are in `config.rs`).
//!
//! orders is made slow without timing: a transaction of the test holds `LOCK TABLE
//! orders IN SHARE MODE`, so every order insert waits until the test lets it go.

use std::time::{Duration, Instant};

use crate::common::{Gateway, gateway_config};
use orders::testing::{DEADLINE, Orders, config as orders_config};
use serde_json::Value;
use settings::GoDuration;
use testkit::{TestDatabase, runtime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ORDER: &str = r#"{"user_id": 3, "items": [{"product_id": 1, "quantity": 1, "price": 10}]}"#;

/// One answer of the burst: status, `Retry-After`, JSON body.
type Answer = (u16, Option<String>, Value);

#[test]
fn a_burst_past_the_bound_is_shed_at_once_and_admitted_orders_complete() {
    const BOUND: u32 = 4;
    const BURST: usize = 40;
    let db = TestDatabase::new("gateway");
    runtime().block_on(async {
        // Room for the readiness probe beside the BOUND blocked inserts.
        let orders = Orders::start(orders::Config {
            orders_db_pool_size: 8,
            ..orders_config(db.dsn())
        })
        .await;
        orders.wait_ready().await;
        let gateway = Gateway::start(gateway::Config {
            gateway_max_in_flight: BOUND,
            ..gateway_config(&orders.grpc_addr.to_string(), DEADLINE)
        })
        .await;
        assert_eq!(gateway.post("/orders", ORDER).await.status, 200);

        let lock = tokio::task::block_in_place(|| testkit::HeldLock::take(&db.dsn(), "LOCK TABLE orders IN SHARE MODE"));
        let (answers_tx, mut answers) = tokio::sync::mpsc::unbounded_channel::<Answer>();
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        for _ in 0..BURST {
            let (http, url, answers_tx) = (http.clone(), gateway.url("/orders"), answers_tx.clone());
            tokio::spawn(async move {
                let response = http
                    .post(url)
                    .header("content-type", "application/json")
                    .body(ORDER)
                    .send()
                    .await
                    .unwrap();
                let status = response.status().as_u16();
                let retry_after = response
                    .headers()
                    .get("retry-after")
                    .map(|value| value.to_str().unwrap().to_owned());
                let body = response.json().await.unwrap_or(Value::Null);
                let _ = answers_tx.send((status, retry_after, body));
            });
        }

        // BOUND requests wait on the lock; all the others are answered meanwhile.
        let shed_count = BURST - BOUND as usize;
        for _ in 0..shed_count {
            let (status, retry_after, body) = next_answer(&mut answers).await;
            assert_eq!(status, 503, "{body}");
            assert_eq!(retry_after.as_deref(), Some("1"));
            assert_eq!(
                body,
                serde_json::json!({
                    "error": "gateway overloaded: 4 requests in flight, retry later",
                    "code": "Unavailable"
                })
            );
        }
        // Still overloaded: the probes answer, the metrics count the shed requests.
        assert_eq!(gateway.get("/healthz").await.status, 200);
        assert_eq!(gateway.get("/readyz").await.status, 200);
        let metrics = gateway.text("/metrics").await;
        for line in [
            format!("gateway_requests_shed_total {shed_count}"),
            format!(
                r#"opp_http_requests_total{{service="gateway",method="POST",route="/orders",status="503"}} {shed_count}"#
            ),
            format!("gateway_requests_in_flight {BOUND}"),
        ] {
            assert!(metrics.lines().any(|l| l == line), "{line:?} not in\n{metrics}");
        }
        let shed = gateway.get("/orders/1").await;
        shed.assert_error_containing(503, "Unavailable", "gateway overloaded");

        lock.release();
        let mut accepted = Vec::new();
        for _ in 0..BOUND {
            let (status, _, body) = next_answer(&mut answers).await;
            assert_eq!(status, 200, "{body}");
            accepted.push(body["order_id"].as_i64().unwrap());
        }
        accepted.sort_unstable();
        // Every accepted order is stored (besides the one placed before the burst),
        // and nothing else.
        let stored: Vec<i64> = testkit::with_db(&db.dsn(), |client| {
            client
                .query("SELECT order_id FROM orders ORDER BY order_id", &[])
                .unwrap()
                .iter()
                .map(|row| row.get(0))
                .collect()
        })
        .await;
        assert_eq!(stored.len(), accepted.len() + 1, "{stored:?} {accepted:?}");
        assert_eq!(&stored[1..], &accepted[..]);
        // The bound is free again.
        assert_eq!(gateway.post("/orders", ORDER).await.status, 200);
    });
}

/// The next answer of the burst, within `DEADLINE`.
async fn next_answer(answers: &mut tokio::sync::mpsc::UnboundedReceiver<Answer>) -> Answer {
    tokio::time::timeout(DEADLINE, answers.recv())
        .await
        .unwrap()
        .unwrap()
}

/// Reads until the server closes the connection (EOF or reset), or `DEADLINE`.
async fn closed_by_server(stream: &mut tokio::net::TcpStream) -> bool {
    let mut buf = [0u8; 4096];
    let until = Instant::now() + DEADLINE;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Err(_elapsed) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

#[test]
fn slow_and_idle_clients_are_disconnected() {
    runtime().block_on(async {
        // No orders needed: /healthz and a half-sent request never reach it.
        let gateway = Gateway::start(gateway::Config {
            gateway_read_header_timeout: GoDuration(Duration::from_secs(1)),
            gateway_idle_timeout: GoDuration(Duration::from_secs(1)),
            ..gateway_config("127.0.0.1:1", DEADLINE)
        })
        .await;

        // Half a request head, then nothing: closed (read header timeout).
        let mut slow = tokio::net::TcpStream::connect(gateway.addr).await.unwrap();
        slow.write_all(b"POST /orders HTTP/1.1\r\nHost: gateway\r\nContent-Ty")
            .await
            .unwrap();
        assert!(
            closed_by_server(&mut slow).await,
            "half a header: still open"
        );

        // Connected, nothing sent: closed too.
        let mut silent = tokio::net::TcpStream::connect(gateway.addr).await.unwrap();
        assert!(closed_by_server(&mut silent).await, "silent: still open");

        // A complete request is answered; the kept-alive connection is then closed
        // once idle (idle timeout).
        let mut idle = tokio::net::TcpStream::connect(gateway.addr).await.unwrap();
        idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: gateway\r\n\r\n")
            .await
            .unwrap();
        let mut answer = Vec::new();
        let mut buf = [0u8; 1024];
        while !answer.ends_with(br#"{"status":"ok"}"#) {
            let read = tokio::time::timeout(DEADLINE, idle.read(&mut buf))
                .await
                .unwrap()
                .unwrap();
            assert_ne!(read, 0, "closed before answering: {answer:?}");
            answer.extend_from_slice(&buf[..read]);
        }
        assert!(answer.starts_with(b"HTTP/1.1 200 OK\r\n"), "{answer:?}");
        assert!(closed_by_server(&mut idle).await, "idle: still open");

        // The server itself still serves.
        assert_eq!(gateway.get("/healthz").await.status, 200);
    });
}

#[test]
fn orders_overloaded_message_is_the_one_the_gateway_passes_on() {
    assert_eq!(
        gateway::errors::OVERLOADED_PREFIX,
        orders::OVERLOADED_PREFIX
    );
}
