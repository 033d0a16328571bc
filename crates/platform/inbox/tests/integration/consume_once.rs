//! `inbox::consume_poll` against real PostgreSQL: which path a poll takes, that a
//! redelivered poll changes nothing, that poison messages are kept byte for byte, and
//! that a poll which fails half-way leaves nothing behind. The service here is a
//! small one of the test's own: each new event writes one `effects` row.

use std::{sync::LazyLock, time::Duration};

use chrono::{SubsecRound, Utc};
use contracts::OrderCreated;
use inbox::{Apply, Consumed};
use pgsetup::{Pool, PooledClient};
use postgres::Transaction;
use testkit::{TestDatabase, worker::poll_of};

/// Applies each new event as one `effects` row; counts the calls of each path.
#[derive(Default)]
struct Effects {
    together_calls: usize,
    one_calls: usize,
    /// `apply_one` fails on this event id (a database failure half-way).
    fail_on: Option<i64>,
}

/// Records the poll's events and writes an effect for each new one, in one statement.
static TOGETHER: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH incoming AS (
             SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::int[], $5::bigint[])
                 AS t(event_id, order_id, kafka_topic, kafka_partition, kafka_offset)
         ),
         {},
         written AS (
             INSERT INTO effects (event_id, order_id)
             SELECT event_id, order_id FROM incoming JOIN recorded USING (event_id)
         )
         SELECT i.event_id, r.event_id IS NOT NULL
         FROM incoming i LEFT JOIN recorded r USING (event_id)",
        inbox::record_many_cte("incoming")
    )
});

impl Apply for Effects {
    type Event = OrderCreated;
    /// Whether the event was new.
    type Outcome = bool;
    type Prepared = ();
    type Error = Failure;

    fn apply_together(
        &mut self,
        client: &mut PooledClient,
        events: &[(&OrderCreated, &bus::Message<'_>)],
    ) -> Result<Vec<bool>, Failure> {
        self.together_calls += 1;
        let column = |f: fn(&(&OrderCreated, &bus::Message<'_>)) -> i64| -> Vec<i64> {
            events.iter().map(f).collect()
        };
        let topics: Vec<&str> = events.iter().map(|(_, m)| m.topic).collect();
        let partitions: Vec<i32> = events.iter().map(|(_, m)| m.partition).collect();
        let rows = client.query(
            TOGETHER.as_str(),
            &[
                &column(|(e, _)| e.event_id),
                &column(|(e, _)| e.order_id),
                &topics,
                &partitions,
                &column(|(_, m)| m.offset),
            ],
        )?;
        Ok(rows.iter().map(|row| row.get(1)).collect())
    }

    fn prepare(&mut self, _client: &mut PooledClient) -> Result<(), Failure> {
        Ok(())
    }

    fn apply_one(
        &mut self,
        tx: &mut Transaction<'_>,
        _prepared: &(),
        event: &OrderCreated,
        message: &bus::Message<'_>,
    ) -> Result<bool, Failure> {
        self.one_calls += 1;
        if self.fail_on == Some(event.event_id) {
            return Err(Failure("the database went away".into()));
        }
        let origin = inbox::Origin::of(message);
        let new = tx
            .query_opt(
                &inbox::record_sql("event_id"),
                &[
                    &event.event_id,
                    &event.order_id,
                    &origin.topic,
                    &origin.partition,
                    &origin.offset,
                ],
            )?
            .is_some();
        if new {
            tx.execute(
                "INSERT INTO effects (event_id, order_id) VALUES ($1, $2)",
                &[&event.event_id, &event.order_id],
            )?;
        }
        Ok(new)
    }
}

#[derive(Debug)]
struct Failure(String);

impl From<postgres::Error> for Failure {
    fn from(err: postgres::Error) -> Self {
        Failure(err.to_string())
    }
}

impl From<r2d2::Error> for Failure {
    fn from(err: r2d2::Error) -> Self {
        Failure(err.to_string())
    }
}

/// A database with the inbox's tables and an `effects` table, and the service.
struct Inbox {
    db: TestDatabase,
    pool: Pool,
    effects: Effects,
}

impl Inbox {
    fn new(name: &str) -> Self {
        let db = TestDatabase::new(name);
        let options = pgsetup::PoolOptions {
            max_size: 2,
            connect_timeout: Duration::from_secs(5),
        };
        let pool = pgsetup::prepare(&db.dsn(), inbox::migrations(), options).unwrap();
        db.client()
            .batch_execute(
                "CREATE TABLE effects (event_id BIGINT PRIMARY KEY, order_id BIGINT NOT NULL)",
            )
            .unwrap();
        Self {
            db,
            pool,
            effects: Effects::default(),
        }
    }

    /// Consumes `values` as one poll of `orders`: per message, whether its event was
    /// new (`None`: kept as a dead letter), and the results themselves.
    fn consume(&mut self, values: &[String]) -> (Vec<Option<bool>>, inbox::Poll<Effects>) {
        let poll =
            inbox::consume_poll(&self.pool, &mut self.effects, &poll_of("orders", values)).unwrap();
        let outcomes = poll
            .iter()
            .map(|consumed| consumed.outcome().copied())
            .collect();
        (outcomes, poll)
    }

    /// (together calls, one-by-one calls) so far.
    fn paths(&self) -> (usize, usize) {
        (self.effects.together_calls, self.effects.one_calls)
    }
}

fn event(event_id: i64, order_id: i64) -> String {
    contracts::encode(&OrderCreated {
        event_id,
        order_id,
        user_id: 1,
        total_amount: 10,
        created_at: Utc::now().trunc_subsecs(3),
    })
}

#[test]
fn valid_events_for_distinct_orders_are_applied_together_and_once() {
    let mut inbox = Inbox::new("inbox_together");
    let values = [event(1, 10), event(2, 11), event(3, 12)];
    let (outcomes, poll) = inbox.consume(&values);
    assert_eq!(outcomes, [Some(true); 3]);
    assert_eq!(inbox.paths(), (1, 0));
    match &poll[1] {
        Consumed::Applied { event, .. } => assert_eq!(event.order_id, 11),
        other => panic!("{other:?}"),
    }

    // The same poll again (a redelivery): recorded before, so nothing changes.
    let (again, _) = inbox.consume(&values);
    assert_eq!(again, [Some(false); 3]);
    assert_eq!(inbox.effects.together_calls, 2);
    assert_eq!(inbox.db.count("SELECT count(*) FROM processed_events"), 3);
    assert_eq!(inbox.db.count("SELECT count(*) FROM effects"), 3);
}

#[test]
fn a_poison_message_sends_the_poll_one_by_one_and_is_kept_byte_for_byte() {
    let mut inbox = Inbox::new("inbox_poison");
    let values = [event(1, 10), "not json".to_owned(), event(2, 11)];
    let (outcomes, poll) = inbox.consume(&values);
    assert_eq!(outcomes, [Some(true), None, Some(true)]);
    assert_eq!(inbox.paths(), (0, 2));
    let Consumed::DeadLettered { reason } = &poll[1] else {
        panic!("{:?}", poll[1]);
    };
    let kept = inbox
        .db
        .client()
        .query_one("SELECT kafka_offset, payload, error FROM dead_letters", &[])
        .unwrap();
    assert_eq!(kept.get::<_, i64>(0), 1);
    assert_eq!(kept.get::<_, Vec<u8>>(1), b"not json");
    assert_eq!(&kept.get::<_, String>(2), reason);
    assert_eq!(inbox.db.count("SELECT count(*) FROM effects"), 2);
}

#[test]
fn two_events_for_one_order_are_applied_one_by_one_in_order() {
    let mut inbox = Inbox::new("inbox_same_order");
    let values = [event(1, 10), event(2, 10), event(1, 10)];
    let (outcomes, _) = inbox.consume(&values);
    // The third is the first again, within the same poll: a duplicate.
    assert_eq!(outcomes, [Some(true), Some(true), Some(false)]);
    assert_eq!(inbox.paths(), (0, 3));
    assert_eq!(inbox.db.count("SELECT count(*) FROM processed_events"), 2);
}

#[test]
fn a_poll_that_fails_half_way_leaves_nothing_behind() {
    let mut inbox = Inbox::new("inbox_half_way");
    let values = [event(1, 10), "{}".to_owned(), event(2, 11)];
    inbox.effects.fail_on = Some(2);
    let err = inbox::consume_poll(&inbox.pool, &mut inbox.effects, &poll_of("orders", &values))
        .unwrap_err();
    assert!(err.0.contains("went away"), "{err:?}");
    for table in ["processed_events", "dead_letters", "effects"] {
        assert_eq!(
            inbox.db.count(&format!("SELECT count(*) FROM {table}")),
            0,
            "{table}: nothing of the poll is kept"
        );
    }
}
