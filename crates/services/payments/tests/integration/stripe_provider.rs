//! The real `StripeProvider` against stripe-mock (the request is valid by Stripe's
//! OpenAPI specification) and against [`FakeStripe`] (what Stripe does on a decline,
//! a timeout, a 5xx, a 429, a connection lost after the charge), recorded by the
//! real store in PostgreSQL.

use std::time::{Duration, Instant};

use chrono::{SubsecRound, Utc};
use contracts::{OrderCreated, PaymentOutcome};
use ops_http::Metrics;
use payments::stripe::{ProviderMetrics, idempotency_key};
use payments::{
    HandlerMetrics, OrderHandler, PaymentProvider, PaymentStore, ProviderError, StripeProvider,
    StripeSettings,
};
use testkit::TestDatabase;

use crate::stripe_support::{FakeStripe, Step, StripeMock};

fn order(event_id: i64, order_id: i64) -> OrderCreated {
    OrderCreated {
        event_id,
        order_id,
        user_id: 7,
        total_amount: 2500 + order_id,
        created_at: Utc::now().trunc_subsecs(3),
    }
}

/// Test-mode settings for `base`, with short retry delays.
pub fn settings(base: &str) -> StripeSettings {
    StripeSettings {
        api_base: base.to_owned(),
        secret_key: settings::Secret::new("sk_test_123"),
        currency: "usd".into(),
        payment_method: "pm_card_visa".into(),
        timeout: Duration::from_millis(500),
        max_attempts: 5,
        concurrency: 16,
        breaker_threshold: 10,
        breaker_cooldown: Duration::from_secs(1),
        retry: backoff::RetryPolicy {
            initial: Duration::from_millis(10),
            max: Duration::from_millis(50),
        },
    }
}

fn provider(settings: StripeSettings) -> (StripeProvider, Metrics) {
    let metrics = Metrics::new();
    let provider = StripeProvider::new(
        settings,
        ProviderMetrics::register(&metrics),
        tokio_util::sync::CancellationToken::new(),
    )
    .unwrap();
    (provider, metrics)
}

fn payments_store(name: &str) -> (TestDatabase, PaymentStore) {
    let db = TestDatabase::new(name);
    let options = pgsetup::PoolOptions {
        max_size: 2,
        connect_timeout: Duration::from_secs(5),
    };
    let pool = pgsetup::prepare(&db.dsn(), payments::schema(), options).unwrap();
    (db, PaymentStore::new(pool, "statuses".into()))
}

#[test]
fn stripe_mock_accepts_every_parameter_and_its_payment_intent_decides() {
    let mock = StripeMock::start();
    let (mut stripe, metrics) = provider(settings(&mock.base));
    let orders: Vec<OrderCreated> = (1..=20).map(|n| order(100 + n, n)).collect();
    let asked: Vec<&OrderCreated> = orders.iter().collect();
    let answers = stripe.decide_all(&asked);
    assert_eq!(answers.len(), 20);
    for answer in answers {
        // stripe-mock validated the request (a wrong parameter is a 400, refused:
        // see below) and answered with its fixture PaymentIntent, whose status is
        // `requires_payment_method`: a failed payment, with its reason and id.
        let decision = answer.unwrap();
        assert_eq!(decision.outcome, PaymentOutcome::Failed);
        let reason = decision.reason.unwrap();
        assert!(reason.starts_with("requires_payment_method"), "{reason}");
        assert!(decision.reference.unwrap().starts_with("pi_"));
    }
    assert_eq!(
        metrics.value("payments_provider_calls_total{outcome=\"declined\"}"),
        Some(20.0)
    );
    assert_eq!(
        metrics.value("payments_provider_call_seconds_count{outcome=\"declined\"}"),
        Some(20.0)
    );

    // stripe-mock refuses what Stripe's specification does not allow: one unknown
    // parameter more, and the same request is a 400.
    let (status, body) = post_form(
        &format!("{}/v1/payment_intents", mock.base),
        "amount=2501&currency=usd&confirm=true&payment_method=pm_card_visa&bogus=1",
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("invalid_request_error"), "{body}");
}

/// A raw form POST with the test key: (status, body).
fn post_form(url: &str, form: &str) -> (u16, String) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let response = reqwest::Client::new()
            .post(url)
            .bearer_auth("sk_test_123")
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(form.to_owned())
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    })
}

#[test]
fn a_decline_is_recorded_failed_with_the_providers_reason_and_a_charge_paid() {
    let fake = FakeStripe::start();
    fake.decline(5);
    let (mut stripe, metrics) = provider(settings(&fake.base));
    let (db, store) = payments_store("payments_stripe_decline");
    let values: Vec<String> = [order(41, 4), order(51, 5)]
        .iter()
        .map(contracts::encode)
        .collect();
    store
        .process_batch(&testkit::worker::poll_of("orders", &values), &mut stripe)
        .unwrap();

    let rows = db
        .client()
        .query(
            "SELECT order_id, status, failure_reason, provider_payment_id FROM payments ORDER BY order_id",
            &[],
        )
        .unwrap();
    let rows: Vec<(i64, String, Option<String>, Option<String>)> = rows
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2), row.get(3)))
        .collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(
        (rows[0].0, rows[0].1.as_str(), &rows[0].2),
        (4, "succeeded", &None)
    );
    assert!(rows[0].3.as_deref().unwrap().starts_with("pi_fake"));
    assert_eq!((rows[1].0, rows[1].1.as_str()), (5, "failed"));
    assert_eq!(
        rows[1].2.as_deref(),
        Some("card_declined (insufficient_funds): Your card has insufficient funds.")
    );
    assert!(rows[1].3.as_deref().unwrap().starts_with("pi_fake"));
    assert_eq!(
        metrics.value("payments_provider_calls_total{outcome=\"declined\"}"),
        Some(1.0)
    );
    assert_eq!(
        metrics.value("payments_provider_calls_total{outcome=\"succeeded\"}"),
        Some(1.0)
    );

    // What was sent: Stripe's form parameters, the key, the idempotency key.
    let requests = fake.requests();
    assert_eq!(requests.len(), 2);
    let paid = requests
        .iter()
        .find(|request| request.form.get("metadata[order_id]").map(String::as_str) == Some("4"))
        .unwrap();
    assert_eq!(paid.path, "/v1/payment_intents");
    assert_eq!(paid.authorization.as_deref(), Some("Bearer sk_test_123"));
    assert_eq!(paid.idempotency_key, Some(idempotency_key(41)));
    assert_eq!(paid.idempotency_key.as_deref(), Some("order-platform-41"));
    for (name, value) in [
        ("amount", "2504"),
        ("currency", "usd"),
        ("confirm", "true"),
        ("payment_method", "pm_card_visa"),
        ("automatic_payment_methods[enabled]", "true"),
        ("automatic_payment_methods[allow_redirects]", "never"),
        ("metadata[event_id]", "41"),
    ] {
        assert_eq!(
            paid.form.get(name).map(String::as_str),
            Some(value),
            "{name}"
        );
    }
}

#[test]
fn a_timeout_a_500_and_a_429_are_retried_with_one_key_honouring_retry_after_then_paid() {
    let fake = FakeStripe::start();
    fake.plan([
        // Charged after the client gave up (timeout 500 ms): Stripe has it.
        Step::Slow(Duration::from_millis(900)),
        Step::Fail {
            status: 500,
            retry_after: None,
        },
        Step::Fail {
            status: 429,
            retry_after: Some(1),
        },
    ]);
    let (mut stripe, metrics) = provider(settings(&fake.base));
    let decision = stripe.decide(&order(61, 6)).unwrap();
    assert_eq!(decision.outcome, PaymentOutcome::Succeeded);
    // The answer is the charge made during the timed-out call.
    assert_eq!(decision.reference.as_deref(), Some("pi_fake1"));
    assert_eq!(fake.charges(), 1);
    let requests = fake.requests();
    assert_eq!(requests.len(), 4);
    for request in &requests {
        assert_eq!(
            request.idempotency_key.as_deref(),
            Some("order-platform-61")
        );
    }
    let waited = requests[3].at - requests[2].at;
    assert!(
        waited >= Duration::from_secs(1),
        "Retry-After: 1 not honoured: {waited:?}"
    );
    for (outcome, count) in [("timeout", 1.0), ("retryable", 2.0), ("succeeded", 1.0)] {
        assert_eq!(
            metrics.value(&format!(
                "payments_provider_calls_total{{outcome=\"{outcome}\"}}"
            )),
            Some(count),
            "{outcome}"
        );
    }
}

#[test]
fn a_connection_dropped_after_the_charge_is_retried_with_the_same_key_and_charged_once() {
    let fake = FakeStripe::start();
    fake.plan([Step::ChargeThenDrop]);
    let (mut stripe, metrics) = provider(settings(&fake.base));
    let decision = stripe.decide(&order(71, 8)).unwrap();
    assert_eq!(decision.outcome, PaymentOutcome::Succeeded);
    assert_eq!(decision.reference.as_deref(), Some("pi_fake1"));
    let requests = fake.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].idempotency_key, requests[1].idempotency_key);
    assert_eq!(fake.charges(), 1);
    assert_eq!(
        metrics.value("payments_provider_calls_total{outcome=\"network\"}"),
        Some(1.0)
    );
}

#[test]
fn no_answer_after_the_attempts_is_a_dead_letter_never_a_failed_payment_and_it_is_charged_later() {
    let fake = FakeStripe::start();
    let unavailable = Step::Fail {
        status: 503,
        retry_after: None,
    };
    // The first call charges but its answer is lost; the next two get 503.
    fake.plan([Step::ChargeThenDrop, unavailable.clone(), unavailable]);
    let mut stripe_settings = settings(&fake.base);
    stripe_settings.max_attempts = 3;
    let (stripe, _metrics) = provider(stripe_settings);
    let (db, store) = payments_store("payments_stripe_gave_up");
    let metrics = Metrics::new();
    let mut handler = OrderHandler::new(store, stripe, HandlerMetrics::register(&metrics));
    let values = [contracts::encode(&order(81, 10))];
    let poll = testkit::worker::poll_of("orders", &values);

    bus::Handler::handle_batch(&mut handler, &poll).unwrap();
    assert_eq!(fake.requests().len(), 3);
    assert_eq!(
        db.count("SELECT count(*) FROM payments"),
        0,
        "never recorded as failed"
    );
    let reason: String = db
        .client()
        .query_one("SELECT error FROM dead_letters", &[])
        .unwrap()
        .get(0);
    assert!(
        reason.contains("after 3 attempts") && reason.contains("HTTP 503"),
        "{reason}"
    );
    assert_eq!(metrics.value("payments_dead_letters_total"), Some(1.0));

    // Stripe is back and the message is handled again (what a replay does): the
    // same idempotency key gets the first charge back, nothing is charged twice.
    bus::Handler::handle_batch(&mut handler, &poll).unwrap();
    assert_eq!(
        db.count("SELECT count(*) FROM payments WHERE order_id = 10 AND status = 'succeeded' AND provider_payment_id = 'pi_fake1'"),
        1
    );
    assert_eq!(fake.charges(), 1);
}

#[test]
fn a_polls_charges_run_concurrently() {
    let fake = FakeStripe::start();
    fake.set_latency(Duration::from_millis(200));
    let (mut stripe, _) = provider(settings(&fake.base));
    let orders: Vec<OrderCreated> = (1..=16).map(|n| order(900 + n, n)).collect();
    let asked: Vec<&OrderCreated> = orders.iter().collect();
    let started = Instant::now();
    let answers = stripe.decide_all(&asked);
    let elapsed = started.elapsed();
    assert!(
        answers
            .iter()
            .all(|answer| matches!(answer, Ok(d) if d.outcome == PaymentOutcome::Succeeded))
    );
    // One after the other they would take 16 x 200 ms = 3.2 s.
    assert!(elapsed < Duration::from_millis(1500), "{elapsed:?}");
    assert_eq!(fake.charges(), 16);
}

#[test]
fn an_open_circuit_makes_no_call_and_an_answer_closes_it() {
    let fake = FakeStripe::start();
    fake.fail_all(500);
    let mut stripe_settings = settings(&fake.base);
    stripe_settings.breaker_threshold = 2;
    stripe_settings.breaker_cooldown = Duration::from_millis(500);
    let (mut stripe, _) = provider(stripe_settings);
    let breaker = stripe.breaker();
    // Two calls without an answer open it; the third attempt is not made.
    let err = stripe.decide(&order(11, 12)).unwrap_err();
    assert!(
        matches!(&err, ProviderError::Unavailable(why) if why.contains("circuit open")),
        "{err}"
    );
    assert_eq!(fake.requests().len(), 2);
    assert!(breaker.check().is_err());
    assert!(stripe.decide(&order(11, 12)).is_err());
    assert_eq!(fake.requests().len(), 2, "no call while open");
    fake.heal();
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(
        stripe.decide(&order(11, 12)).unwrap().outcome,
        PaymentOutcome::Succeeded
    );
    assert!(breaker.check().is_ok());
}
