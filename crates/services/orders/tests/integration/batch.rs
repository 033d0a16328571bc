//! Group commit (`ORDERS_BATCH_MAX`) over real gRPC against real PostgreSQL: 200
//! concurrent creates make 200 orders, each caller's id naming its own order; an
//! order the database refuses inside a batch fails alone; a kill -9 during a burst
//! leaves every acknowledged order whole (with its items and outbox row) and no order
//! half-written; idempotency keys keep their guarantees inside a batch;
//! `ORDERS_BATCH_MAX=1` writes one order per transaction.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use orders::testing::{
    DEADLINE, OrdersProcess, create_keyed, item, request, with_orders, with_orders_configured,
};
use proto::v1::orders_service_client::OrdersServiceClient;
use testkit::{TestDatabase, runtime, with_db};
use tonic::Code;

/// An order as stored: user id and its items (product, quantity, price) by position.
type Stored = (i64, Vec<(i64, i32, i64)>);

/// The stored orders of `order_ids` (`None` for a missing one), over one connection.
async fn stored_all(dsn: &str, order_ids: Vec<i64>) -> Vec<Option<Stored>> {
    with_db(dsn, move |client| {
        order_ids
            .iter()
            .map(|order_id| {
                let order = client
                    .query_opt("SELECT user_id FROM orders WHERE order_id = $1", &[order_id])
                    .unwrap()?;
                let items = client
                    .query(
                        "SELECT product_id, quantity, price FROM order_items WHERE order_id = $1 ORDER BY position",
                        &[order_id],
                    )
                    .unwrap()
                    .iter()
                    .map(|row| (row.get(0), row.get(1), row.get(2)))
                    .collect();
                Some((order.get(0), items))
            })
            .collect()
    })
    .await
}

/// One stored order; see [`stored_all`].
async fn stored(dsn: &str, order_id: i64) -> Option<Stored> {
    stored_all(dsn, vec![order_id]).await.pop().flatten()
}

/// Orders without items, and outbox rows without their order or orders without
/// exactly one outbox row: all 0 when nothing is half-written.
async fn half_written(dsn: &str) -> (i64, i64, i64) {
    with_db(dsn, |client| {
        let row = client
            .query_one(
                "SELECT
                    (SELECT count(*) FROM orders o
                     WHERE NOT EXISTS (SELECT 1 FROM order_items i WHERE i.order_id = o.order_id)),
                    (SELECT count(*) FROM events e
                     WHERE NOT EXISTS (SELECT 1 FROM orders o
                                       WHERE o.order_id = (e.payload->>'order_id')::bigint)),
                    (SELECT count(*) FROM orders o
                     WHERE (SELECT count(*) FROM events e
                            WHERE (e.payload->>'order_id')::bigint = o.order_id) <> 1)",
                &[],
            )
            .unwrap();
        (row.get(0), row.get(1), row.get(2))
    })
    .await
}

/// The items of the `n`th test order: 1 to 3 of them, all derived from `n`.
fn items_of(n: i64) -> Vec<(i64, i32, i64)> {
    (0..=(n % 3))
        .map(|k| ((n + 1) * 10 + k, (n % 7) as i32 + 1, 100 + n + k))
        .collect()
}

fn order_request(user_id: i64, n: i64) -> proto::v1::CreateOrderRequest {
    request(
        user_id,
        items_of(n)
            .into_iter()
            .map(|(product, quantity, price)| item(product, quantity, price))
            .collect(),
    )
}

#[test]
fn two_hundred_concurrent_creates_make_two_hundred_orders_each_its_callers() {
    with_orders("orders_batch", async |orders, db| {
        let client = orders.client().await;
        let calls: Vec<_> = (0..200_i64)
            .map(|n| {
                let mut client = client.clone();
                tokio::spawn(async move {
                    let id = client
                        .create_order(order_request(10_000 + n, n))
                        .await
                        .unwrap()
                        .into_inner()
                        .order_id;
                    (n, id)
                })
            })
            .collect();
        let mut answers = Vec::new();
        for call in calls {
            answers.push(call.await.unwrap());
        }
        let mut ids: Vec<i64> = answers.iter().map(|(_, id)| *id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 200, "200 distinct order ids");
        let rows = stored_all(&db.dsn(), answers.iter().map(|(_, id)| *id).collect()).await;
        for ((n, id), row) in answers.into_iter().zip(rows) {
            assert_eq!(
                row,
                Some((10_000 + n, items_of(n))),
                "order {id} is caller {n}'s"
            );
        }
        assert_eq!(
            orders::testing::row_counts(&db.dsn()).await.2,
            200,
            "200 outbox rows"
        );
        assert_eq!(half_written(&db.dsn()).await, (0, 0, 0));
        assert_eq!(orders.metric("orders_batch_size_sum").await, 200.0);
        let batches = orders.metric("orders_batch_size_count").await;
        assert!(
            (1.0..200.0).contains(&batches),
            "200 concurrent orders committed in fewer batches: {batches}"
        );
        assert!(orders.metric("orders_batch_commit_seconds_count").await >= batches);
        orders.stop().await;
    });
}

#[test]
fn an_order_the_database_refuses_fails_alone_and_the_rest_of_its_batch_commits() {
    with_orders("orders_batch", async |orders, db| {
        // One writer (a pool of 4), so the orders queued behind a slow one form a batch.
        on_order_insert(
            &db.dsn(),
            "IF NEW.user_id = 666 THEN RAISE EXCEPTION 'user 666 refused by the test'; END IF;
             IF NEW.user_id = 777 THEN PERFORM pg_sleep(0.5); END IF;",
        )
        .await;
        let client = orders.client().await;
        let mut slow_client = client.clone();
        let slow =
            tokio::spawn(async move { slow_client.create_order(order_request(777, 1)).await });
        // The slow order is committing (its trigger sleeps); these queue behind it.
        tokio::time::sleep(Duration::from_millis(150)).await;
        let users: Vec<i64> = (1..=19).chain([666]).collect();
        let calls: Vec<_> = users
            .iter()
            .map(|&user| {
                let mut client = client.clone();
                tokio::spawn(
                    async move { (user, client.create_order(order_request(user, user)).await) },
                )
            })
            .collect();
        assert!(slow.await.unwrap().is_ok());
        let mut ids = Vec::new();
        for call in calls {
            let (user, answer) = call.await.unwrap();
            match answer {
                Ok(response) => {
                    assert_ne!(user, 666, "the refused order cannot succeed");
                    let id = response.into_inner().order_id;
                    assert_eq!(stored(&db.dsn(), id).await, Some((user, items_of(user))));
                    ids.push(id);
                }
                Err(status) => {
                    assert_eq!(user, 666, "only the refused order fails: {status:?}");
                    assert_eq!(status.code(), Code::Internal, "{status:?}");
                }
            }
        }
        assert_eq!(ids.len(), 19, "every other order of the batch committed");
        assert_eq!(orders::testing::row_counts(&db.dsn()).await.0, 20);
        assert_eq!(orders::testing::row_counts(&db.dsn()).await.2, 20);
        assert_eq!(half_written(&db.dsn()).await, (0, 0, 0));
        let split = orders.metric("orders_batch_split_orders_total").await;
        assert!(
            split >= 2.0,
            "the refused order was in a batch of several orders, retried one by one: {split}"
        );
        orders.stop().await;
    });
}

/// Runs the PL/pgSQL `statements` before each insert into `orders` (e.g. to refuse
/// one user's order, or make it slow so the orders sent meanwhile queue behind it and
/// form one batch: one writer with a pool of 4).
async fn on_order_insert(dsn: &str, statements: &str) {
    let sql = format!(
        "CREATE FUNCTION test_on_insert() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             {statements}
             RETURN NEW;
         END $$;
         CREATE TRIGGER test_on_insert BEFORE INSERT ON orders
             FOR EACH ROW EXECUTE FUNCTION test_on_insert();"
    );
    with_db(dsn, move |client| client.batch_execute(&sql).unwrap()).await;
}

/// CreateOrder, under `key` if given: the order id and whether it was a replay.
async fn create(
    mut client: OrdersServiceClient<tonic::transport::Channel>,
    message: proto::v1::CreateOrderRequest,
    key: Option<&str>,
) -> Result<(i64, bool), tonic::Status> {
    match key {
        Some(key) => create_keyed(&mut client, message, key).await,
        None => Ok((
            client.create_order(message).await?.into_inner().order_id,
            false,
        )),
    }
}

#[test]
fn idempotency_keys_keep_their_guarantees_inside_a_batch() {
    with_orders("orders_batch", async |orders, db| {
        let client = orders.client().await;
        // A key taken before the batch, by user 1.
        let (taken, _) = create(client.clone(), order_request(1, 1), Some("taken"))
            .await
            .unwrap();
        on_order_insert(
            &db.dsn(),
            "IF NEW.user_id = 777 THEN PERFORM pg_sleep(1.5); END IF;",
        )
        .await;
        let slow = tokio::spawn(create(client.clone(), order_request(777, 0), None));
        tokio::time::sleep(Duration::from_millis(300)).await;

        // Queued behind the slow order, in this order: 40 ms apart, so that even on a
        // loaded machine they reach orders in this order, and all of them (0.36 s)
        // while the slow order still holds the writer (1.5 s).
        let sends: Vec<(i64, i64, Option<&'static str>)> = vec![
            (1, 2, Some("same")),  // leads key "same" of user 1
            (1, 2, Some("same")),  // the same request again: a replay
            (2, 2, Some("same")),  // another user's "same": another key
            (3, 3, None),          // no key
            (1, 2, Some("same")),  // a replay again
            (1, 9, Some("same")),  // another request under user 1's "same"
            (1, 1, Some("taken")), // the request made before the batch: a replay
            (1, 4, Some("taken")), // another request under a key taken before
            (4, 4, None),          // no key
        ];
        let mut calls = Vec::new();
        for &(user, n, key) in &sends {
            calls.push(tokio::spawn(create(
                client.clone(),
                order_request(user, n),
                key,
            )));
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
        assert!(slow.await.unwrap().is_ok());
        let mut answers = Vec::new();
        for call in calls {
            answers.push(call.await.unwrap());
        }
        let ok = |index: usize| answers[index].clone().unwrap();
        let refused = |index: usize| answers[index].clone().unwrap_err().code();

        let (same, replayed) = ok(0);
        assert!(!replayed, "the first under a key makes the order");
        assert_eq!(ok(1), (same, true));
        assert_eq!(ok(4), (same, true));
        assert_eq!(refused(5), Code::FailedPrecondition);
        assert_eq!(ok(6), (taken, true));
        assert_eq!(refused(7), Code::FailedPrecondition);
        let others = [ok(2), ok(3), ok(8)];
        assert!(others.iter().all(|&(id, replayed)| !replayed && id != same));
        for (index, &(user, n, _)) in sends.iter().enumerate() {
            if let Ok((id, _)) = answers[index] {
                assert_eq!(stored(&db.dsn(), id).await, Some((user, items_of(n))));
            }
        }
        // Orders: the one before, the slow one, "same" of users 1 and 2, two unkeyed.
        assert_eq!(orders::testing::row_counts(&db.dsn()).await.0, 6);
        assert_eq!(orders::testing::row_counts(&db.dsn()).await.2, 6);
        assert_eq!(half_written(&db.dsn()).await, (0, 0, 0));
        assert_eq!(orders.metric("orders_batch_split_orders_total").await, 0.0);
        assert_eq!(
            orders.metric("orders_batch_size_sum").await,
            6.0,
            "the batch size counts new orders, not replays"
        );
        let batches = orders.metric("orders_batch_size_count").await;
        assert!(
            batches <= 4.0,
            "the nine calls queued behind the slow order were written together: {batches} batches"
        );
        orders.stop().await;
    });
}

#[test]
fn batch_max_one_writes_one_order_per_transaction() {
    with_orders_configured(
        "orders_batch",
        |config| orders::Config {
            orders_batch_max: 1,
            ..config
        },
        async |orders, db| {
            let client = orders.client().await;
            let calls: Vec<_> = (0..20_i64)
                .map(|n| {
                    let mut client = client.clone();
                    tokio::spawn(async move { client.create_order(order_request(n + 1, n)).await })
                })
                .collect();
            for call in calls {
                call.await.unwrap().unwrap();
            }
            assert_eq!(orders::testing::row_counts(&db.dsn()).await.2, 20);
            assert_eq!(orders.metric("orders_batch_size_count").await, 0.0);
            orders.stop().await;
        },
    );
}

#[test]
fn a_kill_9_during_a_burst_leaves_every_acknowledged_order_whole() {
    let db = TestDatabase::new("orders_batch");
    let mut orders = OrdersProcess::spawn(db.dsn());
    let runtime = runtime();
    // (order id, n) of every create a caller saw succeed.
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let loops: Vec<_> = (0..32_i64)
        .map(|lane| {
            let (uri, acknowledged) = (orders.uri.clone(), Arc::clone(&acknowledged));
            runtime.spawn(async move {
                let mut client = OrdersServiceClient::connect(uri).await.unwrap();
                for k in 0..10_000_i64 {
                    let n = lane * 10_000 + k;
                    match client.create_order(order_request(n + 1, n)).await {
                        Ok(response) => acknowledged
                            .lock()
                            .unwrap()
                            .push((response.into_inner().order_id, n)),
                        Err(_) => return,
                    }
                }
            })
        })
        .collect();
    testkit::wait_until(DEADLINE, "100 orders acknowledged", || {
        (acknowledged.lock().unwrap().len() >= 100).then_some(())
    });
    orders.process.kill9();
    runtime.block_on(async {
        for lane in loops {
            tokio::time::timeout(DEADLINE, lane).await.unwrap().unwrap();
        }
        let acknowledged = acknowledged.lock().unwrap().clone();
        let rows = stored_all(&db.dsn(), acknowledged.iter().map(|(id, _)| *id).collect()).await;
        for ((id, n), row) in acknowledged.iter().zip(rows) {
            assert_eq!(
                row,
                Some((n + 1, items_of(*n))),
                "acknowledged order {id} is stored whole"
            );
        }
        let (stored_orders, _, events) = orders::testing::row_counts(&db.dsn()).await;
        assert!(stored_orders >= acknowledged.len() as i64);
        assert_eq!(stored_orders, events, "one outbox row per order");
        assert_eq!(
            half_written(&db.dsn()).await,
            (0, 0, 0),
            "nothing half-written"
        );
    });
}
