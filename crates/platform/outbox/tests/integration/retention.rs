//! Retention of the outbox (the `retention` crate with [`outbox::RETENTION_TABLE`])
//! against real PostgreSQL: sent rows past the window go, in bounded batches; younger
//! sent rows and unsent rows of any age stay.

use std::time::Duration;

use ops_http::Metrics;
use retention::{Policy, Retention, RetentionConfig};
use testkit::TestDatabase;
use tokio_util::sync::CancellationToken;

use crate::common;

const DAY: Duration = Duration::from_secs(24 * 3600);

/// Inserts `count` rows created `created_days_ago` and sent `sent_days_ago` (`None`:
/// unsent), as the relay would have left them.
fn insert(db: &TestDatabase, count: i32, created_days_ago: i32, sent_days_ago: Option<i32>) {
    db.client()
        .execute(
            "INSERT INTO events (topic, message_key, payload, created_at, sent_at)
             SELECT 'order-topic', n::text, '{}'::json,
                    now() - make_interval(days => $2),
                    now() - make_interval(days => $3)
             FROM generate_series(1, $1::int) AS n",
            &[&count, &created_days_ago, &sent_days_ago],
        )
        .unwrap();
}

/// (sent rows, unsent rows) left.
fn remaining(db: &TestDatabase) -> (i64, i64) {
    let row = db
        .client()
        .query_one(
            "SELECT count(*) FILTER (WHERE sent_at IS NOT NULL),
                    count(*) FILTER (WHERE sent_at IS NULL)
             FROM events",
            &[],
        )
        .unwrap();
    (row.get(0), row.get(1))
}

fn retention(pool: pgsetup::Pool, keep: Duration, batch_size: u32, metrics: &Metrics) -> Retention {
    let config = RetentionConfig {
        pause: Duration::ZERO,
        ..RetentionConfig::new(Duration::from_secs(60), batch_size)
    };
    Retention::new(
        pool,
        config,
        &[Policy::new(outbox::RETENTION_TABLE, keep)],
        metrics,
        CancellationToken::new(),
    )
}

/// `metrics` renders `line` as a whole line.
#[track_caller]
fn assert_metrics_line(metrics: &Metrics, line: &str) {
    let text = metrics.render();
    assert!(text.lines().any(|l| l == line), "no {line:?} in:\n{text}");
}

#[test]
fn old_sent_rows_go_in_bounded_batches_young_and_unsent_rows_stay() {
    let (db, pool) = common::outbox_database("outbox_retention");
    insert(&db, 35, 10, Some(9)); // sent 9 days ago: past a 7-day window
    insert(&db, 4, 3, Some(2)); // sent 2 days ago: inside it
    insert(&db, 3, 30, None); // never sent, however old
    insert(&db, 2, 0, None); // new, not sent yet
    let metrics = Metrics::new();
    let retention = retention(pool, 7 * DAY, 10, &metrics);

    let outcomes = retention.run_once();
    assert_eq!(outcomes.len(), 1);
    let (table, outcome) = &outcomes[0];
    assert_eq!(*table, "events");
    let pruned = outcome.as_ref().unwrap();
    assert_eq!(pruned.rows, 35);
    // 10 + 10 + 10 + 5: no batch deleted more than RETENTION_BATCH rows.
    assert_eq!(pruned.batches, 4);
    assert_eq!(remaining(&db), (4, 5));

    assert_metrics_line(
        &metrics,
        "retention_deleted_rows_total{table=\"events\"} 35",
    );
    assert_metrics_line(&metrics, "retention_failures_total 0");
    assert_metrics_line(&metrics, "# TYPE retention_table_rows gauge");

    // The next run finds nothing more to delete.
    let again = retention.run_once();
    assert_eq!(again[0].1.as_ref().unwrap().rows, 0);
    assert_eq!(remaining(&db), (4, 5));
}

#[test]
fn a_zero_window_disables_retention() {
    let (db, pool) = common::outbox_database("outbox_retention");
    insert(&db, 5, 400, Some(399));
    let metrics = Metrics::new();
    let retention = retention(pool, Duration::ZERO, 10, &metrics);
    assert!(
        retention.run_once().is_empty(),
        "a disabled table is not pruned"
    );
    assert_eq!(remaining(&db), (5, 0));
    assert_metrics_line(&metrics, "retention_deleted_rows_total{table=\"events\"} 0");
}

#[test]
fn the_background_thread_prunes_on_its_interval_and_stops_on_shutdown() {
    let (db, pool) = common::outbox_database("outbox_retention");
    insert(&db, 12, 10, Some(9));
    insert(&db, 1, 10, None);
    let metrics = Metrics::new();
    let shutdown = CancellationToken::new();
    let handle = Retention::new(
        pool,
        RetentionConfig::new(Duration::from_millis(100), 5),
        &[Policy::new(outbox::RETENTION_TABLE, 7 * DAY)],
        &metrics,
        shutdown.clone(),
    )
    .spawn()
    .unwrap();
    testkit::wait_until(Duration::from_secs(30), "old sent rows deleted", || {
        (remaining(&db) == (0, 1)).then_some(())
    });
    // Rows that age past the window later go at a later run.
    insert(&db, 3, 10, Some(8));
    testkit::wait_until(Duration::from_secs(30), "the next run", || {
        (remaining(&db) == (0, 1)).then_some(())
    });
    shutdown.cancel();
    handle.join();
    assert_metrics_line(
        &metrics,
        "retention_deleted_rows_total{table=\"events\"} 15",
    );
}

#[test]
fn a_failed_run_is_counted_and_retried_not_fatal() {
    let (db, pool) = common::outbox_database("outbox_retention");
    insert(&db, 3, 10, Some(9));
    let metrics = Metrics::new();
    let retention = retention(pool, 7 * DAY, 10, &metrics);
    // The table is locked by a schema change in progress: the batch gives up after
    // its lock timeout instead of queueing behind it (and everything behind it).
    let mut blocker = db.client();
    let mut transaction = blocker.transaction().unwrap();
    transaction
        .batch_execute("LOCK TABLE events IN ACCESS EXCLUSIVE MODE")
        .unwrap();
    let outcomes = retention.run_once();
    assert!(outcomes[0].1.is_err(), "{outcomes:?}");
    assert_metrics_line(&metrics, "retention_failures_total 1");
    transaction.rollback().unwrap();

    let outcomes = retention.run_once();
    assert_eq!(outcomes[0].1.as_ref().unwrap().rows, 3);
    assert_eq!(remaining(&db), (0, 0));
}
