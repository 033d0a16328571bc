//! Orders in PostgreSQL. Blocking: called through `spawn_blocking`.

use std::{
    sync::{
        Arc, LazyLock,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use chrono::{DateTime, SubsecRound, Utc};
use contracts::OrderCreated;
use outbox::OutboxRow;
use pgsetup::Pool;
use postgres::types::ToSql;

use crate::{
    idempotency::{self, IdempotencyKey, KeyConflict},
    validation::NewOrder,
};

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

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached right now; retrying later may work.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Internal(String),
    /// An idempotency key stood in the way; nothing was written.
    #[error(transparent)]
    Key(#[from] KeyConflict),
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

impl From<postgres::Error> for StoreError {
    fn from(err: postgres::Error) -> Self {
        if pgsetup::is_unavailable(&err) {
            StoreError::Unavailable(err.to_string())
        } else {
            StoreError::Internal(err.to_string())
        }
    }
}

/// Reserves the order's and its event's ids.
static NEXT_IDS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT nextval('orders_order_id_seq'), {}",
        outbox::NEXT_EVENT_ID
    )
});

const SELECT_ORDER: &str = "
SELECT user_id, status, total_amount, created_at, updated_at FROM orders WHERE order_id = $1";

const SELECT_ITEMS: &str = "
SELECT product_id, quantity, price FROM order_items WHERE order_id = $1 ORDER BY position";

/// Writes the order, its items and the `OrderCreated` outbox row in one statement,
/// which PostgreSQL runs as one transaction: all three rows or none. The outbox
/// insert is the outbox crate's, its values `$8..$11`.
static INSERT_ORDER: LazyLock<String> = LazyLock::new(|| {
    format!(
        "
WITH new_order AS (
    INSERT INTO orders (order_id, user_id, status, total_amount, created_at, updated_at)
    VALUES ($1, $2, 'new', $3, $4, $4)
), new_items AS (
    INSERT INTO order_items (order_id, position, product_id, quantity, price)
    SELECT $1, item.position, item.product_id, item.quantity, item.price
    FROM unnest($5::bigint[], $6::int[], $7::bigint[])
         WITH ORDINALITY AS item (product_id, quantity, price, position)
)
{}",
        outbox::insert_sql(8, None)
    )
});

/// [`INSERT_ORDER`] under an idempotency key: the key row first (`$12` the key,
/// `$13` the request's fingerprint, `$14` the TTL in seconds), and the order, its
/// items and its outbox row only if the key row was written, all in one statement.
/// A key already taken (and not expired) writes nothing; a concurrent request holding
/// the same key makes this one wait on its primary key until that one commits (then
/// nothing is written here) or rolls back (then this one goes on). An expired row is
/// replaced, so a key can be reused after its TTL even before retention deletes it.
static INSERT_KEYED_ORDER: LazyLock<String> = LazyLock::new(|| {
    format!(
        "
WITH new_key AS (
    INSERT INTO {table} AS old (user_id, idempotency_key, fingerprint, order_id, created_at)
    VALUES ($2, $12, $13, $1, now())
    ON CONFLICT (user_id, idempotency_key) DO UPDATE
        SET fingerprint = EXCLUDED.fingerprint, order_id = EXCLUDED.order_id,
            created_at = EXCLUDED.created_at
        WHERE old.created_at < now() - make_interval(secs => $14)
    RETURNING 1
), new_order AS (
    INSERT INTO orders (order_id, user_id, status, total_amount, created_at, updated_at)
    SELECT $1, $2, 'new', $3, $4, $4 FROM new_key
), new_items AS (
    INSERT INTO order_items (order_id, position, product_id, quantity, price)
    SELECT $1, item.position, item.product_id, item.quantity, item.price
    FROM new_key, unnest($5::bigint[], $6::int[], $7::bigint[])
         WITH ORDINALITY AS item (product_id, quantity, price, position)
)
{outbox}",
        table = idempotency::TABLE,
        outbox = outbox::insert_sql(8, Some("new_key"))
    )
});

/// Reserves `$1` orders' and their events' ids in one round trip.
static NEXT_BATCH_IDS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT nextval('orders_order_id_seq'), {} FROM generate_series(1, $1::int)",
        outbox::NEXT_EVENT_ID
    )
});

/// Writes many orders, all their items and their outbox rows in one statement (one
/// transaction: all rows or none), from arrays: orders `$1..$4` (ids, users, totals;
/// one creation time), items `$5..$9` (order id, position, product, quantity, price),
/// outbox rows `$10..$13`.
static INSERT_ORDERS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "
WITH new_orders AS (
    INSERT INTO orders (order_id, user_id, status, total_amount, created_at, updated_at)
    SELECT o.order_id, o.user_id, 'new', o.total_amount, $4, $4
    FROM unnest($1::bigint[], $2::bigint[], $3::bigint[]) AS o (order_id, user_id, total_amount)
), new_items AS (
    INSERT INTO order_items (order_id, position, product_id, quantity, price)
    SELECT i.order_id, i.position, i.product_id, i.quantity, i.price
    FROM unnest($5::bigint[], $6::bigint[], $7::bigint[], $8::int[], $9::bigint[])
         AS i (order_id, position, product_id, quantity, price)
)
{}",
        outbox::insert_many_sql(10)
    )
});

/// The live (younger than the TTL, `$3` seconds) key row of a user and key.
static SELECT_KEY: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT fingerprint, order_id FROM {} WHERE user_id = $1 AND idempotency_key = $2
         AND created_at >= now() - make_interval(secs => $3)",
        idempotency::TABLE
    )
});

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
}

impl OrderStore {
    /// `topic` is where the outbox relay will publish this store's events.
    pub fn new(pool: Pool, topic: String) -> Self {
        Self {
            pool,
            topic,
            unreachable: Arc::default(),
        }
    }

    fn client(&self) -> Result<pgsetup::PooledClient, StoreError> {
        let checkout = if self.unreachable.load(Ordering::Relaxed) {
            self.pool
                .get_timeout(FAIL_FAST_WAIT.min(self.pool.connection_timeout()))
        } else {
            self.pool.get()
        };
        checkout.map_err(|err| StoreError::Unavailable(format!("no database connection: {err}")))
    }

    /// Records whether the database was reachable for this call's result.
    fn observe<T>(&self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        let unreachable = match &result {
            Ok(_) => false,
            Err(StoreError::Unavailable(_)) => true,
            Err(StoreError::Internal(_)) => return result,
            Err(StoreError::Key(_)) => false,
        };
        self.unreachable.store(unreachable, Ordering::Relaxed);
        result
    }

    /// Stores a validated order and its `OrderCreated` event; returns the order id.
    /// Under an idempotency `key` (remembered for `ttl`), a request already made under
    /// it answers the order it created, writing nothing (see [`crate::idempotency`]).
    pub fn create(
        &self,
        order: &NewOrder,
        key: Option<(&IdempotencyKey, Duration)>,
    ) -> Result<Created, StoreError> {
        self.observe(self.try_create(order, key))
    }

    /// Stores validated orders and their `OrderCreated` events in one transaction
    /// (all or none); their ids, in `orders`' order. No idempotency keys here.
    pub fn create_many(&self, orders: &[&NewOrder]) -> Result<Vec<i64>, StoreError> {
        self.observe(self.try_create_many(orders))
    }

    /// Reads one order with its items.
    pub fn get(&self, order_id: i64) -> Result<Option<StoredOrder>, StoreError> {
        self.observe(self.try_get(order_id))
    }

    /// One round trip, for readiness.
    pub fn ping(&self) -> Result<(), StoreError> {
        self.observe(self.try_ping())
    }

    fn try_create(
        &self,
        order: &NewOrder,
        key: Option<(&IdempotencyKey, Duration)>,
    ) -> Result<Created, StoreError> {
        let mut client = self.client()?;
        // Both ids first, so the event's JSON (built by the contracts crate, the one
        // source of its shape) can carry them and the insert is a single statement.
        let next_ids = client.prepare_cached(&NEXT_IDS)?;
        let ids = client.query_one(&next_ids, &[])?;
        let (order_id, event_id): (i64, i64) = (ids.try_get(0)?, ids.try_get(1)?);
        // PostgreSQL keeps microseconds: round here so the event and the row agree.
        let created_at = Utc::now().trunc_subsecs(6);
        let event = OrderCreated {
            event_id,
            order_id,
            user_id: order.user_id,
            total_amount: order.total_amount,
            created_at,
        };
        let product_ids: Vec<i64> = order.items.iter().map(|item| item.product_id).collect();
        let quantities: Vec<i32> = order.items.iter().map(|item| item.quantity).collect();
        let prices: Vec<i64> = order.items.iter().map(|item| item.price).collect();
        let outbox_row = OutboxRow::new(
            event_id,
            &self.topic,
            contracts::message_key(order_id),
            &event,
        );
        let order_params: [&(dyn ToSql + Sync); 7] = [
            &order_id,
            &order.user_id,
            &order.total_amount,
            &created_at,
            &product_ids,
            &quantities,
            &prices,
        ];
        let mut params: Vec<&(dyn ToSql + Sync)> = order_params
            .into_iter()
            .chain(outbox_row.params())
            .collect();
        let Some((key, ttl)) = key else {
            let insert_order = client.prepare_cached(&INSERT_ORDER)?;
            client.execute(&insert_order, &params)?;
            return Ok(Created {
                order_id,
                replayed: false,
            });
        };
        let fingerprint = idempotency::fingerprint(order);
        let ttl_secs = ttl.as_secs_f64();
        let key_text = key.as_str();
        params.extend([&key_text as &(dyn ToSql + Sync), &fingerprint, &ttl_secs]);
        let insert_order = client.prepare_cached(&INSERT_KEYED_ORDER)?;
        if client.execute(&insert_order, &params)? == 1 {
            return Ok(Created {
                order_id,
                replayed: false,
            });
        }
        // The key is taken, by a committed request: its row is visible to this new
        // statement (unless it expired or was deleted in between).
        let select_key = client.prepare_cached(&SELECT_KEY)?;
        let Some(row) = client.query_opt(&select_key, &[&order.user_id, &key_text, &ttl_secs])?
        else {
            return Err(KeyConflict::InProgress(key_text.to_owned()).into());
        };
        let (stored, order_id): (Vec<u8>, i64) = (row.try_get(0)?, row.try_get(1)?);
        if stored != fingerprint {
            return Err(KeyConflict::DifferentRequest(key_text.to_owned()).into());
        }
        Ok(Created {
            order_id,
            replayed: true,
        })
    }

    fn try_create_many(&self, orders: &[&NewOrder]) -> Result<Vec<i64>, StoreError> {
        if orders.is_empty() {
            return Ok(Vec::new());
        }
        let count = i32::try_from(orders.len())
            .map_err(|_| StoreError::Internal(format!("{} orders in one batch", orders.len())))?;
        let mut client = self.client()?;
        let next_ids = client.prepare_cached(&NEXT_BATCH_IDS)?;
        let ids = client
            .query(&next_ids, &[&count])?
            .iter()
            .map(|row| Ok((row.try_get::<_, i64>(0)?, row.try_get::<_, i64>(1)?)))
            .collect::<Result<Vec<_>, postgres::Error>>()?;
        if ids.len() != orders.len() {
            return Err(StoreError::Internal(format!(
                "asked for {} ids, got {}",
                orders.len(),
                ids.len()
            )));
        }
        let created_at = Utc::now().trunc_subsecs(6);
        let mut order_ids = Vec::with_capacity(orders.len());
        let mut user_ids = Vec::with_capacity(orders.len());
        let mut totals = Vec::with_capacity(orders.len());
        let (mut item_orders, mut positions, mut product_ids, mut quantities, mut prices) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut outbox_rows = outbox::OutboxRows::with_capacity(orders.len());
        for (order, &(order_id, event_id)) in orders.iter().zip(&ids) {
            order_ids.push(order_id);
            user_ids.push(order.user_id);
            totals.push(order.total_amount);
            for (position, item) in (1_i64..).zip(&order.items) {
                item_orders.push(order_id);
                positions.push(position);
                product_ids.push(item.product_id);
                quantities.push(item.quantity);
                prices.push(item.price);
            }
            let event = OrderCreated {
                event_id,
                order_id,
                user_id: order.user_id,
                total_amount: order.total_amount,
                created_at,
            };
            outbox_rows.push(OutboxRow::new(
                event_id,
                &self.topic,
                contracts::message_key(order_id),
                &event,
            ));
        }
        let order_params: [&(dyn ToSql + Sync); 9] = [
            &order_ids,
            &user_ids,
            &totals,
            &created_at,
            &item_orders,
            &positions,
            &product_ids,
            &quantities,
            &prices,
        ];
        let params: Vec<&(dyn ToSql + Sync)> = order_params
            .into_iter()
            .chain(outbox_rows.params())
            .collect();
        let insert_orders = client.prepare_cached(&INSERT_ORDERS)?;
        client.execute(&insert_orders, &params)?;
        Ok(order_ids)
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
