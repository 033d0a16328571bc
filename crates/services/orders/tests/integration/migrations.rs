//! Start-up migrations: a restart changes nothing, two instances starting at once
//! against a fresh database both come up, and a database of the previous release
//! (whose V1 still created the outbox table) is taken over as it is.

use orders::testing::DEADLINE;
use orders::testing::{Orders, config, item, request};
use testkit::{TestDatabase, runtime, with_db};
use tokio_util::sync::CancellationToken;

/// How many migrations orders' schema has, over all its sets.
fn migration_count() -> usize {
    orders::schema()
        .sets()
        .iter()
        .map(|set| set.migrations().len())
        .sum()
}

/// What a restart must not change: the migration history and the schema objects.
async fn schema(dsn: &str) -> (Vec<String>, Vec<String>) {
    with_db(dsn, |client| {
        let history = client
            .query(
                "SELECT 'orders ' || version::text || ' ' || name || ' ' || checksum || ' ' || applied_on
                 FROM refinery_schema_history
                 UNION ALL
                 SELECT 'outbox ' || version::text || ' ' || name || ' ' || checksum || ' ' || applied_on
                 FROM outbox_schema_history
                 UNION ALL
                 SELECT 'inbox ' || version::text || ' ' || name || ' ' || checksum || ' ' || applied_on
                 FROM inbox_schema_history ORDER BY 1",
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
        let order_id = first.create(request(3, vec![item(1, 1, 10)])).await;
        first.stop().await;
        let before = schema(&db.dsn()).await;
        assert_eq!(
            before.0.len(),
            migration_count(),
            "every migration of every set applied once: {:?}",
            before.0
        );
        assert!(before.1.contains(&"r orders".to_owned()), "{:?}", before.1);
        assert!(before.1.contains(&"r events".to_owned()), "{:?}", before.1);

        let second = Orders::start_serving(config(db.dsn())).await;
        assert_eq!(schema(&db.dsn()).await, before);
        // The data survived and the service works.
        let mut client = second.client().await;
        let order = orders::testing::get_order(&mut client, order_id).await;
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
            let order_id = orders.create(request(5, vec![item(2, 3, 7)])).await;
            assert!(order_id > 0);
        }
        let (history, _) = schema(&db.dsn()).await;
        assert_eq!(
            history.len(),
            migration_count(),
            "each migration applied once: {history:?}"
        );
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

/// orders' migrations as the previous release shipped them: V1 created the outbox
/// table, V2 its retention index (both now the outbox crate's own migrations).
mod previous_release {
    refinery::embed_migrations!("tests/fixtures/previous_release");
}

fn checksums(client: &mut postgres::Client, table: &str) -> Vec<(i32, String)> {
    client
        .query(
            &format!("SELECT version, checksum FROM {table} ORDER BY version"),
            &[],
        )
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect()
}

#[test]
fn a_database_of_the_previous_release_is_taken_over_as_it_is() {
    let db = TestDatabase::new("orders");
    let options = pgsetup::PoolOptions {
        max_size: 1,
        connect_timeout: DEADLINE,
    };
    pgsetup::prepare(&db.dsn(), previous_release::migrations::runner(), options).unwrap();
    // An event the previous release wrote and had not published yet.
    db.client()
        .execute(
            "INSERT INTO events (topic, message_key, payload) VALUES ('order-topic', '1', '{}')",
            &[],
        )
        .unwrap();

    runtime().block_on(async {
        let orders = Orders::start_serving(config(db.dsn())).await;
        let order_id = orders.create(request(4, vec![item(1, 2, 30)])).await;
        assert!(order_id > 0);
        orders.stop().await;
    });

    let mut client = db.client();
    let schema = orders::schema();
    let current: Vec<(i32, String)> = schema
        .sets()
        .last()
        .unwrap()
        .migrations()
        .iter()
        .map(|migration| (migration.version(), migration.checksum().to_string()))
        .collect();
    assert_eq!(
        checksums(&mut client, "refinery_schema_history"),
        current,
        "orders' history now records the migrations as they are"
    );
    assert_eq!(
        checksums(&mut client, "outbox_schema_history").len(),
        outbox::migrations().migrations().len(),
        "the outbox's migrations ran (its V1 adopted the existing table)"
    );
    let (events, unsent): (i64, i64) = {
        let row = client
            .query_one(
                "SELECT count(*), count(*) FILTER (WHERE sent_at IS NULL) FROM events",
                &[],
            )
            .unwrap();
        (row.get(0), row.get(1))
    };
    assert_eq!(
        (events, unsent),
        (2, 2),
        "the old event kept, the new one added"
    );
    let triggers: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'events'::regclass AND NOT tgisinternal",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(triggers, 1, "one NOTIFY trigger, not a second one");
}

#[test]
fn a_migration_edited_in_any_other_way_still_stops_start_up() {
    let db = TestDatabase::new("orders");
    runtime().block_on(async {
        Orders::start_serving(config(db.dsn())).await.stop().await;
    });
    db.client()
        .execute(
            "UPDATE refinery_schema_history SET checksum = '42' WHERE version = 1",
            &[],
        )
        .unwrap();
    let stopped = runtime().block_on(async {
        let running = orders::start(config(db.dsn()), CancellationToken::new())
            .await
            .unwrap();
        tokio::time::timeout(DEADLINE, running.wait()).await
    });
    let err = stopped
        .expect("orders kept running on a database whose migration differs")
        .unwrap_err();
    let message = service_skeleton::ErrorChain(&err).to_string();
    assert!(
        message.contains("ORDERS_PG_DSN") && message.contains("different than filesystem"),
        "{message}"
    );
}

/// V4's text changed after it shipped (its comments only): a database that ran the
/// earlier text starts, and its history then records the current checksum.
#[test]
fn a_database_that_ran_v4_before_its_comment_edit_starts() {
    let db = TestDatabase::new("orders");
    runtime().block_on(async {
        Orders::start_serving(config(db.dsn())).await.stop().await;
    });
    let shipped = "2309476027315397730";
    db.client()
        .execute(
            "UPDATE refinery_schema_history SET checksum = $1 WHERE version = 4",
            &[&shipped],
        )
        .unwrap();
    runtime().block_on(async {
        Orders::start_serving(config(db.dsn())).await.stop().await;
    });
    let recorded = checksums(&mut db.client(), "refinery_schema_history");
    let current = orders::schema()
        .sets()
        .last()
        .unwrap()
        .migrations()
        .iter()
        .find(|migration| migration.version() == 4)
        .unwrap()
        .checksum()
        .to_string();
    assert_ne!(current, shipped);
    assert!(recorded.contains(&(4, current)), "{recorded:?}");
}
