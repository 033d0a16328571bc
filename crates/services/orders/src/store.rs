//! Orders in PostgreSQL. Blocking: called through `spawn_blocking`. Reads, the
//! connection pool and its errors here; writes in [`write`].

mod write;

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use chrono::{DateTime, Utc};
use pgsetup::{DbError, Pool};

pub use self::write::{OrderRequest, Outcome};
use crate::idempotency::KeyConflict;

/// An order as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredOrder {
    pub order_id: i64,
    pub user_id: i64,
    pub status: String,
    pub total_amount: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub items: Vec<StoredItem>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredItem {
    pub product_id: i64,
    pub quantity: i32,
    pub price: i64,
}

/// Why a store call failed. The message says what failed; the driver's error is the
/// `source()`, kept typed. [`StoreError::is_unavailable`] tells an outage (retry
/// later) from a real error.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// A database call failed, classified by [`DbError`] (no connection in time, an
    /// outage, refused data, another failed statement); in an `Arc`, so that a failed
    /// batch gives each of its callers the same error.
    #[error(transparent)]
    Db(Arc<DbError>),
    /// No order batch writer is running (none could be started).
    #[error("no order batch writer is running")]
    NoWriter,
    /// The order batch writer ended before it answered.
    #[error("the order batch writer stopped before answering")]
    WriterStopped,
    /// A request of a batch got no answer (never expected: each gets one).
    #[error("a request of the batch got no answer")]
    NoAnswer,
    /// More orders in one batch than one statement takes.
    #[error("{0} orders in one batch")]
    BatchTooLarge(usize),
    /// The database handed out another number of ids than asked for (never expected).
    #[error("asked for {asked} ids, got {got}")]
    IdCount { asked: usize, got: usize },
    /// An idempotency key stood in the way; nothing was written.
    #[error(transparent)]
    Key(#[from] KeyConflict),
}

impl StoreError {
    /// True when the database (or the batch writer) cannot be reached right now:
    /// UNAVAILABLE, retry later. False for a key conflict and for a real error.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Db(err) => err.is_transient(),
            StoreError::NoWriter => true,
            _ => false,
        }
    }

    /// True for a real error (not an outage, not a key conflict): INTERNAL.
    pub fn is_internal(&self) -> bool {
        !self.is_unavailable() && !matches!(self, StoreError::Key(_))
    }
}

/// What [`OrderStore::create`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Created {
    /// The order's id: new, or the one first created under the idempotency key.
    pub order_id: i64,
    /// True when the order was created earlier under the same idempotency key and
    /// this call wrote nothing.
    pub replayed: bool,
}

impl From<DbError> for StoreError {
    fn from(err: DbError) -> Self {
        StoreError::Db(Arc::new(err))
    }
}

impl From<postgres::Error> for StoreError {
    fn from(err: postgres::Error) -> Self {
        DbError::from(err).into()
    }
}

impl From<r2d2::Error> for StoreError {
    fn from(err: r2d2::Error) -> Self {
        DbError::from(err).into()
    }
}

const SELECT_ORDER: &str = "
SELECT user_id, status, total_amount, created_at, updated_at FROM orders WHERE order_id = $1";

const SELECT_ITEMS: &str = "
SELECT product_id, quantity, price FROM order_items WHERE order_id = $1 ORDER BY position";

/// How long a request waits for a connection while the database is known to be
/// unreachable: enough to open a connection to a healthy server, far below callers'
/// deadlines (the gateway's is 2 s, as is the default `ORDERS_DB_TIMEOUT`).
const FAIL_FAST_WAIT: Duration = Duration::from_millis(250);

#[derive(Clone)]
pub struct OrderStore {
    pool: Pool,
    topic: String,
    /// Set by the last database call that found the server unreachable, cleared by
    /// the next one that reached it. While set, requests wait [`FAIL_FAST_WAIT`] at
    /// most for a connection, so an outage is answered with UNAVAILABLE at once
    /// instead of after the full pool timeout, which would let the caller's deadline
    /// expire first (the gateway would answer 504 instead of 503).
    unreachable: Arc<AtomicBool>,
    /// How long idempotency keys are remembered (`ORDERS_IDEMPOTENCY_TTL`).
    key_ttl: Duration,
}

impl OrderStore {
    /// `topic` is where the outbox relay will publish this store's events; `key_ttl`
    /// how long idempotency keys are remembered.
    pub fn new(pool: Pool, topic: String, key_ttl: Duration) -> Self {
        Self {
            pool,
            topic,
            unreachable: Arc::default(),
            key_ttl,
        }
    }

    fn client(&self) -> Result<pgsetup::PooledClient, StoreError> {
        let checkout = if self.unreachable.load(Ordering::Relaxed) {
            self.pool
                .get_timeout(FAIL_FAST_WAIT.min(self.pool.connection_timeout()))
        } else {
            self.pool.get()
        };
        Ok(checkout?)
    }

    /// Records whether the database was reachable for this call's result.
    fn observe<T>(&self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        let unreachable = match &result {
            Ok(_) => false,
            Err(err) if err.is_unavailable() => true,
            Err(StoreError::Key(_)) => false,
            Err(_) => return result,
        };
        self.unreachable.store(unreachable, Ordering::Relaxed);
        result
    }

    /// Stores a validated order and its `OrderCreated` event (with the request's trace);
    /// returns the order id.
    /// Under an idempotency `key`, a request already made under it answers the order
    /// it created, writing nothing (see [`crate::idempotency`]).
    pub fn create(&self, request: OrderRequest<'_>) -> Result<Created, StoreError> {
        let answers = self.create_many(&[request])?;
        match answers.into_iter().next() {
            Some(answer) => Ok(answer?),
            None => Err(StoreError::NoAnswer),
        }
    }

    /// Stores validated orders and their `OrderCreated` events in one transaction
    /// (see [`write`]); each request's answer, in their order. An error is the whole
    /// batch's: nothing of it was written.
    pub fn create_many(&self, requests: &[OrderRequest<'_>]) -> Result<Vec<Outcome>, StoreError> {
        self.observe(self.try_create_many(requests))
    }

    /// Reads one order with its items.
    pub fn get(&self, order_id: i64) -> Result<Option<StoredOrder>, StoreError> {
        self.observe(self.try_get(order_id))
    }

    /// One round trip, for readiness.
    pub fn ping(&self) -> Result<(), StoreError> {
        self.observe(self.try_ping())
    }

    fn try_create_many(&self, requests: &[OrderRequest<'_>]) -> Result<Vec<Outcome>, StoreError> {
        if requests.is_empty() {
            return Ok(Vec::new());
        }
        let mut client = self.client()?;
        write::write(&mut client, &self.topic, requests, self.key_ttl)
    }

    fn try_get(&self, order_id: i64) -> Result<Option<StoredOrder>, StoreError> {
        let mut client = self.client()?;
        let select_order = client.prepare_cached(SELECT_ORDER)?;
        let select_items = client.prepare_cached(SELECT_ITEMS)?;
        let Some(row) = client.query_opt(&select_order, &[&order_id])? else {
            return Ok(None);
        };
        // Items never change after creation, so a second query sees the same order.
        let items = client
            .query(&select_items, &[&order_id])?
            .iter()
            .map(|item| {
                Ok(StoredItem {
                    product_id: item.try_get(0)?,
                    quantity: item.try_get(1)?,
                    price: item.try_get(2)?,
                })
            })
            .collect::<Result<_, postgres::Error>>()?;
        Ok(Some(StoredOrder {
            order_id,
            user_id: row.try_get(0)?,
            status: row.try_get(1)?,
            total_amount: row.try_get(2)?,
            created_at: row.try_get(3)?,
            updated_at: row.try_get(4)?,
            items,
        }))
    }

    fn try_ping(&self) -> Result<(), StoreError> {
        self.client()?.batch_execute("SELECT 1")?;
        Ok(())
    }
}
