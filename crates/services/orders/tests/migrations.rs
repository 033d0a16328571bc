//! Start-up migrations: a restart changes nothing, two instances starting at once
//! against a fresh database both come up.
#![allow(clippy::unwrap_used)]

use orders::testing::{Orders, config, item, request};
use testkit::{TestDatabase, runtime, with_db};

/// What a restart must not change: the migration history and the schema objects.
async fn schema(dsn: &str) -> (Vec<String>, Vec<String>) {
    with_db(dsn, |client| {
        let history = client
            .query(
                "SELECT version::text || ' ' || name || ' ' || checksum || ' ' || applied_on
                 FROM refinery_schema_history ORDER BY version",
                &[],
            )
            .unwrap()
            .iter()
            .map(|row| row.get(0))
            .collect();
        let objects = client
            .query(
                "SELECT c.relkind::text || ' ' || c.relname FROM pg_class c
                 JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE n.nspname = 'public' ORDER BY 1",
                &[],
            )
            .unwrap()
            .iter()
            .map(|row| row.get(0))
            .collect();
        (history, objects)
    })
    .await
}

#[test]
fn a_second_start_changes_nothing() {
    let db = TestDatabase::new("orders");
    runtime().block_on(async {
        let first = Orders::start_serving(config(db.dsn())).await;
        let order_id = first
            .client()
            .await
            .create_order(request(3, vec![item(1, 1, 10)]))
            .await
            .unwrap()
            .into_inner()
            .order_id;
        first.stop().await;
        let before = schema(&db.dsn()).await;
        assert_eq!(before.0.len(), 2, "V1 and V2 applied once: {:?}", before.0);
        assert!(before.1.contains(&"r orders".to_owned()), "{:?}", before.1);
        assert!(before.1.contains(&"r events".to_owned()), "{:?}", before.1);

        let second = Orders::start_serving(config(db.dsn())).await;
        assert_eq!(schema(&db.dsn()).await, before);
        // The data survived and the service works.
        let mut client = second.client().await;
        let order = client
            .get_order(proto::v1::GetOrderRequest { order_id })
            .await
            .unwrap()
            .into_inner()
            .order
            .unwrap();
        assert_eq!(order.user_id, 3);
        let next = client
            .create_order(request(3, vec![item(1, 1, 10)]))
            .await
            .unwrap()
            .into_inner()
            .order_id;
        assert!(next > order_id);
        second.stop().await;
    });
}

#[test]
fn two_instances_starting_at_once_both_come_up() {
    let db = TestDatabase::new("orders");
    runtime().block_on(async {
        let (a, b) = tokio::join!(
            Orders::start(config(db.dsn())),
            Orders::start(config(db.dsn()))
        );
        tokio::join!(a.wait_serving(), b.wait_serving());
        for orders in [&a, &b] {
            let order_id = orders
                .client()
                .await
                .create_order(request(5, vec![item(2, 3, 7)]))
                .await
                .unwrap()
                .into_inner()
                .order_id;
            assert!(order_id > 0);
        }
        let (history, _) = schema(&db.dsn()).await;
        assert_eq!(history.len(), 2, "each migration applied once: {history:?}");
        let orders: i64 = with_db(&db.dsn(), |client| {
            client
                .query_one("SELECT count(*) FROM orders", &[])
                .unwrap()
                .get(0)
        })
        .await;
        assert_eq!(orders, 2);
        a.stop().await;
        b.stop().await;
    });
}
