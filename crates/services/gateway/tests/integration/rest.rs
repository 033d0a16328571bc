//! The REST contract through real HTTP against a real orders on real PostgreSQL.

use chrono::{DateTime, Utc};
use orders::testing::row_counts;
use serde_json::{Value, json};
use testkit::with_db;

use crate::common;

#[test]
fn create_then_get_over_http() {
    common::with_gateway("gateway", async |orders, gateway, db| {
        let order_id = gateway
            .create_order(
                r#"{"user_id": 7, "items": [{"product_id": 11, "quantity": 2, "price": 150},
                                           {"product_id": 12, "quantity": 1, "price": 99}]}"#,
            )
            .await;

        let got = gateway.get_order(order_id).await;
        let created_at = got["order"]["created_at"].as_str().unwrap().to_owned();
        assert_eq!(
            got,
            json!({"order": {
                "order_id": order_id, "user_id": 7, "status": "new",
                "items": [{"product_id": 11, "quantity": 2, "price": 150},
                          {"product_id": 12, "quantity": 1, "price": 99}],
                "total_amount": 399, "created_at": created_at, "updated_at": created_at}})
        );

        // The times are the stored ones in RFC 3339, whole seconds in UTC, as the Go
        // gateway prints them (`time.RFC3339`: the fraction dropped); the order and
        // its outbox row are in the database.
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
        assert_eq!(
            created_at,
            stored_at.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            "stored at {stored_at:?}"
        );
        let parsed = DateTime::parse_from_rfc3339(&created_at).unwrap();
        assert_eq!(parsed.timestamp(), stored_at.timestamp());
        assert_eq!(key, order_id.to_string());
        let payload: Value = serde_json::from_str(&payload).unwrap();
        assert_eq!(payload["order_id"], json!(order_id));
        assert_eq!(payload["total_amount"], json!(399));

        // The same order over gRPC.
        let order = orders::testing::get_order(&mut orders.client().await, order_id).await;
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
        let got = gateway.get_order(grpc_id).await;
        assert_eq!(got["order"]["total_amount"], json!(15));
        assert_eq!(
            got["order"]["items"],
            json!([{"product_id": 1, "quantity": 3, "price": 5}])
        );
    });
}

#[test]
fn keys_that_differ_only_in_case_are_accepted_as_the_go_gateway_accepts_them() {
    common::with_gateway("gateway", async |_orders, gateway, _db| {
        let order_id = gateway
            .create_order(
                r#"{"User_Id": 1, "Items": [{"Product_ID": 1, "quantity": 1, "PRICE": 5}]}"#,
            )
            .await;
        let got = gateway.get_order(order_id).await;
        assert_eq!(
            (
                &got["order"]["user_id"],
                &got["order"]["items"],
                &got["order"]["total_amount"]
            ),
            (
                &json!(1),
                &json!([{"product_id": 1, "quantity": 1, "price": 5}]),
                &json!(5)
            )
        );
    });
}

const ITEM: &str = r#"{"product_id": 1, "quantity": 1, "price": 1}"#;

#[test]
fn bad_bodies_are_400_with_a_message_and_store_nothing() {
    common::with_gateway("gateway", async |_orders, gateway, db| {
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
            // a second key for a field, also when it differs only in case (Go would
            // keep the last one; the platform refuses to guess)
            (
                format!(r#"{{"user_id": 1, "User_ID": 2, "items": [{ITEM}]}}"#),
                "invalid request body: duplicate field `user_id` at line 1 column 24",
            ),
            (
                r#"{"user_id": 1, "items": [{"product_id": 1, "PRODUCT_ID": 2, "quantity": 1, "price": 1}]}"#.into(),
                "invalid request body: duplicate field `product_id` at line 1 column 55",
            ),
            (
                format!(r#"{{"user_id": 1, "items": [{ITEM}], "items": [{ITEM}]}}"#),
                "invalid request body: duplicate field `items` at line 1 column 79",
            ),
            // a key that matches no field even ignoring case
            (
                r#"{"user_Id": 1, "items": [{"product_id": 1, "quantity": 1, "price": 1, "Colour": 2}]}"#.into(),
                "invalid request body: unknown field `Colour`, expected one of `product_id`, `quantity`, `price` at line 1 column 78",
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
            (
                format!(r#"{{"user_id": 0, "items": [{ITEM}]}}"#),
                "user_id must be positive, got 0",
            ),
            (
                r#"{"user_id": 1, "items": []}"#.to_owned(),
                "items must not be empty",
            ),
            (
                r#"{"user_id": 1, "items": [{"product_id": 0, "quantity": 1, "price": 1}]}"#
                    .to_owned(),
                "items[0].product_id must be positive, got 0",
            ),
            (
                r#"{"user_id": 1, "items": [{"product_id": 1, "quantity": 0, "price": 1}]}"#
                    .to_owned(),
                "items[0].quantity must be at least 1, got 0",
            ),
            (
                r#"{"user_id": 1, "items": [{"product_id": 1, "quantity": 1, "price": -1}]}"#
                    .to_owned(),
                "items[0].price must be positive, got -1",
            ),
            // The Go orders service's rule: a price of 0 is refused too.
            (
                format!(
                    r#"{{"user_id": 1, "items": [{ITEM}, {{"product_id": 2, "quantity": 1, "price": 0}}]}}"#
                ),
                "items[1].price must be positive, got 0",
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
    common::with_gateway("gateway", async |_orders, gateway, _db| {
        for id in ["abc", "0", "-1", "1.5", "99999999999999999999", "1e3"] {
            gateway.get(&format!("/orders/{id}")).await.assert_error(
                400,
                "InvalidArgument",
                &format!("order id must be a positive integer, got \"{id}\""),
            );
        }
        // An empty id is a bad id too, as the Go gateway answers (not 405).
        gateway.get("/orders/").await.assert_error(
            400,
            "InvalidArgument",
            "order id must be a positive integer, got \"\"",
        );
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
            ("DELETE", "/orders/", "GET, POST"),
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
        // The Go gateway's bodies; `checks` is the detail it did not have.
        let healthz = gateway.get("/healthz").await;
        assert_eq!(
            (healthz.status, healthz.body),
            (200, json!({"status": "ok"}))
        );
        let readyz = gateway.get("/readyz").await;
        assert_eq!(
            (readyz.status, readyz.body),
            (200, json!({"status": "ready", "checks": {"orders": "ok"}}))
        );

        let metrics = gateway.text("/metrics").await;
        for line in [
            "gateway_http_responses_2xx_total 2",
            "gateway_http_responses_4xx_total 28",
            // Every request above under /orders: 8 bad or unknown ids, 8 other methods, 1 unknown path.
            "gateway_order_request_duration_seconds_count 17",
        ] {
            assert!(metrics.contains(line), "{line:?} not in\n{metrics}");
        }
    });
}

/// The Go gateway's metric families, as its dashboards and alerts query them (the
/// contract: names, help, types, label names and values; the Go source's buckets are
/// client_golang's defaults), counting what the Go gateway's middleware counts: the
/// requests its mux hands to the `/orders`, `/orders/` and `/swagger/` handlers,
/// whatever the answer (4xx, 405, 301 too). Probes, `/metrics`, unknown paths and the
/// paths Go's mux redirects are not counted.
#[test]
fn go_metric_families_count_what_the_go_gateway_counts() {
    common::with_gateway("gateway", async |_orders, gateway, _db| {
        let order = format!(r#"{{"user_id": 3, "items": [{ITEM}]}}"#);
        let order_id = gateway.create_order(&order).await;
        gateway.create_order(&order).await;
        let free = r#"{"user_id": 3, "items": [{"product_id": 1, "quantity": 1, "price": 0}]}"#;
        assert_eq!(gateway.post("/orders", free).await.status, 400);
        gateway.get_order(order_id).await;
        assert_eq!(gateway.get("/orders/").await.status, 400);
        assert_eq!(gateway.send("DELETE", "/orders/1", None).await.status, 405);
        assert_eq!(gateway.send("BREW", "/orders/1", None).await.status, 405);
        // Under Go's "/orders/" subtree: counted as /orders/{id} whatever we answer.
        assert_eq!(gateway.get("/orders/1/items").await.status, 404);
        // Go's "/swagger/" subtree.
        let no_redirects = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let swagger = |path: &str| no_redirects.get(gateway.url(path)).send();
        assert_eq!(swagger("/swagger/index.html").await.unwrap().status(), 200);
        assert_eq!(swagger("/swagger/doc.json").await.unwrap().status(), 200);
        assert_eq!(swagger("/swagger/").await.unwrap().status(), 301);

        // Not counted: no wrapped handler answers these in the Go gateway.
        assert_eq!(gateway.get("/no/such/path").await.status, 404);
        assert_eq!(gateway.get("/healthz").await.status, 200);
        assert_eq!(gateway.get("/readyz").await.status, 200);
        assert_eq!(gateway.send("POST", "/healthz", None).await.status, 405);
        assert_eq!(gateway.get("/openapi.yaml").await.status, 200);
        gateway.text("/metrics").await;
        // Redirected by Go's mux before any handler (to /swagger/, to the clean path).
        assert_eq!(swagger("/swagger").await.unwrap().status(), 301);
        for path in [
            "//orders/1",
            "/orders/./1",
            "/orders/1/..",
            "/swagger/../orders",
        ] {
            get_raw(gateway.addr, path).await;
        }

        let text = gateway.text("/metrics").await;
        let family = |name: &str| -> Vec<&str> {
            text.lines()
                .filter(|line| {
                    line.strip_prefix("# HELP ")
                        .or_else(|| line.strip_prefix("# TYPE "))
                        .unwrap_or(line)
                        .starts_with(name)
                })
                .collect()
        };
        assert_eq!(
            family("opp_http_requests_total"),
            [
                "# HELP opp_http_requests_total Total HTTP requests",
                "# TYPE opp_http_requests_total counter",
                r#"opp_http_requests_total{service="gateway",method="DELETE",route="/orders/{id}",status="405"} 1"#,
                r#"opp_http_requests_total{service="gateway",method="GET",route="/orders/{id}",status="200"} 1"#,
                r#"opp_http_requests_total{service="gateway",method="GET",route="/orders/{id}",status="400"} 1"#,
                r#"opp_http_requests_total{service="gateway",method="GET",route="/orders/{id}",status="404"} 1"#,
                r#"opp_http_requests_total{service="gateway",method="GET",route="/swagger/*",status="200"} 2"#,
                r#"opp_http_requests_total{service="gateway",method="GET",route="/swagger/*",status="301"} 1"#,
                r#"opp_http_requests_total{service="gateway",method="OTHER",route="/orders/{id}",status="405"} 1"#,
                r#"opp_http_requests_total{service="gateway",method="POST",route="/orders",status="200"} 2"#,
                r#"opp_http_requests_total{service="gateway",method="POST",route="/orders",status="400"} 1"#,
            ],
            "{text}"
        );

        let durations = family("opp_http_request_duration_seconds");
        assert_eq!(
            durations[..2],
            [
                "# HELP opp_http_request_duration_seconds HTTP request latency",
                "# TYPE opp_http_request_duration_seconds histogram",
            ],
            "{text}"
        );
        // One series per service, method and route (not status), with the Go
        // client's default buckets.
        let post = r#"service="gateway",method="POST",route="/orders""#;
        let buckets: Vec<&str> = durations
            .iter()
            .filter_map(|line| {
                line.strip_prefix(&format!(
                    "opp_http_request_duration_seconds_bucket{{{post},le=\""
                ))
            })
            .filter_map(|rest| rest.split_once('"').map(|(le, _)| le))
            .collect();
        assert_eq!(
            buckets,
            [
                "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10",
                "+Inf"
            ]
        );
        let counts: Vec<&str> = durations
            .iter()
            .filter(|line| line.starts_with("opp_http_request_duration_seconds_count"))
            .copied()
            .collect();
        assert_eq!(
            counts,
            [
                r#"opp_http_request_duration_seconds_count{service="gateway",method="DELETE",route="/orders/{id}"} 1"#,
                r#"opp_http_request_duration_seconds_count{service="gateway",method="GET",route="/orders/{id}"} 3"#,
                r#"opp_http_request_duration_seconds_count{service="gateway",method="GET",route="/swagger/*"} 3"#,
                r#"opp_http_request_duration_seconds_count{service="gateway",method="OTHER",route="/orders/{id}"} 1"#,
                r#"opp_http_request_duration_seconds_count{service="gateway",method="POST",route="/orders"} 3"#,
            ],
            "{text}"
        );
        assert!(
            durations.contains(&&*format!(
                r#"opp_http_request_duration_seconds_bucket{{{post},le="+Inf"}} 3"#
            )),
            "{text}"
        );
        assert!(
            durations.iter().any(|line| line
                .starts_with(&format!("opp_http_request_duration_seconds_sum{{{post}}} "))),
            "{text}"
        );

        // Today's metrics still count every answered request, beside the Go ones
        // (the first /metrics scrape included, this one is not answered yet).
        let line = "gateway_http_requests_total 22";
        assert!(text.lines().any(|l| l == line), "{line:?} not in\n{text}");
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
    common::with_gateway("gateway", async |_orders, gateway, db| {
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
/// `GET path` sent as written (an HTTP client would normalise `.` segments): the
/// status.
async fn get_raw(addr: std::net::SocketAddr, path: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nhost: gateway\r\nconnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let response = String::from_utf8_lossy(&response);
    response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in {response:?}"))
}

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
