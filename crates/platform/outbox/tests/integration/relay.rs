//! The relay against real PostgreSQL and an in-process devbroker.

use std::{
    collections::BTreeMap,
    net::TcpListener,
    time::{Duration, Instant},
};

use kafka::consumer::{Consumer, FetchOffset};
use ops_http::Metrics;
use testkit::{TestDatabase, unique_name, wait_until};
use tokio_util::sync::CancellationToken;

use crate::common;

const DEADLINE: Duration = Duration::from_secs(30);

/// A poll interval of `millis` milliseconds.
fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

fn relay_config(
    db: &TestDatabase,
    brokers: Vec<String>,
    poll_interval: Duration,
) -> outbox::RelayConfig {
    outbox::RelayConfig {
        dsn: db.dsn(),
        brokers,
        batch_size: 50,
        lease: Duration::from_secs(30),
        poll_interval,
        ack_timeout: Duration::from_secs(5),
        client_id: "outbox-test".to_owned(),
        kafka_client: bus::KafkaClient::default(),
        kafka_security: bus::KafkaSecurity::plaintext(),
        kafka_properties: bus::RdkafkaProperties::none(),
    }
}

/// A relay on its own thread, as a service runs it, publishing `db`'s outbox.
struct RunningRelay {
    shutdown: CancellationToken,
    handle: outbox::RelayHandle,
}

impl RunningRelay {
    /// Starts a relay on `pool` (of `db`) sending to `brokers`, polling every
    /// `poll_interval`, its metrics in `metrics`.
    fn start(
        db: &TestDatabase,
        pool: pgsetup::Pool,
        brokers: Vec<String>,
        poll_interval: Duration,
        metrics: &Metrics,
    ) -> Self {
        let shutdown = CancellationToken::new();
        let handle = outbox::spawn_relay(
            relay_config(db, brokers, poll_interval),
            pool,
            metrics,
            shutdown.clone(),
        )
        .unwrap();
        Self { shutdown, handle }
    }

    /// Shuts the relay down and waits for its thread.
    fn stop(self) {
        self.shutdown.cancel();
        self.handle.join().unwrap();
    }
}

/// Waits until every row of `db`'s outbox is marked sent (`what` names the wait).
fn wait_all_sent(db: &TestDatabase, what: &str) {
    wait_until(DEADLINE, what, || (unsent(db) == 0).then_some(()));
}

fn insert_events(db: &TestDatabase, topic: &str, count: usize) -> Vec<i64> {
    let mut client = db.client();
    (0..count)
        .map(|i| {
            let order_id = 1000 + i as i64;
            let payload = format!(r#"{{"n":{i},"order_id":{order_id}}}"#);
            client
                .query_one(
                    "INSERT INTO events (topic, message_key, payload) VALUES ($1, $2, $3::text::json) RETURNING event_id",
                    &[&topic, &order_id.to_string(), &payload],
                )
                .unwrap()
                .get(0)
        })
        .collect()
}

fn unsent(db: &TestDatabase) -> i64 {
    db.count("SELECT count(*) FROM events WHERE sent_at IS NULL")
}

/// Waits until every row of `db`'s outbox is marked sent, then asserts that `topic`
/// on `bootstrap` holds `n` messages: each row published once.
fn assert_all_published_once(db: &TestDatabase, bootstrap: &str, topic: &str, n: usize) {
    wait_all_sent(db, &format!("all {n} events marked sent"));
    let messages = read_topic(&[bootstrap.to_owned()], topic, n);
    assert_eq!(messages.len(), n, "every event published, none twice");
}

/// Reads `topic` from the start until `expected` messages arrived, then a little
/// longer so an unexpected duplicate would show: (key, value) pairs.
fn read_topic(brokers: &[String], topic: &str, expected: usize) -> Vec<(String, String)> {
    let mut consumer = wait_until(DEADLINE, "a consumer on the topic", || {
        Consumer::from_hosts(brokers.to_vec())
            .with_topic(topic.to_owned())
            .with_fallback_offset(FetchOffset::Earliest)
            .with_fetch_max_wait_time(Duration::from_millis(100))
            .create()
            .ok()
    });
    let mut seen = Vec::new();
    let start = Instant::now();
    let mut complete_since: Option<Instant> = None;
    while start.elapsed() < DEADLINE {
        if seen.len() >= expected {
            let since = *complete_since.get_or_insert_with(Instant::now);
            if since.elapsed() > Duration::from_millis(500) {
                break;
            }
        }
        for set in consumer.poll().unwrap().iter() {
            for message in set.messages() {
                seen.push((
                    String::from_utf8_lossy(message.key).into_owned(),
                    String::from_utf8_lossy(message.value).into_owned(),
                ));
            }
        }
    }
    seen
}

#[test]
fn publishes_new_events_keyed_by_order_and_marks_them_sent() {
    let broker = devbroker::spawn_background(devbroker::BrokerConfig::default()).unwrap();
    let (db, pool) = common::outbox_database("outbox");
    let topic = unique_name("order-topic");
    let metrics = Metrics::new();
    // A long poll interval: only NOTIFY can make the relay this prompt.
    let hour = Duration::from_secs(3600);
    let relay = RunningRelay::start(&db, pool, vec![broker.bootstrap()], hour, &metrics);
    std::thread::sleep(Duration::from_millis(300)); // let it reach its idle wait

    let ids = insert_events(&db, &topic, 5);
    wait_all_sent(&db, "all events marked sent");

    let messages = read_topic(&[broker.bootstrap()], &topic, 5);
    assert_eq!(messages.len(), 5, "each event published once");
    let by_key: BTreeMap<_, _> = messages.into_iter().collect();
    for i in 0..5 {
        let order_id = 1000 + i;
        assert_eq!(
            by_key.get(&order_id.to_string()).unwrap(),
            &format!(r#"{{"n":{i},"order_id":{order_id}}}"#)
        );
    }
    assert_eq!(ids.len(), 5);
    // Each published event's wait from insert to acknowledged publish is recorded.
    wait_until(DEADLINE, "publish metrics updated", || {
        let text = metrics.render();
        (text.contains("\noutbox_published_total 5\n")
            && text.contains("\noutbox_publish_delay_seconds_count 5\n"))
        .then_some(())
    });
    relay.stop();
}

#[test]
fn keeps_events_while_the_broker_is_down_and_sends_them_when_it_is_back() {
    // Reserve a port with nothing listening on it yet.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let bootstrap = format!("127.0.0.1:{port}");
    let (db, pool) = common::outbox_database("outbox");
    let topic = unique_name("order-topic");
    let brokers = vec![bootstrap.clone()];
    let relay = RunningRelay::start(&db, pool, brokers, ms(200), &Metrics::new());

    insert_events(&db, &topic, 3);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(unsent(&db), 3, "nothing is marked sent without a broker");

    let broker = devbroker::spawn_background(devbroker::BrokerConfig {
        listen: bootstrap.parse().unwrap(),
        ..Default::default()
    })
    .unwrap();
    // Events sent after the broker came up.
    assert_all_published_once(&db, &broker.bootstrap(), &topic, 3);
    relay.stop();
}

#[test]
fn two_relays_on_one_database_publish_each_event_once() {
    let broker = devbroker::spawn_background(devbroker::BrokerConfig::default()).unwrap();
    let (db, pool) = common::outbox_database("outbox");
    let topic = unique_name("order-topic");
    let relays: Vec<_> = (0..2)
        .map(|_| {
            let brokers = vec![broker.bootstrap()];
            RunningRelay::start(&db, pool.clone(), brokers, ms(50), &Metrics::new())
        })
        .collect();

    for _ in 0..10 {
        insert_events(&db, &topic, 20);
    }
    assert_all_published_once(&db, &broker.bootstrap(), &topic, 200);
    relays.into_iter().for_each(RunningRelay::stop);
}

#[test]
fn a_crashed_relays_claim_expires_and_its_rows_go_out() {
    let broker = devbroker::spawn_background(devbroker::BrokerConfig::default()).unwrap();
    let (db, pool) = common::outbox_database("outbox");
    let topic = unique_name("order-topic");
    insert_events(&db, &topic, 2);
    // As if a relay claimed the rows and died before publishing.
    db.client()
        .execute(
            "UPDATE events SET claimed_until = now() + interval '2 seconds'",
            &[],
        )
        .unwrap();

    let brokers = vec![broker.bootstrap()];
    let relay = RunningRelay::start(&db, pool, brokers, ms(100), &Metrics::new());
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        unsent(&db),
        2,
        "claimed rows are left alone while the lease holds"
    );
    // Rows published after the lease expired.
    assert_all_published_once(&db, &broker.bootstrap(), &topic, 2);
    relay.stop();
}

#[test]
fn rows_are_marked_sent_only_once_the_broker_acknowledged_them() {
    // The relay reaches the broker through a proxy that accepts connections and closes
    // them at once: the producer cannot connect, and no row may be marked sent.
    let broker = devbroker::spawn_background(devbroker::BrokerConfig::default()).unwrap();
    let proxy = testkit::TcpProxy::start(&broker.bootstrap()).unwrap();
    proxy.cut();
    let (db, pool) = common::outbox_database("outbox");
    let topic = unique_name("order-topic");
    let metrics = Metrics::new();
    let relay = RunningRelay::start(&db, pool, vec![proxy.addr()], ms(100), &metrics);
    insert_events(&db, &topic, 3);
    // Wait for failed attempts (each one claimed the rows, tried to publish, failed).
    wait_until(DEADLINE, "two failed publish attempts", || {
        (metrics
            .value("outbox_publish_failures_total")
            .unwrap_or(0.0)
            >= 2.0)
            .then_some(())
    });
    assert_eq!(
        unsent(&db),
        3,
        "nothing is marked sent without an acknowledgement"
    );
    assert_eq!(metrics.value("outbox_published_total").unwrap_or(0.0), 0.0);

    // The broker answers again: the same rows go out, each once, and only then are
    // they marked sent.
    proxy.restore();
    // Events sent once the broker acknowledges.
    assert_all_published_once(&db, &broker.bootstrap(), &topic, 3);
    wait_until(DEADLINE, "publish metric updated", || {
        (metrics.value("outbox_published_total").unwrap_or(0.0) == 3.0).then_some(())
    });
    relay.stop();
}

#[test]
fn one_statement_marks_the_last_batch_sent_and_claims_the_next_without_it() {
    let (db, pool) = common::outbox_database("outbox");
    let table = outbox::OutboxTable::new(pool);
    let first = insert_events(&db, "order-topic", 2);
    // A lease that has already run out when the next statement starts: the batch
    // being marked is claimable again, and must not be claimed by its own mark.
    let claimed: Vec<i64> = table
        .claim(10, Duration::ZERO)
        .unwrap()
        .iter()
        .map(|event| event.event_id)
        .collect();
    assert_eq!(claimed, first);
    let second = insert_events(&db, "order-topic", 3);
    let step = table
        .mark_sent_and_claim(&claimed, 10, Duration::from_secs(30))
        .unwrap();
    assert_eq!(step.waited.len(), 2, "both rows of the first batch marked");
    let next: Vec<i64> = step.claimed.iter().map(|event| event.event_id).collect();
    assert_eq!(next, second, "only the new rows claimed, oldest first");
    assert_eq!(unsent(&db), 3);
    // Marking again counts nothing: each row is marked (and timed) once.
    let again = table
        .mark_sent_and_claim(&claimed, 10, Duration::from_secs(30))
        .unwrap();
    assert!(
        again.waited.is_empty() && again.claimed.is_empty(),
        "{again:?}"
    );
}

/// The claim starts at the lowest unsent id: a row whose transaction drew a lower id
/// but committed after higher ids were claimed and marked sent is still claimed.
#[test]
fn a_row_committed_after_higher_ids_were_sent_is_still_claimed() {
    let (db, pool) = common::outbox_database("outbox");
    let table = outbox::OutboxTable::new(pool);
    let mut slow = db.client();
    let mut slow_tx = slow.transaction().unwrap();
    let late: i64 = slow_tx
        .query_one(
            "INSERT INTO events (topic, message_key, payload) VALUES ('order-topic', '1', '{}') RETURNING event_id",
            &[],
        )
        .unwrap()
        .get(0);
    let early = insert_events(&db, "order-topic", 3);
    assert!(early.iter().all(|&id| id > late));
    let claim_ids = || -> Vec<i64> {
        let claimed = table.claim(10, Duration::from_secs(30)).unwrap();
        claimed.iter().map(|event| event.event_id).collect()
    };
    let claimed = claim_ids();
    assert_eq!(claimed, early, "the uncommitted row is not visible yet");
    table.mark_sent(&claimed).unwrap();
    slow_tx.commit().unwrap();
    assert_eq!(claim_ids(), [late]);
}

/// A migration that changes the type of a column the claim returns makes the
/// statement prepared on a pooled connection stale: the relay's next attempt on that
/// connection fails once (and is retried), the one after works.
#[test]
fn a_claim_prepared_before_a_column_type_change_works_again_after_one_failure() {
    let (db, _) = common::outbox_database("outbox");
    // One connection, so every claim runs on the one that prepared the statement.
    let options = pgsetup::PoolOptions {
        max_size: 1,
        connect_timeout: Duration::from_secs(5),
    };
    let pool = pgsetup::prepare(&db.dsn(), outbox::migrations(), options).unwrap();
    let table = outbox::OutboxTable::new(pool);
    assert!(table.claim(10, Duration::from_secs(30)).unwrap().is_empty());
    db.client()
        .batch_execute("ALTER TABLE events ALTER COLUMN message_key TYPE varchar(200)")
        .unwrap();
    let ids = insert_events(&db, "order-topic", 2);
    let mut failures = 0;
    let claimed = loop {
        match table.claim(10, Duration::from_secs(30)) {
            Ok(claimed) => break claimed,
            Err(err) => {
                failures += 1;
                assert!(
                    failures == 1,
                    "still failing after {failures} attempts: {err}"
                );
            }
        }
    };
    let claimed: Vec<i64> = claimed.iter().map(|event| event.event_id).collect();
    assert_eq!(claimed, ids);
}

#[test]
fn the_relays_bookkeeping_leaves_every_pooled_connection_committing_durably() {
    // Claims and marks turn synchronous_commit off for their own transaction only: the
    // pool's connections serve orders and payments next, whose commits must wait for
    // the disk.
    let (db, pool) = common::outbox_database("outbox");
    let ids = insert_events(&db, "order-topic", 3);
    let table = outbox::OutboxTable::new(pool.clone());
    for _ in 0..4 {
        let claimed = table.claim(10, Duration::from_secs(30)).unwrap();
        let claimed_ids: Vec<i64> = claimed.iter().map(|event| event.event_id).collect();
        table.mark_sent(&claimed_ids).unwrap();
    }
    assert_eq!(unsent(&db), 0, "claimed and marked: {ids:?}");
    let mut connections: Vec<_> = (0..4).map(|_| pool.get().unwrap()).collect();
    for connection in &mut connections {
        let setting: String = connection
            .query_one("SHOW synchronous_commit", &[])
            .unwrap()
            .get(0);
        assert_eq!(setting, "on");
    }
}
