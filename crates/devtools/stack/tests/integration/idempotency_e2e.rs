//! Idempotency keys end to end: 50 concurrent `POST /orders` with one
//! `Idempotency-Key` through the real gateway make one order, one outbox row, one
//! payment and one notification in Redis. The platform runs in this process (as the
//! bench runs it, `stack::Platform`): devbroker, orders, payments, notifications and the gateway, on the
//! local PostgreSQL and Redis, with fresh databases and a Redis key prefix of its own.

use std::{sync::Arc, time::Duration};

use stack::{DevbrokerOptions, Platform, PlatformConfig};
use testkit::{TestDatabase, runtime, unique_name};
use tokio_util::sync::CancellationToken;

const SETTLE: Duration = Duration::from_secs(90);

#[test]
fn fifty_concurrent_posts_with_one_key_make_one_order_one_payment_one_notification() {
    let orders_db = TestDatabase::new("idem_e2e_orders");
    let payments_db = TestDatabase::new("idem_e2e_payments");
    let prefix = format!("{}:", unique_name("idem_e2e"));
    let runtime = runtime();
    runtime.block_on(async {
        let shutdown = CancellationToken::new();
        let _stop = shutdown.clone().drop_guard();
        let mut config = PlatformConfig::local(
            orders_db.dsn(),
            payments_db.dsn(),
            settings::KafkaConnection::default(),
            prefix.clone(),
        );
        let broker = stack::start_devbroker(&mut config, DevbrokerOptions::default())
            .await
            .unwrap();
        let platform = Platform::start(config, &shutdown).await.unwrap();
        platform.wait_ready(SETTLE).await.unwrap();

        let url = Arc::new(platform.orders_url());
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        let posts: Vec<_> = (0..50)
            .map(|_| {
                let (http, url) = (http.clone(), url.clone());
                tokio::spawn(async move {
                    let response = http
                        .post(url.as_str())
                        .header("Idempotency-Key", "e2e-one-order")
                        .header("content-type", "application/json")
                        .body(r#"{"user_id": 77, "items": [{"product_id": 7, "quantity": 2, "price": 150}]}"#)
                        .send()
                        .await
                        .unwrap();
                    let status = response.status().as_u16();
                    let body: serde_json::Value = response.json().await.unwrap();
                    (status, body)
                })
            })
            .collect();
        let mut ids = Vec::new();
        for post in posts {
            match post.await.unwrap() {
                (200, body) => ids.push(body["order_id"].as_i64().unwrap()),
                (409, body) => assert_eq!(body["code"], "Aborted", "{body}"),
                other => panic!("neither the order nor 409: {other:?}"),
            }
        }
        assert!(!ids.is_empty());
        ids.dedup();
        assert_eq!(ids.len(), 1, "one order id in every answer: {ids:?}");
        let order_id = ids[0];

        // The order's notification arrives...
        let mut redis = redis::Client::open(testkit::redis_url())
            .unwrap()
            .get_connection()
            .unwrap();
        let key = format!("{prefix}{order_id}");
        let notification = tokio::task::block_in_place(|| {
            testkit::wait_until(SETTLE, "the order's notification in Redis", || {
                redis::cmd("GET")
                    .arg(&key)
                    .query::<Option<String>>(&mut redis)
                    .unwrap()
            })
        });
        let notification: serde_json::Value = serde_json::from_str(&notification).unwrap();
        assert_eq!(notification["order_id"], order_id);
        // ... and it is the only one: one order, one outbox row, one payment.
        let [orders_rows, events] = testkit::row_counts(&orders_db.dsn(), ["orders", "events"]).await;
        assert_eq!((orders_rows, events), (1, 1));
        let [payments_rows] = testkit::row_counts(&payments_db.dsn(), ["payments"]).await;
        assert_eq!(payments_rows, 1, "one payment");
        let keys: Vec<String> = tokio::task::block_in_place(|| {
            redis::cmd("KEYS")
                .arg(format!("{prefix}*"))
                .query(&mut redis)
                .unwrap()
        });
        assert_eq!(keys, vec![key.clone()], "one notification");
        let _: () = tokio::task::block_in_place(|| {
            redis::cmd("DEL").arg(&key).query(&mut redis).unwrap()
        });

        shutdown.cancel();
        platform.wait(&shutdown).await;
        broker.shutdown().await;
    });
}
