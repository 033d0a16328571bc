//! Taking over a database the Go payments service made (goose migration 00001):
//! every payment, handled event and outbox row kept; an `OrderCreated` Go handled
//! is still skipped when delivered again; Go's unsent `PaymentStatus` is published
//! by our relay; new ids come after Go's; a take-over that fails changes nothing.

use std::time::Duration;

use chrono::{SubsecRound, Utc};
use contracts::OrderCreated;
use payments::Config;
use testkit::{
    GoService, TestDatabase, insert_go_payment, runtime, snapshot, unique_name, wait_until,
    worker::Worker,
};

const DEADLINE: Duration = Duration::from_secs(30);

fn config(db: &TestDatabase, brokers: settings::BrokerList) -> Config {
    Config {
        payments_pg_dsn: db.dsn(),
        payments_health_addr: "127.0.0.1:0".parse().unwrap(),
        kafka: settings::KafkaConnection {
            brokers,
            ..Default::default()
        },
        kafka_topic_order: unique_name("orders"),
        kafka_topic_status: unique_name("statuses"),
        kafka_consumer_group: unique_name("payments"),
        ..Config::default()
    }
}

fn order_created(event_id: i64, order_id: i64) -> OrderCreated {
    OrderCreated {
        event_id,
        order_id,
        user_id: 5,
        total_amount: 700,
        created_at: Utc::now().trunc_subsecs(3),
    }
}

#[test]
fn a_go_payments_database_is_taken_over_and_go_handled_events_stay_handled() {
    let db = TestDatabase::new("payments_go");
    let mut go = db.create_as_go(GoService::Payments);
    // Go handled OrderCreated events 1 (order 2) and 2 (order 3); order 3's
    // PaymentStatus was not published yet.
    insert_go_payment(&mut go, 1, 2, 5, 700, true);
    let unsent = insert_go_payment(&mut go, 2, 3, 5, 300, false);
    go.batch_execute("SELECT setval('events_id_seq', 40)")
        .unwrap();
    let go_payments: Vec<(i64, i64, i64, String, i64)> = go
        .query(
            "SELECT order_id, user_id, total_amount, status, floor(extract(epoch FROM created_at))::bigint
             FROM payments ORDER BY order_id",
            &[],
        )
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4)))
        .collect();

    let (mut worker, config) = Worker::start(
        "payments-go-test",
        |broker| config(&db, broker.bootstrap().parse().unwrap()),
        payments::start,
    );
    // Our relay publishes Go's unsent PaymentStatus with the id Go would have used.
    wait_until(DEADLINE, "Go's unsent PaymentStatus sent", || {
        let sent: bool = db
            .client()
            .query_opt(
                "SELECT sent_at IS NOT NULL FROM events WHERE event_id = $1",
                &[&unsent],
            )
            .ok()??
            .get(0);
        sent.then_some(())
    });
    // Event 2 again (a redelivery after the switch), then a new one.
    for event in [order_created(2, 3), order_created(10, 4)] {
        let key = contracts::message_key(event.order_id);
        worker.produce(
            &config.kafka_topic_order,
            &key,
            contracts::encode(&event).as_bytes(),
        );
    }
    wait_until(DEADLINE, "the payment of order 4", || {
        (db.count("SELECT count(*) FROM payments WHERE order_id = 4") == 1).then_some(())
    });
    worker.stop();

    let mut client = db.client();
    let ours: Vec<(i64, i64, i64, String, i64)> = client
        .query(
            "SELECT order_id, user_id, amount, status, floor(extract(epoch FROM created_at))::bigint
             FROM payments WHERE order_id < 4 ORDER BY order_id",
            &[],
        )
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4)))
        .collect();
    assert_eq!(ours, go_payments, "Go's payments kept as they were");
    assert_eq!(
        db.count("SELECT count(*) FROM processed_events"),
        3,
        "Go's two handled events and the new one; the redelivered one skipped"
    );
    assert_eq!(
        db.count("SELECT count(*) FROM events WHERE message_key = '3'"),
        1,
        "no second PaymentStatus for the event Go handled"
    );
    let new_status_event = db.count("SELECT event_id FROM events WHERE message_key = '4'");
    // After Go's 40 (ids drawn for duplicates stay unused: the sequence may have gaps).
    assert!(
        new_status_event > 40,
        "new event ids continue after Go's: {new_status_event}"
    );
    let payload: String = client
        .query_one(
            "SELECT payload::text FROM events WHERE event_id = $1",
            &[&unsent],
        )
        .unwrap()
        .get(0);
    let payload: serde_json::Value = serde_json::from_str(&payload).unwrap();
    assert_eq!(payload["event_id"], unsent);
    assert_eq!(payload["order_status"], "failed");
    let topic: String = client
        .query_one("SELECT topic FROM events WHERE event_id = $1", &[&unsent])
        .unwrap()
        .get(0);
    assert_eq!(topic, config.kafka_topic_status);
}

#[test]
fn an_undecided_go_payment_stops_the_take_over_and_changes_nothing() {
    let db = TestDatabase::new("payments_go_pending");
    let mut go = db.create_as_go(GoService::Payments);
    insert_go_payment(&mut go, 1, 2, 5, 700, true);
    go.batch_execute("INSERT INTO payments (order_id, user_id, total_amount) VALUES (9, 5, 100)")
        .unwrap();
    let before = snapshot(&mut go);

    let err = runtime().block_on(async {
        let config = config(&db, settings::BrokerList::single("127.0.0.1", 1));
        let shutdown = tokio_util::sync::CancellationToken::new();
        let running = payments::start(config, shutdown).await.unwrap();
        running
            .wait()
            .await
            .expect_err("payments must refuse this database")
    });
    let err = service_skeleton::ErrorChain(&err).to_string();
    testkit::assert_mentions(
        &err,
        &[
            "the Go payments service",
            "\"pending\" (1 payments)",
            "left unchanged",
        ],
    );
    assert_eq!(snapshot(&mut go), before);
}
