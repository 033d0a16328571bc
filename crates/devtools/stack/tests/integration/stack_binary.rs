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

/// A running `stack` binary on fresh databases, ports and a Redis key prefix.
pub(crate) struct RunningStack {
    pub(crate) process: ServiceProcess,
    pub(crate) gateway: String,
    pub(crate) orders_health: String,
    pub(crate) payments_health: String,
    pub(crate) notifications_health: String,
    pub(crate) prefix: String,
    _databases: [TestDatabase; 2],
}

impl RunningStack {
    /// Starts `stack` with `args` and `env` (beside fresh databases, ports and a
    /// Redis key prefix named after `label`) and waits until every service is ready.
    pub(crate) fn start(label: &str, args: &[&str], env: Vec<(&str, String)>) -> Self {
        let orders_db = TestDatabase::new(&format!("{label}_orders"));
        let payments_db = TestDatabase::new(&format!("{label}_payments"));
        let prefix = format!("{}:", unique_name(label));
        let [
            gateway,
            grpc,
            orders_health,
            payments_health,
            notifications_health,
        ] = [(); 5].map(|_| format!("127.0.0.1:{}", free_port()));
        let mut process = ServiceProcess::spawn(
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
        process.assert_running();
        Self {
            process,
            gateway,
            orders_health,
            payments_health,
            notifications_health,
            prefix,
            _databases: [orders_db, payments_db],
        }
    }

    /// Places an order over HTTP and waits for its notification in Redis: the
    /// order's id and the stored notification.
    pub(crate) fn order_until_notified(&self) -> (i64, serde_json::Value) {
        let (status, body) = http_request(
            "POST",
            &format!("http://{}/orders", self.gateway),
            Some(r#"{"user_id": 42, "items": [{"product_id": 1, "quantity": 2, "price": 1500}]}"#),
        )
        .unwrap();
        assert_eq!(status, 200, "{body}");
        let order_id = serde_json::from_str::<serde_json::Value>(&body).unwrap()["order_id"]
            .as_i64()
            .unwrap();
        let mut redis = self.redis();
        let stored: String =
            wait_until(Duration::from_secs(60), "the notification in Redis", || {
                redis::cmd("GET")
                    .arg(format!("{}{order_id}", self.prefix))
                    .query::<Option<String>>(&mut redis)
                    .unwrap()
            });
        (order_id, serde_json::from_str(&stored).unwrap())
    }

    /// Stops `stack` with SIGTERM, expects exit status 0, and deletes the
    /// notification of `order_id` from Redis.
    pub(crate) fn stop(mut self, order_id: i64) {
        let status = self.process.terminate(Duration::from_secs(30));
        assert!(
            status.success(),
            "stack exited with {status}\n{}",
            self.process.log()
        );
        let _: () = redis::cmd("DEL")
            .arg(format!("{}{order_id}", self.prefix))
            .query(&mut self.redis())
            .unwrap();
    }

    pub(crate) fn redis(&self) -> redis::Connection {
        redis::Client::open(testkit::redis_url())
            .unwrap()
            .get_connection()
            .unwrap()
    }
}

/// Runs `stack` with `args` and `env`, places an order over HTTP, waits for its
/// notification in Redis, then stops `stack` with SIGTERM and expects exit status 0.
fn run_stack(args: &[&str], env: Vec<(&str, String)>) {
    let running = RunningStack::start("stack", args, env);
    let (order_id, stored) = running.order_until_notified();
    let expected = if order_id % 2 == 0 {
        "succeeded"
    } else {
        "failed"
    };
    assert_eq!(
        stored,
        serde_json::json!({"order_id": order_id, "user_id": 42, "order_status": expected})
    );

    running.stop(order_id);
}
