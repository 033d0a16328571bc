//! CreateOrder and GetOrder over real gRPC against real PostgreSQL: the happy path,
//! the outbox row, and every bad input with its status and message.

use chrono::{DateTime, Utc};
use orders::testing::{item, request, row_counts, with_orders};
use proto::v1::{GetOrderRequest, OrderStatus};
use serde_json::{Value, json};
use testkit::with_db;
use tonic::Code;

#[test]
fn create_then_get_and_the_outbox_row_matches_the_contract() {
    with_orders("orders", async |orders, db| {
        let mut client = orders.client().await;

        let order_id = client
            .create_order(request(7, vec![item(11, 2, 150), item(12, 1, 99)]))
            .await
            .unwrap()
            .into_inner()
            .order_id;
        assert!(order_id > 0);

        let order = client
            .get_order(GetOrderRequest { order_id })
            .await
            .unwrap()
            .into_inner()
            .order
            .unwrap();
        assert_eq!(order.order_id, order_id);
        assert_eq!(order.user_id, 7);
        assert_eq!(order.status, OrderStatus::New as i32);
        assert_eq!(order.items, vec![item(11, 2, 150), item(12, 1, 99)]);
        assert_eq!(order.total_amount.unwrap().money, 399);
        let created = order.created_at.unwrap();
        assert_eq!(Some(created), order.updated_at);

        let (event_id, topic, key, payload, stored_created_at) = with_db(&db.dsn(), |client| {
            let rows = client
                .query(
                    "SELECT e.event_id, e.topic, e.message_key, e.payload::text, o.created_at
                     FROM events e, orders o",
                    &[],
                )
                .unwrap();
            assert_eq!(rows.len(), 1, "one order, one outbox row");
            let row = &rows[0];
            (
                row.get::<_, i64>(0),
                row.get::<_, String>(1),
                row.get::<_, String>(2),
                row.get::<_, String>(3),
                row.get::<_, DateTime<Utc>>(4),
            )
        })
        .await;
        assert_eq!(topic, "order-topic");
        assert_eq!(key, order_id.to_string());
        let payload: Value = serde_json::from_str(&payload).unwrap();
        let created_at = payload["created_at"].as_str().unwrap().to_owned();
        assert_eq!(
            payload,
            json!({"event_id": event_id, "order_id": order_id, "user_id": 7,
                   "total_amount": 399, "created_at": created_at}),
            "exactly the OrderCreated fields"
        );
        let parsed = DateTime::parse_from_rfc3339(&created_at)
            .unwrap_or_else(|err| panic!("created_at {created_at:?} is not RFC 3339: {err}"));
        assert_eq!(parsed.with_timezone(&Utc), stored_created_at);
        assert_eq!(
            (created.seconds, created.nanos as u32),
            (
                stored_created_at.timestamp(),
                stored_created_at.timestamp_subsec_nanos()
            )
        );
        orders.stop().await;
    });
}

#[test]
fn bad_create_requests_are_invalid_argument_naming_the_field_and_store_nothing() {
    with_orders("orders", async |orders, db| {
        let mut client = orders.client().await;
        let cases = vec![
            (
                request(0, vec![item(1, 1, 1)]),
                "user_id must be positive, got 0",
            ),
            (
                request(-5, vec![item(1, 1, 1)]),
                "user_id must be positive, got -5",
            ),
            (request(1, vec![]), "items must not be empty"),
            (
                request(1, vec![item(1, 1, 1), item(0, 1, 1)]),
                "items[1].product_id must be positive, got 0",
            ),
            (
                request(1, vec![item(-3, 1, 1)]),
                "items[0].product_id must be positive, got -3",
            ),
            (
                request(1, vec![item(1, 0, 1)]),
                "items[0].quantity must be at least 1, got 0",
            ),
            (
                request(1, vec![item(1, -2, 1)]),
                "items[0].quantity must be at least 1, got -2",
            ),
            (
                request(1, vec![item(1, 1, -1)]),
                "items[0].price must be positive, got -1",
            ),
            // The Go orders service's rule: a price of 0 is refused too.
            (
                request(1, vec![item(1, 1, 0)]),
                "items[0].price must be positive, got 0",
            ),
            (
                request(1, vec![item(1, 1, 1); 1001]),
                "items: at most 1000 items per order, got 1001",
            ),
            (
                request(1, vec![item(1, 1, i64::MAX), item(2, 1, 1)]),
                "total_amount overflows int64 at items[1] (quantity * price summed over the order)",
            ),
            (
                request(1, vec![item(1, 2, i64::MAX / 2 + 1)]),
                "total_amount overflows int64 at items[0] (quantity * price summed over the order)",
            ),
        ];
        let mut missing_price = item(1, 1, 1);
        missing_price.price = None;
        let cases = cases.into_iter().chain([(
            request(1, vec![missing_price]),
            "items[0].price is required",
        )]);
        for (bad, message) in cases {
            let status = client.create_order(bad).await.unwrap_err();
            assert_eq!(
                status.code(),
                Code::InvalidArgument,
                "{message}: {status:?}"
            );
            assert_eq!(status.message(), message);
        }
        assert_eq!(
            row_counts(&db.dsn()).await,
            (0, 0, 0),
            "a failed CreateOrder leaves no order, no item and no outbox row"
        );

        // The limits themselves are allowed (the smallest price is 1).
        let edge = client
            .create_order(request(1, vec![item(1, 1, 1); 1000]))
            .await
            .unwrap()
            .into_inner()
            .order_id;
        let max = client
            .create_order(request(1, vec![item(1, 1, i64::MAX)]))
            .await
            .unwrap()
            .into_inner()
            .order_id;
        assert!(edge > 0 && max > edge);
        assert_eq!(row_counts(&db.dsn()).await, (2, 1001, 2));
        orders.stop().await;
    });
}

#[test]
fn get_order_unknown_is_not_found_and_bad_ids_are_invalid() {
    with_orders("orders", async |orders, _db| {
        let mut client = orders.client().await;
        let status = client
            .get_order(GetOrderRequest { order_id: 424242 })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::NotFound);
        assert_eq!(status.message(), "order 424242 not found");
        for order_id in [0, -1] {
            let status = client
                .get_order(GetOrderRequest { order_id })
                .await
                .unwrap_err();
            assert_eq!(status.code(), Code::InvalidArgument);
            assert_eq!(
                status.message(),
                format!("order_id must be positive, got {order_id}")
            );
        }
        orders.stop().await;
    });
}

#[test]
fn every_call_is_counted_by_outcome_and_timed_on_metrics() {
    with_orders("orders", async |orders, _db| {
        let mut client = orders.client().await;
        for user_id in [1, 2] {
            client
                .create_order(request(user_id, vec![item(1, 1, 100)]))
                .await
                .unwrap();
        }
        let refused = client.create_order(request(0, vec![item(1, 1, 100)])).await;
        assert_eq!(refused.unwrap_err().code(), Code::InvalidArgument);
        client
            .get_order(GetOrderRequest { order_id: 1 })
            .await
            .unwrap();
        let unknown = client.get_order(GetOrderRequest { order_id: 999 }).await;
        assert_eq!(unknown.unwrap_err().code(), Code::NotFound);

        let health_addr = orders.health_addr;
        let metrics = tokio::task::spawn_blocking(move || {
            [
                "orders_created_total",
                "orders_calls_refused_total",
                "orders_calls_failed_total",
                "orders_create_order_duration_seconds_count",
                "orders_get_order_duration_seconds_count",
            ]
            .map(|name| (name, testkit::metric(health_addr, name)))
        })
        .await
        .unwrap();
        assert_eq!(
            metrics,
            [
                ("orders_created_total", Some(2)),
                ("orders_calls_refused_total", Some(2)),
                ("orders_calls_failed_total", Some(0)),
                ("orders_create_order_duration_seconds_count", Some(3)),
                ("orders_get_order_duration_seconds_count", Some(2)),
            ]
        );
        orders.stop().await;
    });
}
