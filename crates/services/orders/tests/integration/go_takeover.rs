//! Taking over a database the Go orders service made (goose migration 00001): every
//! order, item and outbox row kept with its id and timestamps, unsent events ready
//! for our relay with the ids Go would have published, new ids after Go's, and a
//! take-over that fails half-way leaving the database exactly as it was.

use orders::testing::{Orders, config, get_order, item, request};
use proto::v1::OrderStatus;
use testkit::{GoOrder, GoService, TestDatabase, insert_go_order, runtime, snapshot};

/// What Go stored for one order, read back from its database before the take-over
/// (times in whole seconds, truncated as gRPC's `Timestamp.seconds` is).
#[derive(Debug, PartialEq)]
struct GoRow {
    order_id: i64,
    user_id: i64,
    items: Vec<(i64, i32, i64)>,
    created_at: i64,
    updated_at: i64,
}

fn go_rows(client: &mut postgres::Client) -> Vec<GoRow> {
    let orders = client
        .query(
            "SELECT id, user_id,
                    floor(extract(epoch FROM created_at::timestamptz))::bigint,
                    floor(extract(epoch FROM updated_at::timestamptz))::bigint
             FROM orders ORDER BY id",
            &[],
        )
        .unwrap();
    orders
        .iter()
        .map(|row| {
            let order_id: i64 = row.get(0);
            let items = client
                .query(
                    "SELECT product_id, quantity, price FROM order_items WHERE order_id = $1 ORDER BY id",
                    &[&order_id],
                )
                .unwrap()
                .iter()
                .map(|item| (item.get(0), item.get(1), item.get(2)))
                .collect();
            GoRow {
                order_id,
                user_id: row.get(1),
                items,
                created_at: row.get(2),
                updated_at: row.get(3),
            }
        })
        .collect()
}

#[test]
fn a_go_orders_database_is_taken_over_with_every_row_and_id() {
    let db = TestDatabase::new("orders_go");
    let mut go = db.create_as_go(GoService::Orders);
    let (first, _) = insert_go_order(
        &mut go,
        &GoOrder::new(7, vec![(1, 2, 150), (9, 1, 40)], true),
    );
    insert_go_order(&mut go, &GoOrder::new(8, vec![(3, 1, 999)], true));
    let (_, unsent_event) = insert_go_order(&mut go, &GoOrder::new(7, vec![(5, 3, 10)], false));
    // Ids Go used for rows since rolled back or deleted are never reused.
    go.batch_execute(
        "SELECT setval('orders_id_seq', 100); SELECT setval('events_id_seq', 50);
         UPDATE orders SET updated_at = created_at + interval '90 seconds' WHERE id = 1",
    )
    .unwrap();
    let last = GoOrder {
        status: "NEW",
        ..GoOrder::new(9, vec![(2, 4, 25)], false)
    };
    let (last_order, last_event) = insert_go_order(&mut go, &last);
    assert_eq!((first, last_order, last_event), (1, 101, 51));
    let before = go_rows(&mut go);
    drop(go);

    runtime().block_on(async {
        let orders = Orders::start_serving(config(db.dsn())).await;
        let mut client = orders.client().await;
        for go_row in &before {
            let order = get_order(&mut client, go_row.order_id).await;
            assert_eq!(order.user_id, go_row.user_id, "{go_row:?}");
            assert_eq!(order.status(), OrderStatus::New, "{go_row:?}");
            let items: Vec<(i64, i32, i64)> = order
                .items
                .iter()
                .map(|item| {
                    let price = item.price.as_ref().map_or(0, |money| money.money);
                    (item.product_id, item.quantity, price)
                })
                .collect();
            assert_eq!(items, go_row.items, "items in Go's order");
            let total: i64 = go_row
                .items
                .iter()
                .map(|(_, quantity, price)| i64::from(*quantity) * price)
                .sum();
            assert_eq!(order.total_amount.unwrap().money, total);
            assert_eq!(order.created_at.unwrap().seconds, go_row.created_at);
            assert_eq!(order.updated_at.unwrap().seconds, go_row.updated_at);
        }

        // New orders continue after every id Go used.
        let new_order = orders.create(request(7, vec![item(1, 1, 5)])).await;
        assert_eq!(new_order, 102);
        orders.stop().await;
    });

    let mut client = db.client();
    let events: Vec<(i64, String, String, serde_json::Value, bool)> = client
        .query(
            "SELECT event_id, topic, message_key, payload::text::jsonb, sent_at IS NOT NULL
             FROM events ORDER BY event_id",
            &[],
        )
        .unwrap()
        .iter()
        .map(|row| {
            let payload: String = row.get::<_, serde_json::Value>(3).to_string();
            (
                row.get(0),
                row.get(1),
                row.get(2),
                serde_json::from_str(&payload).unwrap(),
                row.get(4),
            )
        })
        .collect();
    let ids: Vec<i64> = events.iter().map(|event| event.0).collect();
    assert_eq!(
        ids,
        [1, 2, 3, 51, 52],
        "Go's event ids, then ours after them"
    );
    for (event_id, topic, key, payload, sent) in &events[..4] {
        assert_eq!(topic, "order-topic");
        assert_eq!(key, &payload["order_id"].to_string(), "keyed by order id");
        // The relay (no broker here) has not sent the unsent ones yet.
        assert_eq!(*sent, *event_id <= 2, "event {event_id}");
        if !sent {
            assert_eq!(payload["event_id"], *event_id, "unsent rows carry their id");
        }
    }
    assert_eq!(events[2].0, unsent_event);
    assert_eq!(events[3].3["total_amount"], 100);

    let leftovers: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_namespace WHERE nspname = 'taken_over'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(leftovers, 0, "the moved-aside Go tables are dropped");
    let goose: bool = client
        .query_one("SELECT to_regclass('goose_db_version') IS NULL", &[])
        .unwrap()
        .get(0);
    assert!(goose, "goose's history is gone with Go's tables");

    // A second start finds our schema and changes nothing.
    let taken_over = snapshot(&mut client);
    runtime().block_on(async {
        Orders::start_serving(config(db.dsn())).await.stop().await;
    });
    assert_eq!(snapshot(&mut client), taken_over);
}

/// Starts orders on `db` and returns the error it stops with.
fn start_error(db: &TestDatabase) -> String {
    runtime().block_on(async {
        let mut orders = Orders::start(config(db.dsn())).await;
        let running = orders.running.take().unwrap();
        let err = running
            .wait()
            .await
            .expect_err("orders must refuse this database");
        service_skeleton::ErrorChain(&err).to_string()
    })
}

#[test]
fn a_take_over_that_fails_half_way_leaves_the_go_database_unchanged() {
    // Go's order_items has no CHECK on product_id; ours does. The orders are copied
    // and all our tables exist by the time the items fail.
    let db = TestDatabase::new("orders_go_bad_item");
    let mut go = db.create_as_go(GoService::Orders);
    insert_go_order(&mut go, &GoOrder::new(7, vec![(1, 2, 150)], true));
    insert_go_order(&mut go, &GoOrder::new(8, vec![(0, 1, 5)], false));
    let before = snapshot(&mut go);

    let err = start_error(&db);
    testkit::assert_mentions(
        &err,
        &[
            "the Go orders service",
            "order_items",
            "order_items_product_id_check",
            "Failing row contains",
            "left unchanged",
        ],
    );
    assert_eq!(snapshot(&mut go), before, "nothing changed: {err}");
}

#[test]
fn a_go_status_with_no_equivalent_stops_the_take_over_and_is_named() {
    let db = TestDatabase::new("orders_go_bad_status");
    let mut go = db.create_as_go(GoService::Orders);
    insert_go_order(&mut go, &GoOrder::new(7, vec![(1, 2, 150)], true));
    let canceled = GoOrder {
        status: "StatusCanceled",
        ..GoOrder::new(8, vec![(3, 1, 5)], true)
    };
    insert_go_order(&mut go, &canceled);
    insert_go_order(&mut go, &canceled);
    let before = snapshot(&mut go);

    let err = start_error(&db);
    testkit::assert_mentions(
        &err,
        &["the Go orders service", "\"StatusCanceled\" (2 orders)"],
    );
    assert_eq!(snapshot(&mut go), before);
}

#[test]
fn a_newer_go_schema_is_refused_unchanged() {
    let db = TestDatabase::new("orders_go_newer");
    let mut go = db.create_as_go(GoService::Orders);
    go.batch_execute("INSERT INTO goose_db_version (version_id, is_applied) VALUES (2, true)")
        .unwrap();
    let before = snapshot(&mut go);

    let err = start_error(&db);
    testkit::assert_mentions(&err, &["goose version 2", "version 1"]);
    assert_eq!(snapshot(&mut go), before);
}
