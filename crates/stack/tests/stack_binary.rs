//! The README's "run it" command: the `stack` binary brings up the whole platform in
//! one process, an order placed over HTTP reaches Redis, and SIGTERM stops it with
//! exit status 0.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use testkit::{
    ServiceProcess, TestDatabase, free_port, http_request, unique_name, wait_http_ok, wait_until,
};

#[test]
fn stack_runs_the_platform_and_stops_cleanly_on_sigterm() {
    let orders_db = TestDatabase::new("stack_orders");
    let payments_db = TestDatabase::new("stack_payments");
    let prefix = format!("{}:", unique_name("stack"));
    let [
        broker,
        gateway,
        grpc,
        orders_health,
        payments_health,
        notifications_health,
    ] = [(); 6].map(|_| format!("127.0.0.1:{}", free_port()));
    let mut stack = ServiceProcess::spawn(
        "stack",
        &["--broker-listen", &broker],
        &[
            ("ORDERS_PG_DSN", orders_db.dsn()),
            ("PAYMENTS_PG_DSN", payments_db.dsn()),
            ("GATEWAY_HTTP_ADDR", gateway.clone()),
            // The Go listen form: the gateway must still find orders.
            (
                "ORDERS_GRPC_ADDR",
                format!(":{}", grpc.rsplit_once(':').unwrap().1),
            ),
            ("ORDERS_HEALTH_ADDR", orders_health.clone()),
            ("PAYMENTS_HEALTH_ADDR", payments_health.clone()),
            ("NOTIFICATIONS_HEALTH_ADDR", notifications_health.clone()),
            ("REDIS_KEY_PREFIX", prefix.clone()),
        ],
    );
    for health in [
        &orders_health,
        &payments_health,
        &notifications_health,
        &gateway,
    ] {
        wait_http_ok(&format!("http://{health}/readyz"), Duration::from_secs(60));
    }
    stack.assert_running();

    let (status, body) = http_request(
        "POST",
        &format!("http://{gateway}/orders"),
        Some(r#"{"user_id": 42, "items": [{"product_id": 1, "quantity": 2, "price": 1500}]}"#),
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");
    let order_id = serde_json::from_str::<serde_json::Value>(&body).unwrap()["order_id"]
        .as_i64()
        .unwrap();

    let mut redis = redis::Client::open(testkit::redis_url())
        .unwrap()
        .get_connection()
        .unwrap();
    let stored: String = wait_until(Duration::from_secs(60), "the notification in Redis", || {
        redis::cmd("GET")
            .arg(format!("{prefix}{order_id}"))
            .query::<Option<String>>(&mut redis)
            .unwrap()
    });
    let expected = if order_id % 2 == 0 {
        "succeeded"
    } else {
        "failed"
    };
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&stored).unwrap(),
        serde_json::json!({"order_id": order_id, "user_id": 42, "order_status": expected})
    );

    let status = stack.terminate(Duration::from_secs(30));
    assert!(
        status.success(),
        "stack exited with {status}\n{}",
        stack.log()
    );
    let _: () = redis::cmd("DEL")
        .arg(format!("{prefix}{order_id}"))
        .query(&mut redis)
        .unwrap();
}
