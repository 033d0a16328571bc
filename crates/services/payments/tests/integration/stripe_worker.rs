//! The payments worker with `PAYMENTS_PROVIDER=stripe`, against real PostgreSQL, an
//! in-process devbroker, and stripe-mock or [`FakeStripe`]: end to end, duplicates,
//! the circuit breaker seen by `/readyz`, a dead letter replayed, and the binary
//! killed (`kill -9`) or stopped (SIGTERM) between the charge and the commit.

use std::{
    process::{Command, Stdio},
    time::Duration,
};

use payments::Config;
use testkit::{KillOnDrop, TestDatabase, unique_name, wait_until, worker::producer};

use crate::stripe_support::{FakeStripe, Step, StripeMock};
use crate::worker::{DEADLINE, Harness, order};

/// `config` set to charge through Stripe at `base` with a test key.
fn through_stripe(config: &mut Config, base: &str) {
    config.payments_provider = "stripe".into();
    config.payments_stripe_api_base = base.into();
    config.payments_stripe_secret_key = settings::Secret::new("sk_test_123");
    config.payments_provider_timeout = settings::GoDuration::from_secs(2);
}

/// `/readyz`: (status, body).
fn readyz(h: &Harness) -> (u16, String) {
    testkit::http_request("GET", &format!("http://{}/readyz", h.health_addr()), None)
        .unwrap_or((0, String::new()))
}

#[test]
fn the_worker_charges_each_order_through_stripe_mock_and_records_its_answer() {
    let mock = StripeMock::start();
    let mut h = Harness::start(|config, _| through_stripe(config, &mock.base));
    for n in 1..=3 {
        h.produce_order(&order(300 + n, 30 + n));
    }
    for n in 1..=3 {
        // stripe-mock's fixture PaymentIntent is `requires_payment_method`.
        assert_eq!(h.wait_for_payment(30 + n), "failed");
    }
    let rows =
        h.db.client()
            .query(
                "SELECT failure_reason, provider_payment_id FROM payments ORDER BY order_id",
                &[],
            )
            .unwrap();
    assert_eq!(rows.len(), 3);
    for row in rows {
        let reason: String = row.get(0);
        let id: String = row.get(1);
        assert!(reason.starts_with("requires_payment_method"), "{reason}");
        assert!(id.starts_with("pi_"), "{id}");
    }
    assert_eq!(h.db.count("SELECT count(*) FROM events"), 3);
    assert_eq!(
        h.metric("payments_provider_calls_total{outcome=\"declined\"}"),
        Some(3)
    );
    let (status, body) = wait_until(DEADLINE, "/readyz 200", || {
        Some(readyz(&h)).filter(|(status, _)| *status == 200)
    });
    assert_eq!(status, 200);
    assert!(body.contains("\"provider\":\"ok\""), "{body}");
    h.stop();
}

#[test]
fn a_burst_of_duplicates_of_one_event_is_charged_once() {
    let fake = FakeStripe::start();
    let mut h = Harness::start(|config, _| through_stripe(config, &fake.base));
    let event = order(400, 40);
    for _ in 0..20 {
        h.produce_order(&event);
    }
    h.wait_for_metric("payments_messages_processed_total", 20);
    assert_eq!(h.wait_for_payment(40), "succeeded");
    assert_eq!(fake.charges(), 1);
    assert_eq!(h.db.count("SELECT count(*) FROM payments"), 1);
    assert_eq!(h.db.count("SELECT count(*) FROM events"), 1);
    assert_eq!(h.metric("payments_duplicates_skipped_total"), Some(19));
    // Every request, if more than one was made, carried the one key.
    for request in fake.requests() {
        assert_eq!(
            request.idempotency_key.as_deref(),
            Some("order-platform-400")
        );
    }
    h.stop();
}

#[test]
fn the_circuit_opens_readiness_says_not_ready_then_it_closes_and_the_order_is_paid() {
    let fake = FakeStripe::start();
    fake.fail_all(503);
    let mut h = Harness::start(|config, _| {
        through_stripe(config, &fake.base);
        config.payments_provider_breaker_threshold = 2;
        config.payments_provider_breaker_cooldown = settings::GoDuration::from_secs(2);
        // The attempts run out as the circuit opens: Stripe as a whole is down, so
        // the message waits rather than going to dead letters.
        config.payments_provider_max_attempts = 2;
    });
    h.produce_order(&order(500, 50));
    let (_, body) = wait_until(DEADLINE, "/readyz 503: the provider's circuit open", || {
        Some(readyz(&h)).filter(|(status, body)| *status == 503 && body.contains("circuit open"))
    });
    assert!(body.contains("\"provider\":\"circuit open"), "{body}");
    assert!(body.contains("HTTP 503"), "{body}");
    // Waiting, not failed, not dead-lettered.
    assert_eq!(h.db.count("SELECT count(*) FROM payments"), 0);
    assert_eq!(h.db.count("SELECT count(*) FROM dead_letters"), 0);
    // While open, calls are few: at most one trial per cooldown.
    let calls_while_open = fake.requests().len();
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        fake.requests().len() <= calls_while_open + 1,
        "{calls_while_open} then {}",
        fake.requests().len()
    );

    fake.heal();
    assert_eq!(h.wait_for_payment(50), "succeeded");
    wait_until(DEADLINE, "/readyz 200 again", || {
        Some(readyz(&h)).filter(|(status, _)| *status == 200)
    });
    assert_eq!(fake.charges(), 1);
    assert_eq!(h.db.count("SELECT count(*) FROM dead_letters"), 0);
    h.stop();
}

#[test]
fn an_order_dead_lettered_after_its_attempts_is_charged_once_by_a_replay() {
    let fake = FakeStripe::start();
    let unavailable = Step::Fail {
        status: 503,
        retry_after: None,
    };
    // The charge is made but its answer lost, then two 503s: 3 attempts, given up.
    fake.plan([Step::ChargeThenDrop, unavailable.clone(), unavailable]);
    let mut h = Harness::start(|config, _| {
        through_stripe(config, &fake.base);
        config.payments_provider_max_attempts = 3;
    });
    h.produce_order(&order(600, 60));
    wait_until(DEADLINE, "the order to be dead-lettered", || {
        // The worker creates the database: it may not exist yet.
        let mut client = postgres::Client::connect(&h.db.dsn(), postgres::NoTls).ok()?;
        let row = client
            .query_one("SELECT count(*) FROM dead_letters", &[])
            .ok()?;
        (row.get::<_, i64>(0) == 1).then_some(())
    });
    assert_eq!(h.db.count("SELECT count(*) FROM payments"), 0);

    let output = Command::new(testkit::binary("payments"))
        .args(["dead-letters", "replay", "--all"])
        .env("PAYMENTS_PG_DSN", h.db.dsn())
        .env("KAFKA_BROKERS", h.worker.broker.bootstrap())
        .env_remove("PAYMENTS_CONFIG")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(h.wait_for_payment(60), "succeeded");
    // The replay's charge is the first one, given back under the same key.
    assert_eq!(fake.charges(), 1);
    assert_eq!(
        h.db.count("SELECT count(*) FROM payments WHERE provider_payment_id = 'pi_fake1'"),
        1
    );
    assert_eq!(h.db.count("SELECT count(*) FROM dead_letters"), 0);
    h.stop();
}

#[test]
fn kill_9_between_the_charge_and_the_commit_charges_once_after_a_restart() {
    let fake = FakeStripe::start();
    // The first call is answered after 3 s: the binary is killed meanwhile, and
    // Stripe makes the charge all the same.
    fake.plan([Step::Slow(Duration::from_secs(3))]);
    let broker = devbroker::spawn_background(devbroker::BrokerConfig::default()).unwrap();
    let db = TestDatabase::new("payments_stripe_kill");
    let topic = unique_name("orders");
    let (status_topic, group) = (unique_name("statuses"), unique_name("payments"));
    let spawn = || spawn_binary(&db, &broker, &topic, &status_topic, &group, &fake.base);
    let mut child = spawn();
    let mut producer = producer(&broker, "payments-test");
    producer
        .send(bus::Record {
            topic: &topic,
            key: b"70",
            value: contracts::encode(&order(700, 70)).as_bytes(),
            headers: &[],
        })
        .unwrap();
    wait_until(DEADLINE, "the charge to be asked for", || {
        (!fake.requests().is_empty()).then_some(())
    });
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    wait_until(DEADLINE, "Stripe to make the charge", || {
        (fake.charges() == 1).then_some(())
    });
    assert_eq!(db.count("SELECT count(*) FROM payments"), 0);

    // Restarted: the uncommitted message is redelivered and charged again under
    // the same key, which gives the first charge back.
    let mut restarted = spawn();
    wait_for_binary_payment(&db, 70);
    assert_eq!(fake.charges(), 1);
    assert_eq!(db.count("SELECT count(*) FROM payments"), 1);
    assert_eq!(
        db.count("SELECT count(*) FROM payments WHERE provider_payment_id = 'pi_fake1' AND status = 'succeeded'"),
        1
    );
    let requests = fake.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].idempotency_key, requests[1].idempotency_key);
    let status = restarted.terminate(DEADLINE);
    assert!(status.success(), "exit status {status:?}");
}

#[test]
fn sigterm_during_a_slow_charge_stops_at_once_and_the_restart_charges_once() {
    let fake = FakeStripe::start();
    // Stripe takes 2 s; a request with the same key meanwhile gets 409 (key in use).
    fake.plan([Step::Slow(Duration::from_secs(2))]);
    let broker = devbroker::spawn_background(devbroker::BrokerConfig::default()).unwrap();
    let db = TestDatabase::new("payments_stripe_term");
    let topic = unique_name("orders");
    let (status_topic, group) = (unique_name("statuses"), unique_name("payments"));
    let spawn = || spawn_binary(&db, &broker, &topic, &status_topic, &group, &fake.base);
    let mut child = spawn();
    producer(&broker, "payments-test")
        .send(bus::Record {
            topic: &topic,
            key: b"80",
            value: contracts::encode(&order(800, 80)).as_bytes(),
            headers: &[],
        })
        .unwrap();
    wait_until(DEADLINE, "the charge to be asked for", || {
        (!fake.requests().is_empty()).then_some(())
    });
    // The charge in flight does not hold the shutdown (PAYMENTS_PROVIDER_TIMEOUT is
    // 10 s): the worker leaves the message uncommitted and exits.
    let asked = std::time::Instant::now();
    let status = child.terminate(DEADLINE);
    assert!(status.success(), "exit status {status:?}");
    assert!(
        asked.elapsed() < Duration::from_millis(1500),
        "{:?}",
        asked.elapsed()
    );
    assert_eq!(db.count("SELECT count(*) FROM payments"), 0);

    let mut restarted = spawn();
    wait_for_binary_payment(&db, 80);
    assert_eq!(fake.charges(), 1);
    assert_eq!(
        db.count("SELECT count(*) FROM payments WHERE provider_payment_id = 'pi_fake1'"),
        1
    );
    for request in fake.requests() {
        assert_eq!(
            request.idempotency_key.as_deref(),
            Some("order-platform-800")
        );
    }
    let status = restarted.terminate(DEADLINE);
    assert!(status.success(), "exit status {status:?}");
}

/// Waits until the binary, which creates its database, has paid `order_id`.
fn wait_for_binary_payment(db: &TestDatabase, order_id: i64) {
    wait_until(
        DEADLINE,
        &format!("the binary to pay order {order_id}"),
        || {
            let mut client = postgres::Client::connect(&db.dsn(), postgres::NoTls).ok()?;
            client
                .query_opt("SELECT 1 FROM payments WHERE order_id = $1", &[&order_id])
                .ok()?
                .map(|_| ())
        },
    );
}

/// The payments binary charging through Stripe at `stripe_base`.
fn spawn_binary(
    db: &TestDatabase,
    broker: &devbroker::BackgroundBroker,
    topic: &str,
    status_topic: &str,
    group: &str,
    stripe_base: &str,
) -> KillOnDrop {
    KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_payments"))
            .env("PAYMENTS_PG_DSN", db.dsn())
            .env("PAYMENTS_HEALTH_ADDR", "127.0.0.1:0")
            .env("KAFKA_BROKERS", broker.bootstrap())
            .env("KAFKA_TOPIC_ORDER", topic)
            .env("KAFKA_TOPIC_STATUS", status_topic)
            .env("KAFKA_CONSUMER_GROUP", group)
            .env("PAYMENTS_PROVIDER", "stripe")
            .env("PAYMENTS_STRIPE_API_BASE", stripe_base)
            .env("PAYMENTS_STRIPE_SECRET_KEY", "sk_test_123")
            .env("PAYMENTS_PROVIDER_TIMEOUT", "10s")
            // The restarted worker's calls meet the first one's key in use (409)
            // until it is done: retried, without opening the circuit.
            .env("PAYMENTS_PROVIDER_MAX_ATTEMPTS", "20")
            .env("PAYMENTS_PROVIDER_BREAKER_THRESHOLD", "20")
            .env_remove("PAYMENTS_CONFIG")
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}
