//! Overload: past `ORDERS_MAX_IN_FLIGHT` calls, over all connections, a call fails
//! at once with UNAVAILABLE; the admitted calls complete; health still answers (a
//! bad setting stopping the binary is in `config.rs`).
//!
//! The calls are made slow without timing: a transaction of the test holds `LOCK
//! TABLE orders IN SHARE MODE`, so every order insert waits until the test lets go.

use orders::testing::{DEADLINE, item, request, with_orders_configured};
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;

#[test]
fn calls_past_the_bound_fail_at_once_with_unavailable() {
    const BOUND: u32 = 2;
    const CALLS: usize = 12;
    with_orders_configured(
        "orders",
        |config| orders::Config {
            orders_max_in_flight: BOUND,
            // Room for the readiness probe beside the blocked inserts.
            orders_db_pool_size: 4,
            ..config
        },
        async |orders, db| {
            let lock = tokio::task::block_in_place(|| {
                testkit::HeldLock::take(&db.dsn(), "LOCK TABLE orders IN SHARE MODE")
            });

            // One connection per call: the bound is the service's, not a connection's.
            let (results_tx, mut results) = tokio::sync::mpsc::unbounded_channel();
            for user_id in 1..=CALLS as i64 {
                let client = orders.client().await;
                let results_tx = results_tx.clone();
                tokio::spawn(async move {
                    let mut client = client;
                    let result = client
                        .create_order(request(user_id, vec![item(1, 1, 10)]))
                        .await;
                    let _ = results_tx.send(result.map(|r| r.into_inner().order_id));
                });
            }
            for _ in 0..CALLS - BOUND as usize {
                let status = tokio::time::timeout(DEADLINE, results.recv())
                    .await
                    .unwrap()
                    .unwrap()
                    .unwrap_err();
                assert_eq!(status.code(), Code::Unavailable, "{status:?}");
                assert_eq!(
                    status.message(),
                    "orders overloaded: 2 calls in flight, retry later"
                );
                assert!(status.message().starts_with(orders::OVERLOADED_PREFIX));
            }
            // Still overloaded: GetOrder is shed too, health answers, the metric counts.
            let mut client = orders.client().await;
            let status = client
                .get_order(proto::v1::GetOrderRequest { order_id: 1 })
                .await
                .unwrap_err();
            assert_eq!(status.code(), Code::Unavailable, "{status:?}");
            assert_eq!(orders.health().await, Some(ServingStatus::Serving));
            let metrics = orders.metrics().await;
            let line = format!("orders_calls_shed_total {}", CALLS - BOUND as usize + 1);
            assert!(
                metrics.lines().any(|l| l == line),
                "{line:?} not in\n{metrics}"
            );

            lock.release();
            let mut accepted = Vec::new();
            for _ in 0..BOUND {
                let order_id = tokio::time::timeout(DEADLINE, results.recv())
                    .await
                    .unwrap()
                    .unwrap()
                    .unwrap();
                accepted.push(order_id);
            }
            let (stored, _, _) = orders::testing::row_counts(&db.dsn()).await;
            assert_eq!(stored, i64::from(BOUND), "{accepted:?}");
            // Free again.
            client
                .create_order(request(99, vec![item(1, 1, 10)]))
                .await
                .unwrap();
        },
    );
}
