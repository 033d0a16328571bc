//! The REST contract through real HTTP against a real orders on real PostgreSQL.
#![allow(clippy::unwrap_used)]

mod common;

use chrono::{DateTime, Utc};
use common::row_counts;
use serde_json::{Value, json};
use testkit::{TestDatabase, runtime, with_db};

#[test]
fn create_then_get_over_http() {
    let db = TestDatabase::new("gateway");
    runtime().block_on(async {
        let (orders, gateway) = common::orders_and_gateway(&db).await;
        let created = gateway
            .post(
                "/orders",
                r#"{"user_id": 7, "items": [{"product_id": 11, "quantity": 2, "price": 150},
                                           {"product_id": 12, "quantity": 1, "price": 99}]}"#,
            )
            .await;
        assert_eq!(created.status, 200, "{created:?}");
        let order_id = created.body["order_id"].as_i64().unwrap();
        assert_eq!(created.body, json!({ "order_id": order_id }));

        let got = gateway.get(&format!("/orders/{order_id}")).await;
        assert_eq!(got.status, 200, "{got:?}");
        let created_at = got.body["order"]["created_at"].as_str().unwrap().to_owned();
        assert_eq!(
            got.body,
            json!({"order": {
                "order_id": order_id, "user_id": 7, "status": "new",
                "items": [{"product_id": 11, "quantity": 2, "price": 150},
                          {"product_id": 12, "quantity": 1, "price": 99}],
                "total_amount": 399, "created_at": created_at, "updated_at": created_at}})
        );

        // The times are RFC 3339 and are the stored ones; the order and its outbox
        // row are in the database.
        let (stored_at, key, payload) = with_db(&db.dsn(), move |client| {
            let stored_at: DateTime<Utc> = client
                .query_one(
                    "SELECT created_at FROM orders WHERE order_id = $1",
                    &[&order_id],
                )
                .unwrap()
                .get(0);
            let event = client
                .query_one("SELECT message_key, payload::text FROM events", &[])
                .unwrap();
            (
                stored_at,
                event.get::<_, String>(0),
                event.get::<_, String>(1),
            )
        })
        .await;
        let parsed = DateTime::parse_from_rfc3339(&created_at).unwrap();
        assert_eq!(parsed.with_timezone(&Utc), stored_at);
        assert_eq!(key, order_id.to_string());
        let payload: Value = serde_json::from_str(&payload).unwrap();
        assert_eq!(payload["order_id"], json!(order_id));
        assert_eq!(payload["total_amount"], json!(399));

        // The same order over gRPC.
        let order = orders
            .client()
            .await
            .get_order(proto::v1::GetOrderRequest { order_id })
            .await
            .unwrap()
            .into_inner()
            .order
            .unwrap();
        assert_eq!(order.user_id, 7);
        assert_eq!(order.total_amount.unwrap().money, 399);

        // An order created over gRPC reads back over HTTP.
        let grpc_id = orders
            .client()
            .await
            .create_order(proto::v1::CreateOrderRequest {
                user_id: 9,
                items: vec![proto::v1::OrderItem {
                    product_id: 1,
                    quantity: 3,
                    price: Some(proto::v1::Money { money: 5 }),
                }],
            })
            .await
            .unwrap()
            .into_inner()
            .order_id;
        let got = gateway.get(&format!("/orders/{grpc_id}")).await;
        assert_eq!(got.status, 200);
        assert_eq!(got.body["order"]["total_amount"], json!(15));
        assert_eq!(
            got.body["order"]["items"],
            json!([{"product_id": 1, "quantity": 3, "price": 5}])
        );
    });
}

const ITEM: &str = r#"{"product_id": 1, "quantity": 1, "price": 1}"#;

#[test]
fn bad_bodies_are_400_with_a_message_and_store_nothing() {
    let db = TestDatabase::new("gateway");
    runtime().block_on(async {
        let (_orders, gateway) = common::orders_and_gateway(&db).await;
        let shape_errors: Vec<(String, &str)> = vec![
            // malformed
            (
                r#"{"user_id": 1,"#.into(),
                "invalid request body: EOF while parsing a value at line 1 column 14",
            ),
            ("not json".into(), "invalid request body: expected ident at line 1 column 2"),
            (
                String::new(),
                "invalid request body: EOF while parsing a value at line 1 column 0",
            ),
            // unknown fields, at the top and in an item
            (
                format!(r#"{{"user_id": 1, "items": [{ITEM}], "coupon": "x"}}"#),
                "invalid request body: unknown field `coupon`, expected `user_id` or `items` at line 1 column 80",
            ),
            (
                r#"{"user_id": 1, "items": [{"product_id": 1, "quantity": 1, "price": 1, "color": 2}]}"#.into(),
                "invalid request body: unknown field `color`, expected one of `product_id`, `quantity`, `price` at line 1 column 77",
            ),
            // trailing data
            (
                format!(r#"{{"user_id": 1, "items": [{ITEM}]}} {{}}"#),
                "invalid request body: trailing characters at line 1 column 73",
            ),
            // wrong types
            (
                format!(r#"{{"user_id": "1", "items": [{ITEM}]}}"#),
                "invalid request body: invalid type: string \"1\", expected i64 at line 1 column 15",
            ),
            (
                r#"{"user_id": 1, "items": {}}"#.into(),
                "invalid request body: invalid type: map, expected a sequence at line 1 column 24",
            ),
            (
                r#"{"user_id": 1, "items": [{"product_id": 1, "quantity": 1.5, "price": 1}]}"#.into(),
                "invalid request body: invalid type: floating point `1.5`, expected i32 at line 1 column 58",
            ),
            (
                r#"{"user_id": 1, "items": [{"product_id": 1, "quantity": 3000000000, "price": 1}]}"#.into(),
                "invalid request body: invalid value: integer `3000000000`, expected i32 at line 1 column 65",
            ),
            (
                r#"{"user_id": null, "items": []}"#.into(),
                "invalid request body: invalid type: null, expected i64 at line 1 column 16",
            ),
            (
                r#"{"user_id": 1, "items": [[1, 1, 1]]}"#.into(),
                "invalid request body: invalid type: sequence, expected a JSON object at line 1 column 25",
            ),
            ("[1, 2]".into(), "invalid request body: invalid type: sequence, expected a JSON object at line 1 column 0"),
            // missing fields
            (
                r#"{"user_id": 1}"#.into(),
                "invalid request body: missing field `items` at line 1 column 14",
            ),
            (
                r#"{"user_id": 1, "items": [{"product_id": 1, "quantity": 1}]}"#.into(),
                "invalid request body: missing field `price` at line 1 column 57",
            ),
        ];
        let mut wrong = Vec::new();
        for (body, message) in &shape_errors {
            let answer = gateway.post("/orders", body).await;
            let expected = json!({"error": message, "code": "InvalidArgument"});
            if (answer.status, &answer.body) != (400, &expected) {
                wrong.push(format!("{body}\n  got {answer:?}\n  expected {expected}"));
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));

        // Business rules: orders' INVALID_ARGUMENT message passes through.
        let many = vec![ITEM; 1001].join(",");
        let rule_errors = [
            (format!(r#"{{"user_id": 0, "items": [{ITEM}]}}"#), "user_id must be positive, got 0"),
            (r#"{"user_id": 1, "items": []}"#.to_owned(), "items must not be empty"),
            (
                r#"{"user_id": 1, "items": [{"product_id": 0, "quantity": 1, "price": 1}]}"#.to_owned(),
                "items[0].product_id must be positive, got 0",
            ),
            (
                r#"{"user_id": 1, "items": [{"product_id": 1, "quantity": 0, "price": 1}]}"#.to_owned(),
                "items[0].quantity must be at least 1, got 0",
            ),
            (
                r#"{"user_id": 1, "items": [{"product_id": 1, "quantity": 1, "price": -1}]}"#.to_owned(),
                "items[0].price must not be negative, got -1",
            ),
            (
                format!(r#"{{"user_id": 1, "items": [{many}]}}"#),
                "items: at most 1000 items per order, got 1001",
            ),
            (
                format!(
                    r#"{{"user_id": 1, "items": [{{"product_id": 1, "quantity": 1, "price": {}}}, {ITEM}]}}"#,
                    i64::MAX
                ),
                "total_amount overflows int64 at items[1] (quantity * price summed over the order)",
            ),
        ];
        for (body, message) in &rule_errors {
            gateway
                .post("/orders", body)
                .await
                .assert_error(400, "InvalidArgument", message);
        }
        assert_eq!(
            row_counts(&db.dsn()).await,
            (0, 0, 0),
            "no order, item or outbox row from a refused request"
        );
    });
}

#[test]
fn bad_ids_unknown_orders_paths_and_methods() {
    let db = TestDatabase::new("gateway");
    runtime().block_on(async {
        let (_orders, gateway) = common::orders_and_gateway(&db).await;
        for id in ["abc", "0", "-1", "1.5", "99999999999999999999", "1e3"] {
            gateway.get(&format!("/orders/{id}")).await.assert_error(
                400,
                "InvalidArgument",
                &format!("order id must be a positive integer, got \"{id}\""),
            );
        }
        gateway
            .get("/orders/424242")
            .await
            .assert_error(404, "NotFound", "order 424242 not found");

        for (method, path, allow) in [
            ("DELETE", "/orders/1", "GET"),
            ("PUT", "/orders/1", "GET"),
            ("POST", "/orders/1", "GET"),
            ("HEAD", "/orders/1", "GET"),
            ("GET", "/orders", "POST"),
            ("GET", "/orders/", "POST"),
            ("PATCH", "/orders", "POST"),
            ("POST", "/healthz", "GET"),
            ("DELETE", "/readyz", "GET"),
            ("PUT", "/metrics", "GET"),
            ("POST", "/openapi.yaml", "GET"),
            ("DELETE", "/orders/1/", "GET"),
            ("POST", "/healthz/", "GET"),
            ("PUT", "/metrics/", "GET"),
        ] {
            let answer = gateway.send(method, path, None).await;
            if method != "HEAD" {
                answer.assert_error(405, "Unimplemented", "method not allowed on this path");
            }
            assert_eq!(
                (answer.status, answer.allow.as_deref()),
                (405, Some(allow)),
                "{method} {path}"
            );
        }
        for method in ["GET", "DELETE"] {
            let answer = gateway.send(method, "/nope", None).await;
            answer.assert_error(404, "NotFound", "no such endpoint");
            assert_eq!(answer.allow, None);
        }
        for path in ["/", "/nope", "/orders/1/items", "/v1/orders"] {
            gateway
                .get(path)
                .await
                .assert_error(404, "NotFound", "no such endpoint");
        }
        let healthz = gateway.get("/healthz").await;
        assert_eq!(
            (healthz.status, healthz.body),
            (200, json!({"status": "alive"}))
        );
        let readyz = gateway.get("/readyz").await;
        assert_eq!(readyz.status, 200, "{readyz:?}");

        let metrics = gateway.text("/metrics").await;
        for line in [
            "gateway_http_responses_2xx_total 2",
            "gateway_http_responses_4xx_total 27",
            // Every request above under /orders: 7 bad or unknown ids, 8 other methods, 1 unknown path.
            "gateway_order_request_duration_seconds_count 16",
        ] {
            assert!(metrics.contains(line), "{line:?} not in\n{metrics}");
        }
    });
}

/// A valid order padded with spaces to exactly `len` bytes.
fn padded_order(len: usize) -> Vec<u8> {
    let mut body = format!(r#"{{"user_id": 1, "items": [{ITEM}]}}"#).into_bytes();
    body.resize(len, b' ');
    body
}

#[test]
fn bodies_over_one_mib_are_413() {
    let db = TestDatabase::new("gateway");
    runtime().block_on(async {
        let (_orders, gateway) = common::orders_and_gateway(&db).await;
        let limit = 1024 * 1024;
        let at_limit = gateway
            .send("POST", "/orders", Some(padded_order(limit)))
            .await;
        assert_eq!(
            at_limit.status, 200,
            "exactly 1 MiB is allowed: {at_limit:?}"
        );

        let message = "request body is larger than 1048576 bytes (1 MiB)";
        gateway
            .send("POST", "/orders", Some(padded_order(limit + 1)))
            .await
            .assert_error(413, "ResourceExhausted", message);
        gateway
            .send("POST", "/orders", Some(padded_order(8 * limit)))
            .await
            .assert_error(413, "ResourceExhausted", message);

        // Without a content-length (chunked), the limit applies as the body arrives.
        let (status, body) = post_chunked(gateway.addr, &padded_order(limit + 100)).await;
        assert_eq!(status, 413, "{body}");
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body, json!({"error": message, "code": "ResourceExhausted"}));
        assert_eq!(row_counts(&db.dsn()).await.0, 1);
    });
}

/// POST /orders with `transfer-encoding: chunked`: (status, body).
async fn post_chunked(addr: std::net::SocketAddr, body: &[u8]) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            b"POST /orders HTTP/1.1\r\nhost: gateway\r\ntransfer-encoding: chunked\r\n\
              content-type: application/json\r\nconnection: close\r\n\r\n",
        )
        .await
        .unwrap();
    for chunk in body.chunks(64 * 1024) {
        let head = format!("{:x}\r\n", chunk.len());
        // The server may answer before it has read everything: stop writing then.
        if stream.write_all(head.as_bytes()).await.is_err()
            || stream.write_all(chunk).await.is_err()
            || stream.write_all(b"\r\n").await.is_err()
        {
            break;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response).await;
    let response = String::from_utf8_lossy(&response).into_owned();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in {response:?}"));
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}
