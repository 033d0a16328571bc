//! Each service binary pointed at Apache Kafka 4.x, which no longer serves the
//! protocol versions of the `kafka` client (KIP-896), stops at start-up with a non-zero
//! exit and one message that names `KAFKA_BROKERS`, the broker, the missing versions
//! and what to run instead, rather than retrying forever.

use std::time::Duration;

use testkit::{KafkaBroker, KafkaLine, TestDatabase, binary, free_port, run_to_exit};

#[test]
fn every_service_stops_at_start_up_on_apache_kafka_4_and_says_why() {
    let kafka = KafkaBroker::start(KafkaLine::V4);
    let bootstrap = kafka.bootstrap();
    kafka.create_topic("order-topic", 3);
    kafka.create_topic("status-topic", 3);
    let orders_db = TestDatabase::new("legacy_orders");
    let payments_db = TestDatabase::new("legacy_payments");
    let port = || format!("127.0.0.1:{}", free_port());
    let services: [(&str, Vec<(&str, String)>); 3] = [
        (
            "orders",
            vec![
                ("ORDERS_PG_DSN", orders_db.dsn()),
                ("ORDERS_GRPC_ADDR", port()),
                ("ORDERS_HEALTH_ADDR", port()),
            ],
        ),
        (
            "payments",
            vec![
                ("PAYMENTS_PG_DSN", payments_db.dsn()),
                ("PAYMENTS_HEALTH_ADDR", port()),
            ],
        ),
        (
            "notifications",
            vec![
                ("NOTIFICATIONS_HEALTH_ADDR", port()),
                ("REDIS_ADDR", "127.0.0.1:6379".to_owned()),
            ],
        ),
    ];
    for (service, env) in services {
        let mut env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        env.push(("KAFKA_BROKERS", &bootstrap));
        let (code, stderr) = run_to_exit(
            &binary(service),
            &["KAFKA_TOPIC", "KAFKA_TOPIC_ORDER", "KAFKA_TOPIC_STATUS"],
            &env,
            Duration::from_secs(60),
        );
        assert!(
            code.is_some_and(|code| code != 0),
            "{service} exited with {code:?}:\n{stderr}"
        );
        for expected in [
            "KAFKA_BROKERS".to_owned(),
            format!("broker {bootstrap} does not serve the protocol versions"),
            "Fetch v0".to_owned(),
            "Apache Kafka 3.x".to_owned(),
        ] {
            assert!(
                stderr.contains(&expected),
                "{service}: {expected:?} not in:\n{stderr}"
            );
        }
    }
}
