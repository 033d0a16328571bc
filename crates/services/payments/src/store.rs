//! Payments in PostgreSQL. Blocking: called from the consumer thread (and from
//! async code only through `spawn_blocking`).
//!
//! [`PaymentStore::process_batch`] is the heart of the worker, for the messages of one
//! poll. The inbox's [`inbox::consume_poll`] decodes them and picks the path (all
//! together, or one by one with poison messages kept in `dead_letters`); this module
//! says how a payment is decided and recorded on each path ([`inbox::Apply`]):
//! 1. **decide**, before any transaction is open: look up which `event_id`s are
//!    already in `processed_events` and ask the [`PaymentProvider`] for the decision
//!    on the others (once per `event_id`, all of them at once:
//!    [`PaymentProvider::decide_all`]), so a slow provider never holds a database
//!    transaction open;
//! 2. **record**, atomically: record each `event_id` in `processed_events`; if it was
//!    already there the event was handled before (redelivery) and is reported
//!    [`Processed::Duplicate`]; otherwise insert the payment with its decision and,
//!    only if it is new, the `PaymentStatus` outbox row whose `event_id` is that row's
//!    own id. All of it takes effect, or none.
//!
//! The common batch, events for distinct orders, takes two round trips: the look-up of
//! step 1 also draws the `PaymentStatus` event ids, and step 2 is ONE statement for the
//! whole batch (atomic on its own, so no BEGIN and COMMIT round trips); the events the
//! look-up found processed are duplicates and stay out of it. Any other batch (poison
//! messages or two events for one order) is recorded one message at a time in ONE
//! transaction.
//!
//! Step 2 stays the authority on new events: one another worker recorded between the
//! two steps is still skipped there (its decision is dropped). In the one-transaction
//! path, an event that was in `processed_events` at step 1 and no longer at step 2
//! (retention deleted it meanwhile) has no decision: the transaction is rolled back
//! and the batch retried ([`ProcessError::Undecided`]).
//!
//! An order has exactly one payment: if another event (a different `event_id`) for
//! an order that is already paid arrives, the first decision stands, nothing is
//! re-decided and no second `PaymentStatus` is written ([`Processed::AlreadyPaid`]).

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use contracts::{OrderCreated, PaymentOutcome, PaymentStatus};
use inbox::Consumed;
use outbox::OutboxRow;
use pgsetup::Pool;
use postgres::types::ToSql;
use postgres::{Statement, Transaction};

use crate::provider::{Decision, PaymentProvider, ProviderError};

pub use inbox::{DeadLetter, Origin};

/// What [`PaymentStore::process_batch`] did with one `OrderCreated`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Processed {
    /// New event: the payment was decided and its `PaymentStatus` queued.
    Decided(PaymentOutcome),
    /// This `event_id` was processed before; nothing changed.
    Duplicate,
    /// A new `event_id`, but the order already has its payment; nothing else changed.
    AlreadyPaid,
}

/// What became of each message of a poll: its `OrderCreated` and what was done, or
/// the reason it was kept in `dead_letters`.
pub type PollOutcome = Vec<Consumed<OrderCreated, Processed>>;

/// A database failure: the platform's one classification ([`pgsetup::DbError`]), whose
/// [`Rejected`](pgsetup::DbError::Rejected) (the data itself refused) dead-letters a
/// message.
pub type StoreError = pgsetup::DbError;

/// Why processing an event failed.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Provider(#[from] ProviderError),
    /// The event was already processed when the batch was decided, but no longer when
    /// it was recorded (retention deleted its `processed_events` row in between): it
    /// has no decision. Nothing was written; retrying decides it.
    #[error(
        "event {event_id} has no payment decision (its processed_events row went away meanwhile)"
    )]
    Undecided { event_id: i64 },
    /// The batch statement answered nothing for one of its events (never expected: it
    /// answers for each). What it recorded is kept; retrying skips it as duplicates.
    #[error("the batch statement gave no result for event {event_id}")]
    NotRecorded { event_id: i64 },
}

impl From<postgres::Error> for ProcessError {
    fn from(err: postgres::Error) -> Self {
        ProcessError::Store(err.into())
    }
}

impl From<r2d2::Error> for ProcessError {
    fn from(err: r2d2::Error) -> Self {
        ProcessError::Store(err.into())
    }
}

/// Which of the given event ids are already processed.
const SELECT_PROCESSED: &str = "
SELECT event_id FROM processed_events WHERE event_id = ANY($1)";

/// Claims the event id and, for a new event, draws the id of its outbox row.
static RECORD_EVENT: LazyLock<String> = LazyLock::new(|| inbox::record_sql(outbox::NEXT_EVENT_ID));

/// The payment and, only if it is new, its outbox row (the outbox crate's insert,
/// its values `$7..$11`).
static INSERT_PAYMENT: LazyLock<String> = LazyLock::new(|| {
    format!(
        "
WITH payment AS (
    INSERT INTO payments (order_id, user_id, amount, status, failure_reason, provider_payment_id)
    VALUES ($1, $2, $3, $4, $5, $6)
    ON CONFLICT (order_id) DO NOTHING
    RETURNING order_id
)
{}",
        outbox::insert_sql(7, Some("payment"))
    )
});

/// Which of `$1`'s event ids are already processed, and `$2` fresh event ids for the
/// `PaymentStatus` rows of a batch, in one round trip: `(processed, NULL)` rows, then
/// `(NULL, drawn)` rows.
static PROCESSED_AND_DRAWN: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT event_id, NULL::bigint FROM processed_events WHERE event_id = ANY($1)
         UNION ALL
         SELECT NULL::bigint, {} FROM generate_series(1, $2::int)",
        outbox::NEXT_EVENT_ID
    )
});

/// A batch's events (distinct event ids, distinct orders) recorded together: each
/// new event recorded, its payment inserted unless the order has one, and for each
/// new payment its `PaymentStatus` outbox row. Per event: whether it was new, and
/// whether its payment was.
static RECORD_MANY: LazyLock<String> = LazyLock::new(|| {
    format!(
        "
WITH incoming AS (
    SELECT * FROM unnest(
        $1::bigint[], $2::bigint[], $3::text[], $4::int[], $5::bigint[],
        $6::bigint[], $7::bigint[], $8::text[], $9::bigint[], $10::text[], $11::text[],
        $13::text[], $14::text[], $15::text[]
    ) AS t(event_id, order_id, kafka_topic, kafka_partition, kafka_offset,
           user_id, amount, status, status_event_id, message_key, payload,
           failure_reason, provider_payment_id, trace_context)
),
{},
paid AS (
    INSERT INTO payments (order_id, user_id, amount, status, failure_reason, provider_payment_id)
    SELECT i.order_id, i.user_id, i.amount, i.status, i.failure_reason, i.provider_payment_id
    FROM incoming i JOIN recorded r ON r.event_id = i.event_id
    ON CONFLICT (order_id) DO NOTHING
    RETURNING order_id
),
published AS (
    {}
)
SELECT i.event_id, r.event_id IS NOT NULL, p.order_id IS NOT NULL
FROM incoming i
LEFT JOIN recorded r ON r.event_id = i.event_id
LEFT JOIN paid p ON p.order_id = i.order_id",
        inbox::record_many_cte("incoming"),
        outbox::insert_select_sql(
            "SELECT i.status_event_id, $12, i.message_key, i.payload, i.trace_context \
             FROM incoming i JOIN paid p ON p.order_id = i.order_id"
        )
    )
});

/// The provider's decision for each event to record, by `event_id`.
type Decisions = HashMap<i64, Decision>;

/// The answers of one [`PaymentProvider::decide_all`], all decisions, or the error
/// that decides what happens to the poll: "unavailable" (retry it all later) wins
/// over "gave up" (dead-letter the order that gave up, the others are redone one by
/// one).
fn settle(answers: Vec<Result<Decision, ProviderError>>) -> Result<Vec<Decision>, ProviderError> {
    let mut decisions = Vec::with_capacity(answers.len());
    let mut gave_up = None;
    for answer in answers {
        match answer {
            Ok(decision) => decisions.push(decision),
            Err(err @ ProviderError::Unavailable(_)) => return Err(err),
            Err(err @ ProviderError::GaveUp(_)) => {
                gave_up.get_or_insert(err);
            }
        }
    }
    gave_up.map_or(Ok(decisions), Err)
}

/// The statements the one-by-one transaction runs, prepared (and cached) on its
/// connection.
struct Statements {
    record_event: Statement,
    insert_payment: Statement,
}

#[derive(Clone)]
pub struct PaymentStore {
    pool: Pool,
    status_topic: String,
}

impl PaymentStore {
    /// `status_topic` is where the outbox relay will publish this store's events.
    pub fn new(pool: Pool, status_topic: String) -> Self {
        Self { pool, status_topic }
    }

    fn client(&self) -> Result<pgsetup::PooledClient, StoreError> {
        self.pool.get().map_err(StoreError::NoConnection)
    }

    /// Handles the messages of a poll, in their order, with one commit (one WAL flush
    /// for the lot): all decided first, then recorded in one statement when they are
    /// all events for distinct orders (the common case), else one by one in one
    /// transaction; poison ones go to `dead_letters`; all of it takes effect, or none.
    pub fn process_batch(
        &self,
        messages: &[bus::Message<'_>],
        provider: &mut dyn PaymentProvider,
    ) -> Result<PollOutcome, ProcessError> {
        let mut payments = Payments {
            store: self,
            provider,
            decisions: Decisions::new(),
        };
        inbox::consume_poll(&self.pool, &mut payments, messages)
    }

    /// A batch of events for distinct orders (the common case) in two round trips: one
    /// look-up that also draws the `PaymentStatus` event ids, the provider asked for
    /// the new events (all at once, [`PaymentProvider::decide_all`]; no transaction
    /// open), then ONE statement that records them all.
    /// A single statement is atomic on its own, so no transaction is opened around it.
    /// An event the look-up finds processed is a duplicate and stays out of the
    /// statement; one another worker records in between is a duplicate there.
    fn process_together(
        &self,
        client: &mut pgsetup::PooledClient,
        orders: &[(&OrderCreated, &bus::Message<'_>)],
        provider: &mut dyn PaymentProvider,
    ) -> Result<Vec<Processed>, ProcessError> {
        let (processed, drawn) = processed_and_drawn(client, orders)?;
        let mut columns = RecordColumns::with_capacity(orders.len());
        let mut decisions = Decisions::with_capacity(orders.len());
        let new: Vec<_> = orders
            .iter()
            .zip(drawn)
            .filter(|((order, _), _)| !processed.contains(&order.event_id))
            .collect();
        let asked: Vec<&OrderCreated> = new.iter().map(|((order, _), _)| *order).collect();
        let answers = settle(provider.decide_all(&asked))?;
        for (((order, message), status_event_id), decision) in new.into_iter().zip(answers) {
            columns.push(order, Origin::of(message), &decision, status_event_id);
            decisions.insert(order.event_id, decision);
        }
        let mut recorded = HashMap::with_capacity(decisions.len());
        if !decisions.is_empty() {
            let record_many = client.prepare_cached(&RECORD_MANY)?;
            for row in client.query(&record_many, &columns.params(&self.status_topic))? {
                let event_id: i64 = row.try_get(0)?;
                let new_event: bool = row.try_get(1)?;
                let new_payment: bool = row.try_get(2)?;
                recorded.insert(event_id, (new_event, new_payment));
            }
        }
        orders
            .iter()
            .map(|(order, _)| {
                if processed.contains(&order.event_id) {
                    return Ok(Processed::Duplicate);
                }
                match (
                    recorded.get(&order.event_id),
                    decisions.get(&order.event_id),
                ) {
                    (Some((false, _)), _) => Ok(Processed::Duplicate),
                    (Some((true, true)), Some(decision)) => {
                        Ok(Processed::Decided(decision.outcome))
                    }
                    (Some((true, false)), _) => Ok(Processed::AlreadyPaid),
                    _ => Err(ProcessError::NotRecorded {
                        event_id: order.event_id,
                    }),
                }
            })
            .collect()
    }

    /// Asks the provider for the outcome of each order whose `event_id` is not
    /// processed yet, once per `event_id`. No transaction is open and no connection
    /// is held while the provider answers; a provider error fails the lot before
    /// anything is written.
    fn decide_new<'o>(
        &self,
        orders: impl IntoIterator<Item = &'o OrderCreated>,
        provider: &mut dyn PaymentProvider,
    ) -> Result<Decisions, ProcessError> {
        let orders: Vec<&OrderCreated> = orders.into_iter().collect();
        let processed = already_processed(&mut self.client()?, &orders)?;
        let mut asked: Vec<&OrderCreated> = Vec::with_capacity(orders.len());
        let mut seen = HashSet::with_capacity(orders.len());
        for order in orders {
            if !processed.contains(&order.event_id) && seen.insert(order.event_id) {
                asked.push(order);
            }
        }
        let answers = settle(provider.decide_all(&asked))?;
        Ok(asked
            .iter()
            .map(|order| order.event_id)
            .zip(answers)
            .collect())
    }

    /// Records one `OrderCreated` with its decision: a duplicate `event_id` changes
    /// nothing; a new one gets its payment and, if the order had none, its
    /// `PaymentStatus` outbox row.
    fn record_order(
        &self,
        tx: &mut Transaction<'_>,
        statements: &Statements,
        order: &OrderCreated,
        origin: Origin<'_>,
        decisions: &Decisions,
    ) -> Result<Processed, ProcessError> {
        let Some(claimed) = tx.query_opt(
            &statements.record_event,
            &[
                &order.event_id,
                &order.order_id,
                &origin.topic,
                &origin.partition,
                &origin.offset,
            ],
        )?
        else {
            return Ok(Processed::Duplicate);
        };
        let status_event_id: i64 = claimed.try_get(0)?;
        let decision = decisions
            .get(&order.event_id)
            .ok_or(ProcessError::Undecided {
                event_id: order.event_id,
            })?;
        let outcome = decision.outcome;
        let status = PaymentStatus {
            event_id: status_event_id,
            order_id: order.order_id,
            user_id: order.user_id,
            order_status: outcome,
        };
        let outbox_row = OutboxRow::new(
            status_event_id,
            &self.status_topic,
            contracts::message_key(order.order_id),
            &status,
        )
        .traced(origin.trace);
        let payment: [&(dyn ToSql + Sync); 6] = [
            &order.order_id,
            &order.user_id,
            &order.total_amount,
            &outcome.as_str(),
            &decision.reason,
            &decision.reference,
        ];
        let params: Vec<&(dyn ToSql + Sync)> =
            payment.into_iter().chain(outbox_row.params()).collect();
        let inserted = tx.execute(&statements.insert_payment, &params)?;
        Ok(if inserted == 0 {
            Processed::AlreadyPaid
        } else {
            Processed::Decided(outcome)
        })
    }

    /// Keeps a message that cannot be used, in its own statement.
    pub fn dead_letter(&self, dead_letter: &DeadLetter<'_>) -> Result<(), StoreError> {
        self.client()?
            .execute(inbox::INSERT_DEAD_LETTER, &dead_letter.params())?;
        Ok(())
    }

    /// One round trip, for readiness.
    pub fn ping(&self) -> Result<(), StoreError> {
        self.client()?.batch_execute("SELECT 1")?;
        Ok(())
    }
}

/// The columns of [`RECORD_MANY`], one element per event.
struct RecordColumns {
    event_ids: Vec<i64>,
    order_ids: Vec<i64>,
    topics: Vec<String>,
    partitions: Vec<i32>,
    offsets: Vec<i64>,
    user_ids: Vec<i64>,
    amounts: Vec<i64>,
    statuses: Vec<&'static str>,
    status_event_ids: Vec<i64>,
    keys: Vec<String>,
    payloads: Vec<String>,
    reasons: Vec<Option<String>>,
    references: Vec<Option<String>>,
    trace_contexts: Vec<Option<String>>,
}

impl RecordColumns {
    fn with_capacity(capacity: usize) -> Self {
        Self {
            event_ids: Vec::with_capacity(capacity),
            order_ids: Vec::with_capacity(capacity),
            topics: Vec::with_capacity(capacity),
            partitions: Vec::with_capacity(capacity),
            offsets: Vec::with_capacity(capacity),
            user_ids: Vec::with_capacity(capacity),
            amounts: Vec::with_capacity(capacity),
            statuses: Vec::with_capacity(capacity),
            status_event_ids: Vec::with_capacity(capacity),
            keys: Vec::with_capacity(capacity),
            payloads: Vec::with_capacity(capacity),
            reasons: Vec::with_capacity(capacity),
            references: Vec::with_capacity(capacity),
            trace_contexts: Vec::with_capacity(capacity),
        }
    }

    fn push(
        &mut self,
        order: &OrderCreated,
        origin: Origin<'_>,
        decision: &Decision,
        status_event_id: i64,
    ) {
        let outcome = decision.outcome;
        let status = PaymentStatus {
            event_id: status_event_id,
            order_id: order.order_id,
            user_id: order.user_id,
            order_status: outcome,
        };
        self.event_ids.push(order.event_id);
        self.order_ids.push(order.order_id);
        self.topics.push(origin.topic.to_owned());
        self.partitions.push(origin.partition);
        self.offsets.push(origin.offset);
        self.user_ids.push(order.user_id);
        self.amounts.push(order.total_amount);
        self.statuses.push(outcome.as_str());
        self.status_event_ids.push(status_event_id);
        self.keys.push(contracts::message_key(order.order_id));
        self.payloads.push(contracts::encode(&status));
        self.reasons.push(decision.reason.clone());
        self.references.push(decision.reference.clone());
        self.trace_contexts
            .push(origin.trace.map(telemetry::TraceHeaders::stored));
    }

    /// The statement's parameters, `status_topic` at `$12`, then the decisions'
    /// reasons, references and trace contexts.
    fn params<'p>(&'p self, status_topic: &'p String) -> [&'p (dyn ToSql + Sync); 15] {
        [
            &self.event_ids,
            &self.order_ids,
            &self.topics,
            &self.partitions,
            &self.offsets,
            &self.user_ids,
            &self.amounts,
            &self.statuses,
            &self.status_event_ids,
            &self.keys,
            &self.payloads,
            status_topic,
            &self.reasons,
            &self.references,
            &self.trace_contexts,
        ]
    }
}

/// The `event_id`s among `orders` already in `processed_events`, and one fresh event
/// id per order for its `PaymentStatus` ([`PROCESSED_AND_DRAWN`]). Ids drawn for
/// orders that turn out not to need one are unused: a sequence may have gaps.
fn processed_and_drawn(
    client: &mut pgsetup::PooledClient,
    orders: &[(&OrderCreated, &bus::Message<'_>)],
) -> Result<(HashSet<i64>, Vec<i64>), postgres::Error> {
    let event_ids: Vec<i64> = orders.iter().map(|(order, _)| order.event_id).collect();
    let count = i32::try_from(orders.len()).unwrap_or(i32::MAX);
    let statement = client.prepare_cached(&PROCESSED_AND_DRAWN)?;
    let (mut processed, mut drawn) = (HashSet::new(), Vec::with_capacity(orders.len()));
    for row in client.query(&statement, &[&event_ids, &count])? {
        match (row.try_get(0)?, row.try_get(1)?) {
            (Some(event_id), _) => {
                processed.insert(event_id);
            }
            (None, Some(id)) => drawn.push(id),
            (None, None) => {}
        }
    }
    Ok((processed, drawn))
}

/// The `event_id`s among `orders` already in `processed_events` (no query for none).
fn already_processed(
    client: &mut pgsetup::PooledClient,
    orders: &[&OrderCreated],
) -> Result<HashSet<i64>, postgres::Error> {
    if orders.is_empty() {
        return Ok(HashSet::new());
    }
    let event_ids: Vec<i64> = orders.iter().map(|order| order.event_id).collect();
    let select = client.prepare_cached(SELECT_PROCESSED)?;
    client
        .query(&select, &[&event_ids])?
        .iter()
        .map(|row| row.try_get(0))
        .collect()
}

/// A poll being processed: the store, the provider, and the decisions taken before
/// the one-by-one path's transaction.
struct Payments<'s, 'p> {
    store: &'s PaymentStore,
    provider: &'p mut dyn PaymentProvider,
    decisions: Decisions,
}

impl inbox::Apply for Payments<'_, '_> {
    type Event = OrderCreated;
    type Outcome = Processed;
    type Prepared = Statements;
    type Error = ProcessError;

    fn apply_together(
        &mut self,
        client: &mut pgsetup::PooledClient,
        events: &[(&OrderCreated, &bus::Message<'_>)],
    ) -> Result<Vec<Processed>, ProcessError> {
        self.store.process_together(client, events, self.provider)
    }

    fn before_one_by_one(&mut self, events: &[&OrderCreated]) -> Result<(), ProcessError> {
        self.decisions = self
            .store
            .decide_new(events.iter().copied(), self.provider)?;
        Ok(())
    }

    fn prepare(&mut self, client: &mut pgsetup::PooledClient) -> Result<Statements, ProcessError> {
        Ok(Statements {
            record_event: client.prepare_cached(&RECORD_EVENT)?,
            insert_payment: client.prepare_cached(&INSERT_PAYMENT)?,
        })
    }

    fn apply_one(
        &mut self,
        tx: &mut Transaction<'_>,
        statements: &Statements,
        order: &OrderCreated,
        message: &bus::Message<'_>,
    ) -> Result<Processed, ProcessError> {
        self.store
            .record_order(tx, statements, order, Origin::of(message), &self.decisions)
    }
}

impl std::fmt::Debug for PaymentStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PaymentStore")
            .field("status_topic", &self.status_topic)
            .finish_non_exhaustive()
    }
}
