//! The payments handler on its own against real PostgreSQL (no broker): what it reports
//! to the `bus` consumer when a batch fails part-way.

use std::time::Duration;

use chrono::{SubsecRound, Utc};
use contracts::OrderCreated;
use contracts::PaymentOutcome::{Failed, Succeeded};
use ops_http::Metrics;
use payments::Processed::{AlreadyPaid, Decided, Duplicate};
use payments::{
    Decision, HandlerMetrics, OrderHandler, PaymentProvider, PaymentStore, Processed, ProviderError,
};
use testkit::TestDatabase;

/// The simulated rule, except that `flaky_order`'s second decision fails (the provider
/// is briefly unavailable).
struct FlakyProvider {
    flaky_order: i64,
    asked: u32,
}

impl PaymentProvider for FlakyProvider {
    fn decide(&mut self, order: &OrderCreated) -> Result<Decision, ProviderError> {
        if order.order_id == self.flaky_order {
            self.asked += 1;
            if self.asked == 2 {
                return Err(ProviderError::Unavailable("briefly unavailable".into()));
            }
        }
        Ok(payments::SimulatedProvider::outcome(order.order_id).into())
    }
}

fn order(event_id: i64, order_id: i64) -> OrderCreated {
    OrderCreated {
        event_id,
        order_id,
        user_id: 7,
        total_amount: 100,
        created_at: Utc::now().trunc_subsecs(3),
    }
}

/// A pool of two connections.
const TWO_CONNECTIONS: pgsetup::PoolOptions = pgsetup::PoolOptions {
    max_size: 2,
    connect_timeout: Duration::from_secs(5),
};

/// A new database with payments' schema, and a store on it (a pool of two
/// connections) that queues its statuses for the topic `statuses`.
fn payments_store(name: &str) -> (TestDatabase, PaymentStore) {
    let db = TestDatabase::new(name);
    let pool = pgsetup::prepare(&db.dsn(), payments::schema(), TWO_CONNECTIONS).unwrap();
    (db, PaymentStore::new(pool, "statuses".into()))
}

/// `values` as one poll of partition 0 of `orders`.
fn poll_of(values: &[String]) -> Vec<bus::Message<'_>> {
    testkit::worker::poll_of("orders", values)
}

/// Processes `orders` as one poll ([`poll_of`]); what was done with each.
fn process(
    store: &PaymentStore,
    orders: &[OrderCreated],
    provider: &mut dyn PaymentProvider,
) -> Vec<Processed> {
    let values: Vec<String> = orders.iter().map(contracts::encode).collect();
    store
        .process_batch(&poll_of(&values), provider)
        .unwrap()
        .iter()
        .map(|consumed| *consumed.outcome().expect("a valid OrderCreated"))
        .collect()
}

#[test]
fn a_batch_redone_message_by_message_reports_the_messages_it_committed() {
    let (db, store) = payments_store("payments_handler");
    // The database refuses order 2's payment: the batch transaction is rolled back
    // and redone message by message, so that only order 2 is dead-lettered.
    db.client()
        .batch_execute("ALTER TABLE payments ADD CONSTRAINT refuse_order_2 CHECK (order_id <> 2)")
        .unwrap();
    let metrics = Metrics::new();
    let mut handler = OrderHandler::new(
        store,
        FlakyProvider {
            flaky_order: 3,
            asked: 0,
        },
        HandlerMetrics::register(&metrics),
    );
    let values: Vec<String> = [order(101, 1), order(102, 2), order(103, 3)]
        .iter()
        .map(contracts::encode)
        .collect();
    let messages = poll_of(&values);

    // Redone one by one: order 1 is paid, order 2 dead-lettered, then the provider
    // fails on order 3. The first two are committed, and the failure says so.
    let failure = bus::Handler::handle_batch(&mut handler, &messages).unwrap_err();
    assert_eq!(failure.handled, 2, "{}", failure.error);
    assert!(
        failure.error.to_string().contains("briefly unavailable"),
        "{}",
        failure.error
    );
    assert_eq!(db.count("SELECT count(*) FROM payments"), 1);
    assert_eq!(
        db.count("SELECT count(*) FROM dead_letters WHERE kafka_offset = 1"),
        1
    );
    assert_eq!(
        db.count("SELECT count(*) FROM processed_events WHERE event_id = 103"),
        0
    );
    // The reason kept is PostgreSQL's own message, not the driver's bare "db error".
    let reason: String = db
        .client()
        .query_one("SELECT error FROM dead_letters WHERE kafka_offset = 1", &[])
        .unwrap()
        .get(0);
    assert!(
        reason.contains("violates check constraint \"refuse_order_2\""),
        "{reason}"
    );

    // The consumer retries from the first message not handled: order 3 is paid and
    // nothing was handled twice.
    bus::Handler::handle_batch(&mut handler, &messages[failure.handled..]).unwrap();
    assert_eq!(
        db.count("SELECT count(*) FROM payments WHERE order_id IN (1, 3)"),
        2
    );
    assert_eq!(db.count("SELECT count(*) FROM dead_letters"), 1);
    assert_eq!(
        metrics.value("payments_messages_processed_total"),
        Some(3.0)
    );
    assert_eq!(
        metrics
            .value("payments_duplicates_skipped_total")
            .unwrap_or(0.0),
        0.0
    );
    assert_eq!(metrics.value("payments_dead_letters_total"), Some(1.0));
}

/// Records, at each decision, how many sessions of the database had a transaction open.
struct WatchingProvider {
    watcher: postgres::Client,
    open_transactions_seen: Vec<i64>,
}

impl PaymentProvider for WatchingProvider {
    fn decide(&mut self, order: &OrderCreated) -> Result<Decision, ProviderError> {
        let open: i64 = self
            .watcher
            .query_one(
                "SELECT count(*) FROM pg_stat_activity
                 WHERE datname = current_database() AND pid <> pg_backend_pid()
                   AND xact_start IS NOT NULL",
                &[],
            )
            .map_err(|err| ProviderError::Unavailable(err.to_string()))?
            .get(0);
        self.open_transactions_seen.push(open);
        Ok(payments::SimulatedProvider::outcome(order.order_id).into())
    }
}

#[test]
fn payments_are_decided_before_the_transaction_that_records_them() {
    let (db, store) = payments_store("payments_decide_first");
    let mut provider = WatchingProvider {
        watcher: db.client(),
        open_transactions_seen: Vec::new(),
    };
    let orders = [order(201, 10), order(202, 11), order(201, 10)];
    let processed = process(&store, &orders, &mut provider);
    assert_eq!(processed, [Decided(Succeeded), Decided(Failed), Duplicate]);
    // Once per new event id, never with a transaction open on the database.
    assert_eq!(provider.open_transactions_seen, [0, 0]);
    // A redelivery is not decided again.
    let again = process(&store, &orders[..1], &mut provider);
    assert_eq!(again, [Duplicate]);
    assert_eq!(provider.open_transactions_seen.len(), 2);
    // Events for distinct orders (the one-statement path): the same, and the known
    // duplicate among them is not decided.
    let processed = process(&store, &[order(203, 12), order(201, 10)], &mut provider);
    assert_eq!(processed, [Decided(Succeeded), Duplicate]);
    assert_eq!(provider.open_transactions_seen, [0, 0, 0]);
}

/// Another worker records an event while this one's provider decides it: the
/// one-statement path skips it as a duplicate (no second payment, no second
/// `PaymentStatus`) and records the rest of the batch.
#[test]
fn an_event_another_worker_records_meanwhile_is_a_duplicate_of_the_batch() {
    struct RacingProvider {
        other_worker: postgres::Client,
        races: i64,
    }
    impl PaymentProvider for RacingProvider {
        fn decide(&mut self, order: &OrderCreated) -> Result<Decision, ProviderError> {
            if order.event_id == self.races {
                self.other_worker
                    .execute(
                        "INSERT INTO processed_events (event_id, order_id, kafka_topic, kafka_partition, kafka_offset)
                         VALUES ($1, $2, 'orders', 0, 99)",
                        &[&order.event_id, &order.order_id],
                    )
                    .map_err(|err| ProviderError::Unavailable(err.to_string()))?;
            }
            Ok(payments::SimulatedProvider::outcome(order.order_id).into())
        }
    }
    let (db, store) = payments_store("payments_race");
    let mut provider = RacingProvider {
        other_worker: db.client(),
        races: 402,
    };
    let processed = process(&store, &[order(401, 30), order(402, 31)], &mut provider);
    assert_eq!(processed, [Decided(Succeeded), Duplicate]);
    assert_eq!(db.count("SELECT count(*) FROM payments"), 1);
    assert_eq!(db.count("SELECT count(*) FROM events"), 1);
}

/// A batch of events for distinct orders is recorded in one statement with the same
/// outcomes as one by one: a new event pays its order and queues exactly one
/// `PaymentStatus` (carrying the outbox row's own event id), a processed event is a
/// duplicate, and a new event for an order already paid changes nothing.
#[test]
fn a_batch_for_distinct_orders_is_recorded_together_with_one_status_per_new_payment() {
    let (db, store) = payments_store("payments_together");
    let mut provider = payments::SimulatedProvider;
    let first = process(&store, &[order(301, 20), order(302, 21)], &mut provider);
    assert_eq!(first, [Decided(Succeeded), Decided(Failed)]);
    // 301 again (a redelivery), a new event for order 21 (already paid), order 23.
    let second = process(
        &store,
        &[order(301, 20), order(303, 21), order(304, 23)],
        &mut provider,
    );
    assert_eq!(second, [Duplicate, AlreadyPaid, Decided(Failed)]);
    assert_eq!(db.count("SELECT count(*) FROM payments"), 3);
    assert_eq!(db.count("SELECT count(*) FROM processed_events"), 4);
    let statuses: Vec<(i64, String, String, serde_json::Value)> = db
        .client()
        .query(
            "SELECT event_id, topic, message_key, payload FROM events ORDER BY event_id",
            &[],
        )
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2), row.get(3)))
        .collect();
    assert_eq!(
        statuses.len(),
        3,
        "one PaymentStatus per new payment: {statuses:?}"
    );
    for ((event_id, topic, key, payload), (order_id, outcome)) in
        statuses
            .iter()
            .zip([(20, "succeeded"), (21, "failed"), (23, "failed")])
    {
        assert_eq!(topic, "statuses");
        assert_eq!(key, &order_id.to_string());
        assert_eq!(payload["event_id"], *event_id, "{payload}");
        assert_eq!(payload["order_id"], order_id, "{payload}");
        assert_eq!(payload["order_status"], outcome, "{payload}");
    }
}
