//! Payments' throughput when every charge takes a provider round trip: the real
//! worker (`PAYMENTS_PROVIDER=stripe`) against a local server speaking Stripe's
//! PaymentIntents API that answers each charge after `--latency-ms`, with
//! `PAYMENTS_PROVIDER_CONCURRENCY` at each value of `--concurrency`, side by side.
//!
//! ```sh
//! cargo run --release -p payments --example provider_bench -- --orders 400 --latency-ms 50 --concurrency 1,16
//! ```
//!
//! Needs PostgreSQL on 127.0.0.1:5432 (`scripts/setup-test-tools.sh` starts it); the
//! broker is an in-process devbroker. Each run has its own database and topics; the
//! clock runs from the first order produced to the last payment committed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use chrono::Utc;
use contracts::OrderCreated;
use payments::Config;
use testkit::{TestDatabase, unique_name, wait_until, worker::Worker};

#[allow(dead_code)] // the bench uses the fake server only, not stripe-mock
#[path = "../tests/integration/stripe_support.rs"]
mod stripe_support;

use stripe_support::FakeStripe;

struct Args {
    orders: i64,
    latency: Duration,
    concurrency: Vec<u32>,
}

fn args() -> Args {
    let mut args = Args {
        orders: 400,
        latency: Duration::from_millis(50),
        concurrency: vec![1, 16],
    };
    let mut given = std::env::args().skip(1);
    while let Some(flag) = given.next() {
        let value = given
            .next()
            .unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--orders" => args.orders = value.parse().expect("--orders: a number"),
            "--latency-ms" => {
                args.latency = Duration::from_millis(value.parse().expect("--latency-ms: a number"))
            }
            "--concurrency" => {
                args.concurrency = value
                    .split(',')
                    .map(|n| {
                        n.trim()
                            .parse()
                            .expect("--concurrency: numbers, comma-separated")
                    })
                    .collect()
            }
            other => panic!("unknown flag {other}: --orders N --latency-ms MS --concurrency 1,16"),
        }
    }
    args
}

/// Orders per second for one `PAYMENTS_PROVIDER_CONCURRENCY`.
fn run(orders: i64, latency: Duration, concurrency: u32) -> f64 {
    let fake = FakeStripe::start();
    fake.set_latency(latency);
    let db = TestDatabase::new("payments_bench");
    let (mut worker, config) = Worker::start(
        "payments-bench",
        |broker| Config {
            payments_pg_dsn: db.dsn(),
            payments_health_addr: "127.0.0.1:0".parse().unwrap(),
            kafka: settings::KafkaConnection {
                brokers: broker.bootstrap().parse().unwrap(),
                ..Default::default()
            },
            kafka_topic_order: unique_name("orders"),
            kafka_topic_status: unique_name("statuses"),
            kafka_consumer_group: unique_name("payments"),
            payments_provider: "stripe".into(),
            payments_stripe_api_base: fake.base.clone(),
            payments_stripe_secret_key: settings::Secret::new("sk_test_bench"),
            payments_provider_concurrency: concurrency,
            ..Config::default()
        },
        payments::start,
    );
    // Ready: the database exists and the consumer runs.
    testkit::wait_http_ok(
        &format!("http://{}/readyz", worker.health_addr()),
        Duration::from_secs(30),
    );
    let started = Instant::now();
    for order_id in 1..=orders {
        let order = OrderCreated {
            event_id: order_id,
            order_id,
            user_id: 1,
            total_amount: 1000,
            created_at: Utc::now(),
        };
        worker.produce(
            &config.kafka_topic_order,
            &contracts::message_key(order_id),
            contracts::encode(&order).as_bytes(),
        );
    }
    wait_until(Duration::from_secs(600), "every order paid", || {
        (db.count("SELECT count(*) FROM payments") == orders).then_some(())
    });
    let elapsed = started.elapsed();
    assert_eq!(fake.charges(), u32::try_from(orders).unwrap());
    worker.stop();
    orders as f64 / elapsed.as_secs_f64()
}

fn main() {
    let args = args();
    println!(
        "payments through a provider answering in {:?}, {} orders per run",
        args.latency, args.orders
    );
    println!(
        "| PAYMENTS_PROVIDER_CONCURRENCY | payments/s | x concurrency {} |",
        args.concurrency[0]
    );
    println!("|---|---|---|");
    let mut first = None;
    for concurrency in args.concurrency {
        let rate = run(args.orders, args.latency, concurrency);
        let base = *first.get_or_insert(rate);
        println!("| {concurrency} | {rate:.0} | {:.2} |", rate / base);
    }
}
