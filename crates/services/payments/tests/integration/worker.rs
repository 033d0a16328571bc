//! The payments worker against real PostgreSQL and an in-process devbroker: each
//! test has its own database, topics and consumer group, so tests run in parallel.

use std::{
    net::SocketAddr,
    process::{Command, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use chrono::{SubsecRound, Utc};
use contracts::{OrderCreated, PaymentOutcome, PaymentStatus};
use payments::Config;
use serde_json::{Value, json};
use testkit::{
    KillOnDrop, TcpProxy, TestDatabase, unique_name, wait_until,
    worker::{Worker, producer},
};
use tokio_util::sync::CancellationToken;

pub(crate) const DEADLINE: Duration = Duration::from_secs(30);

/// A database and the worker running against it and an in-process broker
/// ([`Worker`]: its own runtime, the test bodies are synchronous).
pub(crate) struct Harness {
    pub(crate) worker: Worker<payments::StartError>,
    pub(crate) db: TestDatabase,
    pub(crate) config: Config,
}

impl Harness {
    /// `configure` adjusts the test's configuration (given the test database).
    pub(crate) fn start(configure: impl FnOnce(&mut Config, &TestDatabase)) -> Self {
        let db = TestDatabase::new("payments");
        let (worker, config) = Worker::start(
            "payments-test",
            |broker| {
                let mut config = Config {
                    payments_pg_dsn: db.dsn(),
                    payments_health_addr: "127.0.0.1:0".parse().unwrap(),
                    payments_db_timeout: settings::GoDuration::from_millis(500),
                    kafka: settings::KafkaConnection {
                        brokers: broker.bootstrap().parse().unwrap(),
                        ..Default::default()
                    },
                    kafka_topic_order: unique_name("orders"),
                    kafka_topic_status: unique_name("statuses"),
                    kafka_consumer_group: unique_name("payments"),
                    ..Config::default()
                };
                configure(&mut config, &db);
                config
            },
            payments::start,
        );
        Self { worker, db, config }
    }

    pub(crate) fn produce(&mut self, key: &str, value: &[u8]) {
        self.worker
            .produce(&self.config.kafka_topic_order, key, value);
    }

    pub(crate) fn produce_order(&mut self, order: &OrderCreated) {
        let key = contracts::message_key(order.order_id);
        self.produce(&key, contracts::encode(order).as_bytes());
    }

    pub(crate) fn health_addr(&self) -> SocketAddr {
        self.worker.health_addr()
    }

    /// The worker's `/metrics` value of `name`, if it has one.
    pub(crate) fn metric(&self, name: &str) -> Option<u64> {
        testkit::metric(self.health_addr(), name)
    }

    /// Waits until the worker's `/metrics` value of `name` is at least `at_least`.
    pub(crate) fn wait_for_metric(&self, name: &str, at_least: u64) {
        testkit::wait_for_metric(self.health_addr(), name, at_least, DEADLINE);
    }

    pub(crate) fn wait_for_payment(&self, order_id: i64) -> String {
        wait_until(DEADLINE, &format!("payment of order {order_id}"), || {
            // The worker creates the database: it may not exist yet.
            let mut client = postgres::Client::connect(&self.db.dsn(), postgres::NoTls).ok()?;
            let row = client
                .query_opt(
                    "SELECT status FROM payments WHERE order_id = $1",
                    &[&order_id],
                )
                .ok()??;
            Some(row.get::<_, String>(0))
        })
    }

    pub(crate) fn stop(mut self) {
        self.worker.stop();
    }
}

pub(crate) fn order(event_id: i64, order_id: i64) -> OrderCreated {
    OrderCreated {
        event_id,
        order_id,
        user_id: 7,
        total_amount: 1500 + order_id,
        created_at: Utc::now().trunc_subsecs(3),
    }
}

/// (key, value) of each message seen.
type Seen = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// Collects every message of a topic.
struct Collector(Seen);

impl bus::Handler for Collector {
    type Error = std::convert::Infallible;
    fn handle(&mut self, message: &bus::Message<'_>) -> Result<(), Self::Error> {
        self.0.lock().unwrap().push((
            String::from_utf8_lossy(message.key).into_owned(),
            message.value.to_vec(),
        ));
        Ok(())
    }
}

#[test]
fn orders_are_paid_by_the_parity_rule_and_their_status_is_published() {
    let mut h = Harness::start(|_, _| {});
    h.produce_order(&order(10, 42));
    h.produce_order(&order(11, 43));
    assert_eq!(h.wait_for_payment(42), "succeeded");
    assert_eq!(h.wait_for_payment(43), "failed");

    let mut client = h.db.client();
    for (order_id, status, event_id) in [(42_i64, "succeeded", 10_i64), (43, "failed", 11)] {
        let payment = client
            .query_one(
                "SELECT user_id, amount FROM payments WHERE order_id = $1",
                &[&order_id],
            )
            .unwrap();
        assert_eq!(payment.get::<_, i64>(0), 7);
        assert_eq!(payment.get::<_, i64>(1), 1500 + order_id);
        let processed: i64 = client
            .query_one(
                "SELECT count(*) FROM processed_events WHERE event_id = $1 AND order_id = $2",
                &[&event_id, &order_id],
            )
            .unwrap()
            .get(0);
        assert_eq!(processed, 1);
        let outbox = client
            .query(
                "SELECT event_id, topic, message_key, payload::text FROM events
                 WHERE message_key = $1",
                &[&order_id.to_string()],
            )
            .unwrap();
        assert_eq!(outbox.len(), 1, "one PaymentStatus for order {order_id}");
        let row = &outbox[0];
        let status_event_id: i64 = row.get(0);
        assert_eq!(row.get::<_, String>(1), h.config.kafka_topic_status);
        let payload: Value = serde_json::from_str(&row.get::<_, String>(3)).unwrap();
        assert_eq!(
            payload,
            json!({"event_id": status_event_id, "order_id": order_id, "user_id": 7,
                   "order_status": status})
        );
    }
    assert_eq!(h.db.count("SELECT count(*) FROM payments"), 2);
    assert_eq!(h.db.count("SELECT count(*) FROM processed_events"), 2);

    // The relay publishes both statuses to the status topic, keyed by order id.
    let seen: Seen = Arc::default();
    let stop = CancellationToken::new();
    let consumer = bus::spawn_consumer(
        bus::ConsumerConfig {
            fetch_max_wait: Duration::from_millis(200),
            retry_backoff_initial: Duration::from_millis(50),
            retry_backoff_max: Duration::from_millis(500),
            ..bus::ConsumerConfig::new(
                vec![h.worker.broker.bootstrap()],
                &h.config.kafka_topic_status,
                &unique_name("status-reader"),
                "payments-test",
            )
        },
        Collector(seen.clone()),
        stop.clone(),
    )
    .unwrap();
    let published = wait_until(DEADLINE, "two PaymentStatus on the status topic", || {
        let seen = seen.lock().unwrap();
        (seen.len() >= 2).then(|| seen.clone())
    });
    stop.cancel();
    consumer.join().unwrap();
    let mut statuses: Vec<(String, PaymentStatus)> = published
        .iter()
        .map(|(key, value)| (key.clone(), contracts::decode(value).unwrap()))
        .collect();
    statuses.sort_by_key(|(_, status)| status.order_id);
    assert_eq!(statuses.len(), 2);
    assert_eq!(statuses[0].0, "42");
    assert_eq!(statuses[0].1.order_status, PaymentOutcome::Succeeded);
    assert_eq!(statuses[1].0, "43");
    assert_eq!(statuses[1].1.order_status, PaymentOutcome::Failed);
    wait_until(DEADLINE, "outbox rows marked sent", || {
        (h.db
            .count("SELECT count(*) FROM events WHERE sent_at IS NULL")
            == 0)
            .then_some(())
    });

    // Ready: on a loaded machine one probe can miss a pool connection within
    // PAYMENTS_DB_TIMEOUT (503 naming it), so the answer is awaited, not sampled once.
    wait_until(DEADLINE, "/readyz 200", || {
        testkit::http_request("GET", &format!("http://{}/readyz", h.health_addr()), None)
            .filter(|(status, _)| *status == 200)
    });
    assert_eq!(h.metric("payments_succeeded_total"), Some(1));
    assert_eq!(h.metric("payments_failed_total"), Some(1));
    h.stop();
}

#[test]
fn a_redelivered_order_is_paid_once() {
    let mut h = Harness::start(|_, _| {});
    let event = order(20, 8);
    h.produce_order(&event);
    h.produce_order(&event);
    // Another event id for the same (already paid) order: the first decision stands.
    h.produce_order(&OrderCreated {
        event_id: 21,
        ..event.clone()
    });
    h.wait_for_metric("payments_messages_processed_total", 3);
    assert_eq!(h.wait_for_payment(8), "succeeded");
    assert_eq!(h.metric("payments_duplicates_skipped_total"), Some(2));
    assert_eq!(h.db.count("SELECT count(*) FROM payments"), 1);
    assert_eq!(
        h.db.count("SELECT count(*) FROM processed_events WHERE event_id = 20"),
        1
    );
    assert_eq!(h.db.count("SELECT count(*) FROM events"), 1);
    h.stop();
}

#[test]
fn poison_messages_are_dead_lettered_and_the_next_order_is_processed() {
    let mut h = Harness::start(|_, _| {});
    // One key, so one partition: the good order comes after the poison ones.
    h.produce("4", b"not json at all");
    h.produce("4", br#"{"event_id": 30, "order_id": 4}"#);
    h.produce(
        "4",
        br#"{"event_id": 31, "order_id": -4, "user_id": 1, "total_amount": 1, "created_at": "2026-11-25T10:00:00Z"}"#,
    );
    h.produce_order(&order(32, 4));
    assert_eq!(h.wait_for_payment(4), "succeeded");

    let mut client = h.db.client();
    let letters = client
        .query(
            "SELECT kafka_topic, message_key, payload, error FROM dead_letters ORDER BY kafka_offset",
            &[],
        )
        .unwrap();
    assert_eq!(letters.len(), 3);
    for letter in &letters {
        assert_eq!(letter.get::<_, String>(0), h.config.kafka_topic_order);
        assert_eq!(letter.get::<_, Vec<u8>>(1), b"4");
    }
    assert_eq!(letters[0].get::<_, Vec<u8>>(2), b"not json at all");
    assert!(letters[0].get::<_, String>(3).contains("invalid JSON"));
    assert!(letters[1].get::<_, String>(3).contains("user_id"));
    assert!(
        letters[2]
            .get::<_, String>(3)
            .contains("order_id must be positive")
    );
    assert_eq!(h.metric("payments_dead_letters_total"), Some(3));
    assert_eq!(h.db.count("SELECT count(*) FROM processed_events"), 1);
    h.stop();
}

#[test]
fn an_order_arriving_during_a_database_outage_is_paid_once_it_is_back() {
    let pg = testkit::pg_base_url();
    let target = pg
        .rsplit_once('@')
        .map_or("127.0.0.1:5432", |(_, host)| host);
    let proxy = TcpProxy::start(target).unwrap();
    let via = proxy.addr();
    let mut h = Harness::start(|config, db| config.payments_pg_dsn = db.dsn_via(&via));
    h.produce_order(&order(40, 100));
    assert_eq!(h.wait_for_payment(100), "succeeded");

    proxy.cut();
    h.produce_order(&order(41, 101));
    // The worker has tried, and failed, to process it.
    h.wait_for_metric("payments_transient_failures_total", 1);
    assert_eq!(
        h.db.count("SELECT count(*) FROM payments WHERE order_id = 101"),
        0
    );
    proxy.restore();

    assert_eq!(h.wait_for_payment(101), "failed");
    assert_eq!(
        h.db.count("SELECT count(*) FROM processed_events WHERE event_id = 41"),
        1
    );
    assert_eq!(
        h.db.count("SELECT count(*) FROM events WHERE message_key = '101'"),
        1
    );
    h.wait_for_metric("payments_messages_processed_total", 2);
    assert_eq!(h.metric("payments_duplicates_skipped_total"), Some(0));
    h.stop();
}

#[test]
fn instances_reading_disjoint_partitions_share_the_work() {
    let mut h = Harness::start(|config, _| config.payments_kafka_partitions = "0".parse().unwrap());
    // A second instance on the same database, topic and group, with the other
    // partitions (devbroker's default topics have three).
    let second_config = Config {
        payments_kafka_partitions: "1,2".parse().unwrap(),
        ..h.config.clone()
    };
    let second_shutdown = CancellationToken::new();
    let second = h
        .worker
        .rt
        .block_on(payments::start(second_config, second_shutdown.clone()))
        .unwrap();

    let order_ids: Vec<i64> = (1..=12).collect();
    for &order_id in &order_ids {
        h.produce_order(&order(1000 + order_id, order_id));
    }
    for &order_id in &order_ids {
        h.wait_for_payment(order_id);
    }
    assert_eq!(h.db.count("SELECT count(*) FROM payments"), 12);
    assert_eq!(h.db.count("SELECT count(*) FROM processed_events"), 12);
    assert_eq!(
        h.db.count("SELECT count(DISTINCT message_key) FROM events"),
        12
    );
    assert_eq!(h.db.count("SELECT count(*) FROM events"), 12);
    let partitions_used =
        h.db.count("SELECT count(DISTINCT kafka_partition) FROM processed_events");
    assert!(partitions_used > 1, "orders spread over partitions");
    wait_until(DEADLINE, "both relays to publish everything", || {
        (h.db
            .count("SELECT count(*) FROM events WHERE sent_at IS NULL")
            == 0)
            .then_some(())
    });

    second_shutdown.cancel();
    h.worker.rt.block_on(second.wait()).unwrap();
    h.stop();
}

#[test]
fn sigterm_finishes_and_exits_zero() {
    let broker = devbroker::spawn_background(devbroker::BrokerConfig::default()).unwrap();
    let db = TestDatabase::new("payments_bin");
    let topic = unique_name("orders");
    let mut child = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_payments"))
            .env("PAYMENTS_PG_DSN", db.dsn())
            .env("PAYMENTS_HEALTH_ADDR", "127.0.0.1:0")
            .env("KAFKA_BROKERS", broker.bootstrap())
            .env("KAFKA_TOPIC_ORDER", &topic)
            .env("KAFKA_TOPIC_STATUS", unique_name("statuses"))
            .env("KAFKA_CONSUMER_GROUP", unique_name("payments"))
            .env_remove("PAYMENTS_CONFIG")
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
    );

    let mut producer = producer(&broker, "payments-test");
    let event = order(50, 6);
    producer
        .send(bus::Record {
            topic: &topic,
            key: b"6",
            value: contracts::encode(&event).as_bytes(),
            headers: &[],
        })
        .unwrap();
    wait_until(DEADLINE, "the binary to pay order 6", || {
        let mut client = postgres::Client::connect(&db.dsn(), postgres::NoTls).ok()?;
        client
            .query_opt("SELECT 1 FROM payments WHERE order_id = 6", &[])
            .ok()?
            .map(|_| ())
    });

    let status = child.terminate(DEADLINE);
    assert!(status.success(), "exit status {status:?}");
}

/// Stores `order` in `dead_letters` as a worker that refused it for `error` would.
fn keep_as_dead_letter(h: &Harness, order: &OrderCreated, error: &str) {
    h.db.client()
        .execute(
            "INSERT INTO dead_letters (kafka_topic, kafka_partition, kafka_offset, message_key, payload, error) \
             VALUES ($1, 0, 999, $2, $3, $4)",
            &[
                &h.config.kafka_topic_order,
                &contracts::message_key(order.order_id).as_bytes(),
                &contracts::encode(order).as_bytes(),
                &error,
            ],
        )
        .unwrap();
}

#[test]
fn a_replayed_dead_letter_is_paid_exactly_once_and_poison_stays_kept() {
    let mut h = Harness::start(|_, _| {});
    // Ready: its database exists.
    testkit::wait_http_ok(&format!("http://{}/readyz", h.health_addr()), DEADLINE);
    // A truly poison message, kept by the worker.
    h.produce("8", b"still not json");
    wait_until(DEADLINE, "the poison message to be kept", || {
        (h.db.count("SELECT count(*) FROM dead_letters") == 1).then_some(())
    });
    // A valid OrderCreated that an earlier, buggy version kept as poison: its cause is
    // fixed now (this worker accepts it), so replaying it must pay it.
    let fixed = order(40, 8);
    keep_as_dead_letter(&h, &fixed, "rejected by an older version");

    let replay = |args: &[&str]| {
        let mut all_args = vec!["dead-letters"];
        all_args.extend_from_slice(args);
        let output = Command::new(testkit::binary("payments"))
            .args(&all_args)
            .env("PAYMENTS_PG_DSN", h.db.dsn())
            .env("KAFKA_BROKERS", h.worker.broker.bootstrap())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "payments {all_args:?}: {}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let listed = replay(&["list"]);
    assert_eq!(listed.lines().count(), 2, "{listed}");
    assert!(listed.contains("still not json"), "{listed}");
    assert!(listed.contains("rejected by an older version"), "{listed}");

    let replayed = replay(&["replay", "--all"]);
    assert!(replayed.contains("replayed 2 dead letter(s)"), "{replayed}");
    assert_eq!(h.wait_for_payment(8), "succeeded");
    // The poison message went through the normal path again and was kept again.
    wait_until(DEADLINE, "the poison message to be kept again", || {
        (h.db
            .count("SELECT count(*) FROM dead_letters WHERE payload = 'still not json'::bytea")
            == 1)
            .then_some(())
    });
    assert_eq!(h.db.count("SELECT count(*) FROM dead_letters"), 1);

    // A replay that died after publishing but before deleting its row is replayed
    // again: the duplicate is skipped on its event_id.
    keep_as_dead_letter(&h, &fixed, "replayed twice");
    let id: i64 =
        h.db.client()
            .query_one(
                "SELECT id FROM dead_letters WHERE error = 'replayed twice'",
                &[],
            )
            .unwrap()
            .get(0);
    replay(&["replay", &id.to_string()]);
    // An order after it on the same key (so the same partition): once it is paid,
    // the duplicate before it has been handled.
    h.produce(
        &contracts::message_key(8),
        contracts::encode(&order(41, 10)).as_bytes(),
    );
    assert_eq!(h.wait_for_payment(10), "succeeded");
    assert_eq!(
        h.db.count("SELECT count(*) FROM payments WHERE order_id = 8"),
        1
    );
    assert_eq!(
        h.db.count("SELECT count(*) FROM processed_events WHERE event_id = 40"),
        1
    );
    // Everything handled and committed: the lag metric says 0 for the order topic.
    let lag_line = format!(
        "kafka_consumer_lag{{topic=\"{}\",partition=\"0\"}} 0",
        h.config.kafka_topic_order
    );
    wait_until(DEADLINE, "kafka_consumer_lag 0 on /metrics", || {
        testkit::http_request("GET", &format!("http://{}/metrics", h.health_addr()), None)
            .filter(|(_, body)| body.lines().any(|line| line == lag_line))
    });

    // An id that does not exist is refused, naming it.
    let output = Command::new(testkit::binary("payments"))
        .args(["dead-letters", "replay", "999999"])
        .env("PAYMENTS_PG_DSN", h.db.dsn())
        .env("KAFKA_BROKERS", h.worker.broker.bootstrap())
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("no dead letter with id 999999"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    h.stop();
}

#[test]
fn retention_deletes_only_aged_rows_and_a_redelivery_inside_the_window_is_still_skipped() {
    let mut h = Harness::start(|config, _| {
        config.retention_interval = settings::GoDuration::from_millis(200);
        config.retention_batch = 10;
    });
    let event = order(500, 12);
    h.produce_order(&event);
    assert_eq!(h.wait_for_payment(12), "succeeded");

    // Rows from long ago, past the default windows (720h, and 168h for sent outbox
    // rows), next to recent ones.
    h.db.client()
        .batch_execute(
            "INSERT INTO processed_events (event_id, order_id, kafka_topic, kafka_partition, kafka_offset, processed_at)
             SELECT n, n, 'order-topic', 0, n, now() - interval '800 hours'
             FROM generate_series(1, 25) AS n;
             INSERT INTO dead_letters (kafka_topic, kafka_partition, kafka_offset, message_key, payload, error, received_at)
             SELECT 'order-topic', 0, n, '1', 'x', 'old', now() - interval '800 hours'
             FROM generate_series(1, 3) AS n;
             INSERT INTO dead_letters (kafka_topic, kafka_partition, kafka_offset, message_key, payload, error, received_at)
             SELECT 'order-topic', 0, n, '1', 'x', 'recent', now() - interval '700 hours'
             FROM generate_series(4, 5) AS n;
             INSERT INTO events (topic, message_key, payload, created_at, sent_at)
             SELECT 'status-topic', 'old', '{}'::json, now() - interval '201 hours', now() - interval '200 hours'
             FROM generate_series(1, 12) AS n;",
        )
        .unwrap();
    let deleted = |table: &str| {
        h.metric(&format!(
            "retention_deleted_rows_total{{table=\"{table}\"}}"
        ))
    };
    wait_until(DEADLINE, "retention to delete the aged rows", || {
        (deleted("processed_events") == Some(25)
            && deleted("dead_letters") == Some(3)
            && deleted("events") == Some(12))
        .then_some(())
    });
    assert_eq!(h.db.count("SELECT count(*) FROM processed_events"), 1);
    assert_eq!(
        h.db.count("SELECT count(*) FROM dead_letters WHERE error = 'recent'"),
        2
    );
    assert_eq!(h.db.count("SELECT count(*) FROM dead_letters"), 2);
    assert_eq!(
        h.db.count("SELECT count(*) FROM events WHERE message_key = 'old'"),
        0
    );
    assert_eq!(
        h.db.count("SELECT count(*) FROM events WHERE message_key = '12'"),
        1
    );

    // Retention has run since the order was handled; redelivered within the window,
    // it is still recognised and skipped.
    h.produce_order(&event);
    h.wait_for_metric("payments_messages_processed_total", 2);
    assert_eq!(h.metric("payments_duplicates_skipped_total"), Some(1));
    assert_eq!(h.db.count("SELECT count(*) FROM payments"), 1);
    assert_eq!(
        h.db.count("SELECT count(*) FROM events WHERE message_key = '12'"),
        1
    );
    // Registered (a run that failed on a busy machine, e.g. no pool connection within
    // PAYMENTS_DB_TIMEOUT, is retried and counted here, so its value is not asserted).
    assert!(h.metric("retention_failures_total").is_some());
    h.stop();
}
