//! Orders learn how they ended: `PaymentStatus` events from `KAFKA_TOPIC_STATUS`
//! move each order from `new` to `paid` or `payment_failed`.
//!
//! The `bus` consumer (its own OS thread) hands this handler the messages of a poll,
//! all its partitions at once; the inbox's [`inbox::consume_poll`] applies them in ONE
//! transaction, in ONE statement when they are all valid events for distinct orders
//! (the common case: a poll costs one round trip, not two per event), else one by one
//! in the poll's order (partition by partition, each in offset order); this module
//! says how an event applies to its order ([`inbox::Apply`]):
//! - the `event_id` is recorded in the inbox's `processed_events` first: a redelivered
//!   event finds it there and changes nothing;
//! - the order moves only from `new` (a status event for an order that already has
//!   its final status never moves it back, or sideways: the first decision stands);
//! - an event for an order this database does not have, and a message that is not a
//!   valid `PaymentStatus`, is kept in the inbox's `dead_letters` with the reason and
//!   acknowledged, so it never blocks the partition;
//! - the database unreachable: `Err` ([`DbError`]), the consumer retries the poll
//!   with backoff and commits no offset until it is applied.
//!
//! Offsets are committed by the consumer only after the transaction committed.

use std::sync::LazyLock;
use std::time::Duration;

use contracts::{PaymentOutcome, PaymentStatus};
use inbox::{Consumed, Origin};
use ops_http::{CounterFamily, Histogram, Metrics};
use pgsetup::{DbError, Pool};
use postgres::{Statement, Transaction};

/// Polls gather up to this much (about 200 `PaymentStatus` events) or wait
/// [`FETCH_MAX_WAIT`]: an order's final status is not on any caller's path, so
/// fewer, bigger transactions (fewer commits on the database every service shares)
/// are worth up to that much delay.
pub const FETCH_MIN_BYTES: u32 = 32 * 1024;

/// The longest a poll waits for [`FETCH_MIN_BYTES`]: how much later than at once an
/// order's status may show its payment when few arrive.
pub const FETCH_MAX_WAIT: Duration = Duration::from_millis(200);

/// The order status a payment outcome leads to.
pub fn final_status(outcome: PaymentOutcome) -> &'static str {
    match outcome {
        PaymentOutcome::Succeeded => "paid",
        PaymentOutcome::Failed => "payment_failed",
    }
}

/// Records the event id; a row back means the event is new.
static RECORD_EVENT: LazyLock<String> = LazyLock::new(|| inbox::record_sql("event_id"));

/// Moves a `new` order to its final status; returns how long it took, on the
/// database clock.
const MOVE_ORDER: &str = "
UPDATE orders SET status = $2, updated_at = clock_timestamp()
WHERE order_id = $1 AND status = 'new'
RETURNING EXTRACT(EPOCH FROM clock_timestamp() - created_at)::float8";

const ORDER_STATUS: &str = "SELECT status FROM orders WHERE order_id = $1";

/// A poll's events (distinct event ids, distinct orders) applied together: each new
/// event recorded, each of their `new` orders moved. Per event: whether it was new,
/// the seconds from creation to the move (if moved), and the order's status before
/// the statement (none: no such order).
static APPLY_MANY: LazyLock<String> = LazyLock::new(|| {
    format!(
        "
WITH incoming AS (
    SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::int[], $5::bigint[], $6::text[])
        AS t(event_id, order_id, kafka_topic, kafka_partition, kafka_offset, status)
),
{},
moved AS (
    UPDATE orders o SET status = i.status, updated_at = clock_timestamp()
    FROM incoming i JOIN recorded r ON r.event_id = i.event_id
    WHERE o.order_id = i.order_id AND o.status = 'new'
    RETURNING i.event_id, EXTRACT(EPOCH FROM clock_timestamp() - o.created_at)::float8 AS seconds
)
SELECT i.event_id, r.event_id IS NOT NULL, m.seconds, o.status
FROM incoming i
LEFT JOIN recorded r ON r.event_id = i.event_id
LEFT JOIN moved m ON m.event_id = i.event_id
LEFT JOIN orders o ON o.order_id = i.order_id",
        inbox::record_many_cte("incoming")
    )
});

/// Takes back an event's record: it is dead-lettered instead (an operator may
/// replay it once the order exists).
const FORGET_EVENT: &str = "DELETE FROM processed_events WHERE event_id = $1";

/// The consumer's counters and the time-to-final-status histogram.
#[derive(Debug, Clone)]
pub struct ResultMetrics {
    /// By `outcome`: applied, duplicate, already_final, dead_lettered.
    events: CounterFamily<1>,
    /// By final `status`: paid, payment_failed.
    final_status: CounterFamily<1>,
    time_to_final: Histogram,
    failures: ops_http::Counter,
}

impl ResultMetrics {
    pub fn register(metrics: &Metrics) -> Self {
        Self {
            events: metrics.counter_family(
                "orders_status_events_total",
                "PaymentStatus events handled, by outcome (applied, duplicate, already_final, dead_lettered).",
                ["outcome"],
            ),
            final_status: metrics.counter_family(
                "orders_final_status_total",
                "Orders that reached a final status, by status (paid, payment_failed).",
                ["status"],
            ),
            time_to_final: metrics.histogram(
                "orders_time_to_final_status_seconds",
                "Time from an order's creation to its final status, on the database clock.",
            ),
            failures: metrics.counter(
                "orders_status_event_failures_total",
                "Attempts to apply PaymentStatus events that failed (database); each is retried.",
            ),
        }
    }
}

/// What applying one message did.
#[derive(Debug, Clone, PartialEq)]
enum Applied {
    /// The order moved from `new` to `status`, `seconds` after it was created.
    Moved { status: &'static str, seconds: f64 },
    /// This `event_id` was applied before.
    Duplicate,
    /// The order already had its final status (`current`); it stays.
    AlreadyFinal { current: String },
    /// Kept in `dead_letters`, with the reason.
    DeadLettered { reason: String },
}

/// The `bus::Handler` that applies `PaymentStatus` events to orders.
pub struct PaymentResults {
    pool: Pool,
    metrics: ResultMetrics,
}

/// Where a message that cannot be applied is kept, for its log line.
const DEAD_LETTERS_KEPT: &str = "in orders' dead_letters table";

/// The statements of the one-by-one path, prepared before its transaction.
struct Statements {
    record: Statement,
    move_order: Statement,
    order_status: Statement,
    forget: Statement,
}

impl PaymentResults {
    pub fn new(pool: Pool, metrics: ResultMetrics) -> Self {
        Self { pool, metrics }
    }

    /// Logs and counts what a committed poll did, message by message.
    fn report(&self, messages: &[bus::Message<'_>], poll: &inbox::Poll<ApplyResults>) {
        for (message, consumed) in messages.iter().zip(poll) {
            match consumed {
                Consumed::Applied { outcome, .. } => self.record(message, outcome),
                Consumed::DeadLettered { reason } => self.record(
                    message,
                    &Applied::DeadLettered {
                        reason: reason.clone(),
                    },
                ),
            }
        }
    }

    /// Logs and counts what was applied to one message (after the commit).
    fn record(&self, message: &bus::Message<'_>, applied: &Applied) {
        let outcome = match applied {
            Applied::Moved { status, seconds } => {
                self.metrics.final_status.with_labels([status]).inc();
                self.metrics
                    .time_to_final
                    .observe(std::time::Duration::from_secs_f64(seconds.max(0.0)));
                "applied"
            }
            Applied::Duplicate => "duplicate",
            Applied::AlreadyFinal { current } => {
                tracing::warn!(
                    partition = message.partition,
                    offset = message.offset,
                    current,
                    "PaymentStatus for an order that already has its final status: it stays"
                );
                "already_final"
            }
            Applied::DeadLettered { reason } => {
                message.log_dead_letter(reason, DEAD_LETTERS_KEPT);
                "dead_lettered"
            }
        };
        self.metrics.events.with_labels([outcome]).inc();
    }
}

/// How a `PaymentStatus` applies to its order, on each of the inbox's paths.
struct ApplyResults;

impl inbox::Apply for ApplyResults {
    type Event = PaymentStatus;
    type Outcome = Applied;
    type Prepared = Statements;
    type Error = DbError;

    /// In one statement, in a transaction: an event for an order this database does
    /// not have is then dead-lettered on its own, in the same transaction.
    fn apply_together(
        &mut self,
        client: &mut pgsetup::PooledClient,
        events: &[(&PaymentStatus, &bus::Message<'_>)],
    ) -> Result<Vec<Applied>, DbError> {
        let apply_many = client.prepare_cached(&APPLY_MANY)?;
        let order_status = client.prepare_cached(ORDER_STATUS)?;
        let forget = client.prepare_cached(FORGET_EVENT)?;
        let mut tx = client.transaction()?;
        let applied = apply_together(&mut tx, &apply_many, &order_status, &forget, events)?;
        tx.commit()?;
        Ok(applied)
    }

    fn prepare(&mut self, client: &mut pgsetup::PooledClient) -> Result<Statements, DbError> {
        Ok(Statements {
            record: client.prepare_cached(&RECORD_EVENT)?,
            move_order: client.prepare_cached(MOVE_ORDER)?,
            order_status: client.prepare_cached(ORDER_STATUS)?,
            forget: client.prepare_cached(FORGET_EVENT)?,
        })
    }

    fn apply_one(
        &mut self,
        tx: &mut Transaction<'_>,
        statements: &Statements,
        event: &PaymentStatus,
        message: &bus::Message<'_>,
    ) -> Result<Applied, DbError> {
        Ok(apply(tx, statements, event, message)?)
    }
}

/// Applies `events` (each with its message) in one statement ([`APPLY_MANY`]); an
/// event for an order this database does not have is then dead-lettered on its own.
fn apply_together(
    tx: &mut Transaction<'_>,
    apply_many: &Statement,
    order_status: &Statement,
    forget: &Statement,
    events: &[(&PaymentStatus, &bus::Message<'_>)],
) -> Result<Vec<Applied>, postgres::Error> {
    let event_ids: Vec<i64> = events.iter().map(|(e, _)| e.event_id).collect();
    let order_ids: Vec<i64> = events.iter().map(|(e, _)| e.order_id).collect();
    let topics: Vec<&str> = events.iter().map(|(_, m)| m.topic).collect();
    let partitions: Vec<i32> = events.iter().map(|(_, m)| m.partition).collect();
    let offsets: Vec<i64> = events.iter().map(|(_, m)| m.offset).collect();
    let statuses: Vec<&str> = events
        .iter()
        .map(|(e, _)| final_status(e.order_status))
        .collect();
    let rows = tx.query(
        apply_many,
        &[
            &event_ids,
            &order_ids,
            &topics,
            &partitions,
            &offsets,
            &statuses,
        ],
    )?;
    let mut by_event = std::collections::HashMap::with_capacity(rows.len());
    for row in &rows {
        let event_id: i64 = row.try_get(0)?;
        let recorded: bool = row.try_get(1)?;
        let seconds: Option<f64> = row.try_get(2)?;
        let current: Option<String> = row.try_get(3)?;
        by_event.insert(event_id, (recorded, seconds, current));
    }
    let mut applied = Vec::with_capacity(events.len());
    for ((event, message), status) in events.iter().zip(statuses) {
        let outcome = match by_event.remove(&event.event_id) {
            Some((false, _, _)) => Applied::Duplicate,
            Some((true, Some(seconds), _)) => Applied::Moved { status, seconds },
            // Still `new` in the statement's snapshot but not moved: another transaction
            // moved it meanwhile; its status now is what the log must name.
            Some((true, None, Some(current))) if current == "new" => {
                match tx.query_opt(order_status, &[&event.order_id])? {
                    Some(row) => Applied::AlreadyFinal {
                        current: row.try_get(0)?,
                    },
                    None => Applied::AlreadyFinal { current },
                }
            }
            Some((true, None, Some(current))) => Applied::AlreadyFinal { current },
            // Recorded, but no such order (or no row back at all): taken back and kept.
            Some((true, None, None)) | None => {
                tx.execute(forget, &[&event.event_id])?;
                unknown_order(tx, event, message)?
            }
        };
        applied.push(outcome);
    }
    Ok(applied)
}

/// Applies one event inside the poll's transaction.
fn apply(
    tx: &mut Transaction<'_>,
    statements: &Statements,
    result: &PaymentStatus,
    message: &bus::Message<'_>,
) -> Result<Applied, postgres::Error> {
    let origin = Origin::of(message);
    let recorded = tx.query_opt(
        &statements.record,
        &[
            &result.event_id,
            &result.order_id,
            &origin.topic,
            &origin.partition,
            &origin.offset,
        ],
    )?;
    if recorded.is_none() {
        return Ok(Applied::Duplicate);
    }
    let status = final_status(result.order_status);
    if let Some(row) = tx.query_opt(&statements.move_order, &[&result.order_id, &status])? {
        return Ok(Applied::Moved {
            status,
            seconds: row.try_get(0)?,
        });
    }
    match tx.query_opt(&statements.order_status, &[&result.order_id])? {
        Some(row) => Ok(Applied::AlreadyFinal {
            current: row.try_get(0)?,
        }),
        None => {
            tx.execute(&statements.forget, &[&result.event_id])?;
            unknown_order(tx, result, message)
        }
    }
}

/// Keeps `message` in `dead_letters`: its order does not exist here (an operator may
/// replay it once it does). Its event's record is taken back first by the caller.
fn unknown_order(
    tx: &mut Transaction<'_>,
    event: &PaymentStatus,
    message: &bus::Message<'_>,
) -> Result<Applied, postgres::Error> {
    let reason = format!("order {} does not exist in this database", event.order_id);
    Ok(Applied::DeadLettered {
        reason: inbox::keep_dead_letter(tx, message, reason)?,
    })
}

impl bus::Handler for PaymentResults {
    type Error = DbError;

    fn handle(&mut self, message: &bus::Message<'_>) -> Result<(), DbError> {
        self.handle_batch(std::slice::from_ref(message))
            .map_err(|failure| failure.error)
    }

    fn handle_batch(
        &mut self,
        messages: &[bus::Message<'_>],
    ) -> Result<(), bus::BatchFailure<DbError>> {
        if messages.is_empty() {
            return Ok(());
        }
        match inbox::consume_poll(&self.pool, &mut ApplyResults, messages) {
            Ok(poll) => {
                self.report(messages, &poll);
                Ok(())
            }
            Err(error) => {
                self.metrics.failures.inc();
                // One transaction: nothing of the poll was written.
                Err(bus::BatchFailure { handled: 0, error })
            }
        }
    }
}
