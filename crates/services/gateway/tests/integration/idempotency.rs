//! `POST /orders` with `Idempotency-Key` over real HTTP, through a real gateway to a
//! real orders on PostgreSQL: a replay is 200 with the first order's id and
//! `Idempotent-Replayed: true`, the key with another request 422, a bad key 400
//! naming the header, 50 racing requests one order (the others its id or 409), and
//! an expired key a new order.

use crate::common::{self, Answer, Gateway};
use orders::testing::{assert_one_keyed_order, keyed_row_counts as counts};
use reqwest::header::HeaderValue;
use serde_json::json;
use settings::GoDuration;

/// `POST /orders` with `body` and each of `keys` as an `Idempotency-Key` header.
async fn post(gateway: &Gateway, body: &str, keys: &[&[u8]]) -> Answer {
    let headers: Vec<_> = keys
        .iter()
        .map(|key| ("Idempotency-Key", HeaderValue::from_bytes(key).unwrap()))
        .collect();
    let body = Some(body.as_bytes().to_vec());
    gateway
        .send_with_headers("POST", "/orders", body, &headers)
        .await
}

const ORDER: &str =
    r#"{"user_id": 42, "items": [{"product_id": 1, "quantity": 2, "price": 1500}]}"#;

#[test]
fn a_replay_is_the_first_answer_with_idempotent_replayed_and_writes_nothing() {
    common::with_gateway("gateway_idem", async |_orders, gateway, db| {
        let first = post(&gateway, ORDER, &[b"rest-1"]).await;
        assert_eq!(first.status, 200, "{first:?}");
        assert_eq!(first.replayed, None);
        let order_id = first.body["order_id"].as_i64().unwrap();
        assert_eq!(first.body, json!({ "order_id": order_id }));

        for _ in 0..3 {
            let again = post(&gateway, ORDER, &[b"rest-1"]).await;
            assert_eq!(again.status, 200, "{again:?}");
            assert_eq!(again.body, json!({ "order_id": order_id }));
            assert_eq!(again.replayed.as_deref(), Some("true"));
        }
        assert_eq!(counts(&db.dsn()).await, (1, 1, 1), "no second order");
        // The order is the one stored.
        assert_eq!(gateway.get_order(order_id).await["order"]["user_id"], 42);
        // Without the header: a new order each time, as before.
        let plain = post(&gateway, ORDER, &[]).await;
        assert_eq!((plain.status, plain.replayed), (200, None));
        assert_ne!(plain.body["order_id"].as_i64(), Some(order_id));
        assert_eq!(counts(&db.dsn()).await, (2, 2, 1));
    });
}

#[test]
fn the_key_with_another_request_is_422_and_bad_keys_are_400_naming_the_header() {
    common::with_gateway("gateway_idem", async |_orders, gateway, db| {
        assert_eq!(post(&gateway, ORDER, &[b"rest-2"]).await.status, 200);

        let other =
            r#"{"user_id": 42, "items": [{"product_id": 1, "quantity": 3, "price": 1500}]}"#;
        let refused = post(&gateway, other, &[b"rest-2"]).await;
        assert_eq!(refused.status, 422, "{refused:?}");
        assert_eq!(refused.replayed, None);
        assert_eq!(
            refused.body,
            json!({"error": "idempotency-key \"rest-2\" was already used for a different request (another user_id or other items); use a new key for a new order",
                   "code": "FailedPrecondition"})
        );

        let long = vec![b'k'; 256];
        let bad_keys: [&[u8]; 4] = [b"", b"two words", "caf\u{e9}".as_bytes(), &long];
        for bad in bad_keys {
            let answer = post(&gateway, ORDER, &[bad]).await;
            assert_eq!(
                (answer.status, answer.body),
                (
                    400,
                    json!({"error": "Idempotency-Key header must be 1 to 255 visible ASCII characters (0x21-0x7E)",
                           "code": "InvalidArgument"})
                ),
                "{bad:?}"
            );
        }
        let twice = post(&gateway, ORDER, &[b"a", b"b"]).await;
        assert_eq!(
            (twice.status, twice.body),
            (
                400,
                json!({"error": "Idempotency-Key header must be given at most once",
                       "code": "InvalidArgument"})
            )
        );
        // The longest key is fine.
        let longest = vec![b'~'; 255];
        assert_eq!(post(&gateway, ORDER, &[&longest]).await.status, 200);
        assert_eq!(counts(&db.dsn()).await, (2, 2, 2), "nothing else written");
    });
}

#[test]
fn fifty_concurrent_posts_with_one_key_make_one_order() {
    common::with_gateway("gateway_idem", async |_orders, gateway, db| {
        let gateway = std::sync::Arc::new(gateway);
        let posts: Vec<_> = (0..50)
            .map(|_| {
                let gateway = gateway.clone();
                tokio::spawn(async move { post(&gateway, ORDER, &[b"rest-race"]).await })
            })
            .collect();
        let mut ids = Vec::new();
        for posted in posts {
            let posted = posted.await.unwrap();
            match posted.status {
                200 => ids.push(posted.body["order_id"].as_i64().unwrap()),
                409 => assert_eq!(posted.body["code"], "Aborted", "{posted:?}"),
                _ => panic!("neither the order nor 409: {posted:?}"),
            }
        }
        assert_one_keyed_order(&db.dsn(), ids).await;
    });
}

#[test]
fn after_the_ttl_the_key_is_gone_and_makes_a_new_order() {
    // Short, but long enough that the second key row is still there when counted
    // on a loaded machine (retention deletes it once the TTL has passed).
    let short_ttl = |config| orders::Config {
        orders_idempotency_ttl: GoDuration::from_secs(5),
        retention_interval: GoDuration::from_millis(100),
        ..config
    };
    common::with_gateway_configured("gateway_idem", short_ttl, async |_orders, gateway, db| {
        let first = post(&gateway, ORDER, &[b"rest-ttl"]).await;
        assert_eq!(first.status, 200);
        let dsn = db.dsn();
        testkit::wait_until_async(
            orders::testing::DEADLINE,
            "retention to delete the key",
            || {
                let dsn = dsn.clone();
                async move { (counts(&dsn).await.2 == 0).then_some(()) }
            },
        )
        .await;
        let second = post(&gateway, ORDER, &[b"rest-ttl"]).await;
        assert_eq!((second.status, second.replayed.as_deref()), (200, None));
        assert_ne!(second.body["order_id"], first.body["order_id"]);
        assert_eq!(counts(&db.dsn()).await, (2, 2, 1));
    });
}
