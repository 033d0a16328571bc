//! The README's "run it" command: the `stack` binary brings up the whole platform in
//! one process, an order placed over HTTP reaches Redis, and SIGTERM stops it with
//! exit status 0; with its embedded devbroker, and with `--external-broker` on
//! Apache Kafka 3.9.

use std::time::Duration;

use testkit::{
    BrokerKind, KafkaLine, ServiceProcess, TestBroker, TestDatabase, free_port, http_request,
    unique_name, wait_http_ok, wait_until,
};

#[test]
fn stack_runs_the_platform_and_stops_cleanly_on_sigterm() {
    let broker = format!("127.0.0.1:{}", free_port());
    run_stack(&["--broker-listen", &broker], Vec::new());
}

#[test]
fn stack_with_external_broker_runs_on_apache_kafka_3_9() {
    let kafka = TestBroker::start(BrokerKind::ApacheKafka(KafkaLine::V3_9));
    let env = vec![
        ("KAFKA_BROKERS", kafka.bootstrap()),
        ("KAFKA_TOPIC_ORDER", kafka.unique_topic("order-topic", 3)),
        ("KAFKA_TOPIC_STATUS", kafka.unique_topic("status-topic", 3)),
    ];
    run_stack(&["--external-broker"], env);
}

/// Runs `stack` with `args` and `env` (plus fresh databases, ports and a Redis key
/// prefix), places an order over HTTP, waits for its notification in Redis, then
/// stops `stack` with SIGTERM and expects exit status 0.
fn run_stack(args: &[&str], env: Vec<(&str, String)>) {
    let orders_db = TestDatabase::new("stack_orders");
    let payments_db = TestDatabase::new("stack_payments");
    let prefix = format!("{}:", unique_name("stack"));
    let [
        gateway,
        grpc,
        orders_health,
        payments_health,
        notifications_health,
    ] = [(); 5].map(|_| format!("127.0.0.1:{}", free_port()));
    let mut stack = ServiceProcess::spawn(
        "stack",
        args,
        &[
            env,
            vec![
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
        ]
        .concat(),
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
