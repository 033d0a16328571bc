//! Payments in PostgreSQL. Blocking: called from the consumer thread (and from
//! async code only through `spawn_blocking`).
//!
//! [`PaymentStore::process`] is the heart of the worker, one transaction per
//! `OrderCreated`:
//! 1. record the `event_id` in `processed_events`; if it was already there the event
//!    was handled before (redelivery): commit and report [`Processed::Duplicate`];
//! 2. ask the [`PaymentProvider`] for the outcome;
//! 3. insert the payment and, only if it is new, the `PaymentStatus` outbox row whose
//!    `event_id` is that row's own id (one statement).
//!
//! An order has exactly one payment: if another event (a different `event_id`) for
//! an order that is already paid arrives, the first decision stands, nothing is
//! re-decided and no second `PaymentStatus` is written ([`Processed::AlreadyPaid`]).

use contracts::{OrderCreated, PaymentOutcome, PaymentStatus};
use pgsetup::Pool;

use crate::provider::{PaymentProvider, ProviderError};

/// Where a message came from, recorded with it.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
}

/// What [`PaymentStore::process`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Processed {
    /// New event: the payment was decided and its `PaymentStatus` queued.
    Decided(PaymentOutcome),
    /// This `event_id` was processed before; nothing changed.
    Duplicate,
    /// A new `event_id`, but the order already has its payment; nothing else changed.
    AlreadyPaid,
    /// A poison message, stored in `dead_letters`.
    DeadLettered,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached right now; retrying later may work.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The database refused the data itself (a data or constraint error): retrying
    /// the same message cannot help.
    #[error("database refused the data: {0}")]
    Rejected(String),
    #[error("database error: {0}")]
    Internal(String),
}

impl From<postgres::Error> for StoreError {
    fn from(err: postgres::Error) -> Self {
        if pgsetup::is_unavailable(&err) {
            return StoreError::Unavailable(err.to_string());
        }
        let class = err.code().and_then(|code| code.code().get(..2));
        match class {
            // 22: data exception, 23: integrity constraint violation.
            Some("22" | "23") => StoreError::Rejected(err.to_string()),
            _ => StoreError::Internal(err.to_string()),
        }
    }
}

/// Why processing an event failed.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Provider(#[from] ProviderError),
}

impl From<postgres::Error> for ProcessError {
    fn from(err: postgres::Error) -> Self {
        ProcessError::Store(err.into())
    }
}

/// Claims the event id and, for a new event, draws the id of its outbox row.
const RECORD_EVENT: &str = "
INSERT INTO processed_events (event_id, order_id, kafka_topic, kafka_partition, kafka_offset)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (event_id) DO NOTHING
RETURNING nextval('events_event_id_seq')";

/// The payment and, only if it is new, its outbox row.
const INSERT_PAYMENT: &str = "
WITH payment AS (
    INSERT INTO payments (order_id, user_id, amount, status)
    VALUES ($1, $2, $3, $4)
    ON CONFLICT (order_id) DO NOTHING
    RETURNING order_id
)
INSERT INTO events (event_id, topic, message_key, payload)
SELECT $5, $6, $7, $8::text::json FROM payment";

const INSERT_DEAD_LETTER: &str = "
INSERT INTO dead_letters (kafka_topic, kafka_partition, kafka_offset, message_key, payload, error)
VALUES ($1, $2, $3, $4, $5, $6)";

/// One message of a batch: an event to process, or a poison message to keep.
#[derive(Debug, Clone)]
pub enum BatchItem<'a> {
    Order(OrderCreated, Origin<'a>),
    Poison {
        origin: Origin<'a>,
        key: &'a [u8],
        payload: &'a [u8],
        reason: String,
    },
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
        self.pool
            .get()
            .map_err(|err| StoreError::Unavailable(format!("no database connection: {err}")))
    }

    /// Handles one `OrderCreated` in one transaction; see the module docs.
    pub fn process(
        &self,
        order: &OrderCreated,
        origin: Origin<'_>,
        provider: &mut dyn PaymentProvider,
    ) -> Result<Processed, ProcessError> {
        let processed = self.process_batch(&[BatchItem::Order(order.clone(), origin)], provider)?;
        processed
            .into_iter()
            .next()
            .ok_or_else(|| ProcessError::Store(StoreError::Internal("empty batch result".into())))
    }

    /// [`PaymentStore::process`] for several messages, in their order, in ONE
    /// transaction (one commit, one WAL flush for the lot): poison ones go to
    /// `dead_letters`; all of it takes effect, or none.
    pub fn process_batch(
        &self,
        batch: &[BatchItem<'_>],
        provider: &mut dyn PaymentProvider,
    ) -> Result<Vec<Processed>, ProcessError> {
        let mut client = self.client()?;
        let record_event = client.prepare_cached(RECORD_EVENT)?;
        let insert_payment = client.prepare_cached(INSERT_PAYMENT)?;
        let insert_dead_letter = client.prepare_cached(INSERT_DEAD_LETTER)?;
        let mut tx = client.transaction()?;
        let mut results = Vec::with_capacity(batch.len());
        for item in batch {
            let (order, origin) = match item {
                BatchItem::Order(order, origin) => (order, origin),
                BatchItem::Poison {
                    origin,
                    key,
                    payload,
                    reason,
                } => {
                    tx.execute(
                        &insert_dead_letter,
                        &[
                            &origin.topic,
                            &origin.partition,
                            &origin.offset,
                            key,
                            payload,
                            reason,
                        ],
                    )?;
                    results.push(Processed::DeadLettered);
                    continue;
                }
            };
            let Some(claimed) = tx.query_opt(
                &record_event,
                &[
                    &order.event_id,
                    &order.order_id,
                    &origin.topic,
                    &origin.partition,
                    &origin.offset,
                ],
            )?
            else {
                results.push(Processed::Duplicate);
                continue;
            };
            let status_event_id: i64 = claimed.try_get(0)?;
            // An error here rolls the transaction back (dropped uncommitted): the
            // events stay unprocessed and are retried.
            let outcome = provider.decide(order)?;
            let status = PaymentStatus {
                event_id: status_event_id,
                order_id: order.order_id,
                user_id: order.user_id,
                order_status: outcome,
            };
            let inserted = tx.execute(
                &insert_payment,
                &[
                    &order.order_id,
                    &order.user_id,
                    &order.total_amount,
                    &outcome.as_str(),
                    &status_event_id,
                    &self.status_topic,
                    &contracts::message_key(order.order_id),
                    &contracts::encode(&status),
                ],
            )?;
            results.push(if inserted == 0 {
                Processed::AlreadyPaid
            } else {
                Processed::Decided(outcome)
            });
        }
        tx.commit()?;
        Ok(results)
    }

    pub fn dead_letter(
        &self,
        origin: Origin<'_>,
        key: &[u8],
        payload: &[u8],
        error: &str,
    ) -> Result<(), StoreError> {
        self.client()?.execute(
            INSERT_DEAD_LETTER,
            &[
                &origin.topic,
                &origin.partition,
                &origin.offset,
                &key,
                &payload,
                &error,
            ],
        )?;
        Ok(())
    }

    /// One round trip, for readiness.
    pub fn ping(&self) -> Result<(), StoreError> {
        self.client()?.batch_execute("SELECT 1")?;
        Ok(())
    }
}

impl std::fmt::Debug for PaymentStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PaymentStore")
            .field("status_topic", &self.status_topic)
            .finish_non_exhaustive()
    }
}
