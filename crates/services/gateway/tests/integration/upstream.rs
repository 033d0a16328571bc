//! The gateway when orders is down or too slow: 503, 504, `/readyz` 503, never a hang.

use std::time::Duration;

use crate::common::{Gateway, gateway_config};
use serde_json::json;
use testkit::{free_port, runtime};

const ORDER: &str = r#"{"user_id": 1, "items": [{"product_id": 1, "quantity": 1, "price": 1}]}"#;

#[test]
fn orders_unreachable_is_503_and_not_ready() {
    runtime().block_on(async {
        // Both accepted forms of ORDERS_GRPC_ADDR.
        let port = free_port();
        for orders in [
            format!("127.0.0.1:{port}"),
            format!("http://127.0.0.1:{port}"),
        ] {
            let gateway = Gateway::start(gateway_config(&orders, Duration::from_secs(5))).await;
            let message = "orders service unavailable, retry later";
            gateway
                .assert_order_routes_error(ORDER, 503, "Unavailable", message)
                .await;
            // Request mistakes are still the client's: 400, without asking orders.
            gateway.post("/orders", "{").await.assert_error_containing(
                400,
                "InvalidArgument",
                "EOF while parsing",
            );

            let healthz = gateway.get("/healthz").await;
            assert_eq!(
                (healthz.status, healthz.body),
                (200, json!({"status": "ok"})),
                "alive even without orders"
            );
            // The Go gateway's 503 (`error`, `code`), with `status` and `checks` as detail.
            let readyz = gateway.get("/readyz").await;
            let reason = readyz.body["checks"]["orders"].as_str().unwrap_or_default();
            assert!(reason.contains("Unavailable"), "{readyz:?}");
            assert_eq!(
                (readyz.status, &readyz.body),
                (
                    503,
                    &json!({"error": "orders service is not ready", "code": "ORDERS_UNAVAILABLE",
                            "status": "not ready", "checks": {"orders": reason}})
                )
            );
        }
    });
}

/// Accepts connections and never answers: an orders that hangs.
async fn silent_server() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    addr
}

#[test]
fn orders_too_slow_is_504_after_the_configured_timeout() {
    runtime().block_on(async {
        let orders = silent_server().await;
        let gateway = Gateway::start(gateway_config(
            &orders.to_string(),
            Duration::from_millis(300),
        ))
        .await;
        let message = "orders service did not answer within 300ms";
        gateway
            .assert_order_routes_error(ORDER, 504, "DeadlineExceeded", message)
            .await;
        let readyz = gateway.get("/readyz").await;
        assert_eq!(
            (readyz.status, readyz.body),
            (
                503,
                json!({"error": "orders service is not ready", "code": "ORDERS_UNAVAILABLE",
                       "status": "not ready",
                       "checks": {"orders": "orders health check got no answer within 300ms"}})
            )
        );
        let metrics = gateway.text("/metrics").await;
        assert!(
            metrics.contains("gateway_http_responses_5xx_total 3"),
            "{metrics}"
        );
    });
}
