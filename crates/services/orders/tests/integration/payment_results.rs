//! orders follows payment results: `PaymentStatus` events on the status topic move
//! orders to `paid` / `payment_failed`, once, never backwards; duplicates are
//! skipped, poison messages and events for unknown orders are kept in
//! `dead_letters` without blocking the partition. Runs on devbroker and on Apache
//! Kafka (`testkit::on_each_broker!`); orders runs in-process.

use std::time::Duration;

use contracts::{PaymentOutcome, PaymentStatus};
use orders::testing::{DEADLINE, Orders, config, item, request};
use testkit::{BrokerKind, TestBroker, TestDatabase, on_each_broker, runtime, wait_until};

on_each_broker!(
    status_events_move_orders_once_and_keep_what_cannot_be_applied,
    turned_off_orders_stay_new
);

fn producer(broker: &TestBroker) -> bus::Producer {
    bus::Producer::connect(bus::ProducerConfig {
        brokers: vec![broker.bootstrap()],
        ack_timeout: Duration::from_secs(5),
        max_retries: 5,
        client_id: "orders-test".to_owned(),
        client: bus::KafkaClient::Kafka,
        security: bus::KafkaSecurity::plaintext(),
        rdkafka_properties: bus::RdkafkaProperties::none(),
    })
    .unwrap()
}

fn status(event_id: i64, order_id: i64, outcome: PaymentOutcome) -> Vec<u8> {
    contracts::encode(&PaymentStatus {
        event_id,
        order_id,
        user_id: 7,
        order_status: outcome,
    })
    .into_bytes()
}

/// Sends `value` under `key` to `topic`; the broker must acknowledge it.
fn send(producer: &mut bus::Producer, topic: &str, key: &str, value: &[u8]) {
    let key = key.as_bytes();
    producer
        .send(bus::Record {
            topic,
            key,
            value,
            headers: &[],
        })
        .unwrap();
}

/// (status, updated_at > created_at) of an order, read from its database.
fn stored_status(db: &TestDatabase, order_id: i64) -> (String, bool) {
    let row = db
        .client()
        .query_one(
            "SELECT status, updated_at > created_at FROM orders WHERE order_id = $1",
            &[&order_id],
        )
        .unwrap();
    (row.get(0), row.get(1))
}

/// The `event_id`s in `processed_events`, in order.
fn processed_event_ids(client: &mut postgres::Client) -> Vec<i64> {
    client
        .query(
            "SELECT event_id FROM processed_events ORDER BY event_id",
            &[],
        )
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

/// orders with its consumer on `topic` of `broker`.
fn orders_config(db: &TestDatabase, broker: &TestBroker, topic: &str) -> orders::Config {
    orders::Config {
        kafka: settings::KafkaConnection {
            brokers: broker.bootstrap().parse().unwrap(),
            ..Default::default()
        },
        kafka_topic_status: topic.to_owned(),
        orders_consumer_group: testkit::unique_name("orders"),
        ..config(db.dsn())
    }
}

fn status_events_move_orders_once_and_keep_what_cannot_be_applied(kind: BrokerKind) {
    let db = TestDatabase::new("orders_results");
    let broker = TestBroker::start(kind);
    let topic = broker.unique_topic("status-topic", 1);
    let rt = runtime();
    let orders = rt.block_on(Orders::start_serving(orders_config(&db, &broker, &topic)));
    let [paid, failed, untouched] = rt.block_on(async {
        let mut client = orders.client().await;
        let mut ids = [0; 3];
        for id in &mut ids {
            *id = client
                .create_order(request(7, vec![item(1, 1, 10)]))
                .await
                .unwrap()
                .into_inner()
                .order_id;
        }
        ids
    });

    let mut producer = producer(&broker);
    let key = |id: i64| contracts::message_key(id);
    // In one partition, in this order: a result, its redelivery, a poison message,
    // the other order's result, a later contradicting result for the first order,
    // and a result for an order this database never had.
    let sent = [
        (key(paid), status(1001, paid, PaymentOutcome::Succeeded)),
        (key(paid), status(1001, paid, PaymentOutcome::Succeeded)),
        ("x".to_owned(), b"{not json".to_vec()),
        (key(failed), status(1002, failed, PaymentOutcome::Failed)),
        (key(paid), status(1003, paid, PaymentOutcome::Failed)),
        (
            "999999".to_owned(),
            status(1004, 999_999, PaymentOutcome::Succeeded),
        ),
    ];
    for (key, value) in &sent {
        send(&mut producer, &topic, key, value);
    }

    wait_until(
        DEADLINE,
        "both orders final and both dead letters kept",
        || {
            let dead = db.count("SELECT count(*) FROM dead_letters");
            (stored_status(&db, paid).0 == "paid"
                && stored_status(&db, failed).0 == "payment_failed"
                && dead == 2)
                .then_some(())
        },
    );
    // The last message was applied: everything before it was too.
    assert_eq!(
        stored_status(&db, paid),
        ("paid".to_owned(), true),
        "not moved back"
    );
    assert_eq!(
        stored_status(&db, failed),
        ("payment_failed".to_owned(), true)
    );
    assert_eq!(stored_status(&db, untouched).0, "new");

    let mut client = db.client();
    let processed = processed_event_ids(&mut client);
    assert_eq!(
        processed,
        [1001, 1002, 1003],
        "applied and skipped events recorded; the unknown order's is not (so it can be replayed)"
    );
    let reasons: Vec<(Vec<u8>, String)> = client
        .query("SELECT payload, error FROM dead_letters ORDER BY id", &[])
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    assert_eq!(reasons[0].0, b"{not json", "kept byte for byte");
    assert!(
        reasons[1].1.contains("order 999999 does not exist"),
        "{}",
        reasons[1].1
    );

    // gRPC shows the final statuses (as the gateway's REST does).
    let statuses = rt.block_on(async {
        let mut client = orders.client().await;
        let mut statuses = Vec::new();
        for order_id in [paid, failed, untouched] {
            let order = orders::testing::get_order(&mut client, order_id).await;
            statuses.push(order.status());
        }
        statuses
    });
    use proto::v1::OrderStatus;
    assert_eq!(
        statuses,
        [
            OrderStatus::Paid,
            OrderStatus::PaymentFailed,
            OrderStatus::New
        ]
    );

    let metrics = testkit::http_request("GET", &orders.ops_url("/metrics"), None)
        .unwrap()
        .1;
    for series in [
        r#"orders_status_events_total{outcome="applied"} 2"#,
        r#"orders_status_events_total{outcome="duplicate"} 1"#,
        r#"orders_status_events_total{outcome="already_final"} 1"#,
        r#"orders_status_events_total{outcome="dead_lettered"} 2"#,
        r#"orders_final_status_total{status="paid"} 1"#,
        r#"orders_final_status_total{status="payment_failed"} 1"#,
        "orders_time_to_final_status_seconds_count 2",
    ] {
        assert!(metrics.contains(series), "{series} in\n{metrics}");
    }
    rt.block_on(orders.stop());
}

fn turned_off_orders_stay_new(kind: BrokerKind) {
    let db = TestDatabase::new("orders_results");
    let broker = TestBroker::start(kind);
    let topic = broker.unique_topic("status-topic", 1);
    let rt = runtime();
    let orders = rt.block_on(Orders::start_serving(orders::Config {
        orders_track_payments: false,
        ..orders_config(&db, &broker, &topic)
    }));
    let order_id = rt.block_on(async { orders.create(request(7, vec![item(1, 1, 10)])).await });
    let mut producer = producer(&broker);
    send(
        &mut producer,
        &topic,
        &contracts::message_key(order_id),
        &status(2001, order_id, PaymentOutcome::Succeeded),
    );
    // Nothing consumes it: give a consumer, if there were one, ample time.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(stored_status(&db, order_id).0, "new");
    let metrics = testkit::http_request("GET", &orders.ops_url("/metrics"), None)
        .unwrap()
        .1;
    assert!(!metrics.contains("orders_status_events_total"), "{metrics}");
    rt.block_on(orders.stop());
}

/// `values` as one poll of partition 0, the first at `first_offset`.
fn messages(values: &[Vec<u8>], first_offset: i64) -> Vec<bus::Message<'_>> {
    values
        .iter()
        .zip(first_offset..)
        .map(|(value, offset)| bus::Message {
            topic: "status-topic",
            partition: 0,
            offset,
            key: b"k",
            value,
            headers: &[],
            trace: None,
        })
        .collect()
}

/// A poll of valid events for distinct orders is applied in one statement: new
/// events move their `new` orders, a redelivered event is skipped, an event for an
/// order already final leaves it, and an event for an unknown order is taken back
/// and kept in `dead_letters`, each exactly as when applied one by one.
#[test]
fn a_poll_of_events_for_distinct_orders_is_applied_together_with_the_same_outcomes() {
    use bus::Handler as _;
    let db = TestDatabase::new("orders_results_many");
    let rt = runtime();
    let orders = rt.block_on(Orders::start_serving(orders::Config {
        orders_track_payments: false,
        ..config(db.dsn())
    }));
    let [a, b, c] = rt.block_on(async {
        let mut ids = [0; 3];
        for id in &mut ids {
            *id = orders.create(request(7, vec![item(1, 1, 10)])).await;
        }
        ids
    });
    let pool = pgsetup::prepare(
        &db.dsn(),
        orders::schema(),
        pgsetup::PoolOptions {
            max_size: 2,
            connect_timeout: Duration::from_secs(5),
        },
    )
    .unwrap();
    let metrics = ops_http::Metrics::new();
    let mut handler = orders::payment_results::PaymentResults::new(
        pool,
        orders::payment_results::ResultMetrics::register(&metrics),
    );
    let poll = |events: &[(i64, i64, PaymentOutcome)]| -> Vec<Vec<u8>> {
        events
            .iter()
            .map(|(event_id, order_id, outcome)| status(*event_id, *order_id, *outcome))
            .collect()
    };
    let first = poll(&[
        (2001, a, PaymentOutcome::Succeeded),
        (2002, b, PaymentOutcome::Failed),
    ]);
    handler.handle_batch(&messages(&first, 0)).unwrap();
    let second = poll(&[
        (2001, a, PaymentOutcome::Succeeded),
        (2003, b, PaymentOutcome::Succeeded),
        (2004, 999_999, PaymentOutcome::Succeeded),
        (2005, c, PaymentOutcome::Succeeded),
    ]);
    handler.handle_batch(&messages(&second, 2)).unwrap();

    assert_eq!(stored_status(&db, a), ("paid".to_owned(), true));
    assert_eq!(
        stored_status(&db, b),
        ("payment_failed".to_owned(), true),
        "the first decision stands"
    );
    assert_eq!(stored_status(&db, c), ("paid".to_owned(), true));
    let mut client = db.client();
    let processed = processed_event_ids(&mut client);
    assert_eq!(processed, [2001, 2002, 2003, 2005]);
    let kept: Vec<(i64, String)> = client
        .query("SELECT kafka_offset, error FROM dead_letters", &[])
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(kept[0].0, 4, "the unknown order's message, by its offset");
    assert!(
        kept[0].1.contains("order 999999 does not exist"),
        "{kept:?}"
    );
    for (series, expected) in [
        (r#"orders_status_events_total{outcome="applied"}"#, 3.0),
        (r#"orders_status_events_total{outcome="duplicate"}"#, 1.0),
        (
            r#"orders_status_events_total{outcome="already_final"}"#,
            1.0,
        ),
        (
            r#"orders_status_events_total{outcome="dead_lettered"}"#,
            1.0,
        ),
        ("orders_time_to_final_status_seconds_count", 3.0),
    ] {
        assert_eq!(metrics.value(series), Some(expected), "{series}");
    }
    rt.block_on(orders.stop());
}
