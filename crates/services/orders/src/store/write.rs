//! Writing orders: many (or one) `CreateOrder` requests in one statement, so one
//! transaction, [`write`]. Group commit sends a batch; a lone call is a batch of one.
//!
//! Each order's row, its items and its `OrderCreated` outbox row go in together or
//! not at all. Requests under an idempotency key keep the key's guarantees (see
//! [`crate::idempotency`]) inside the batch:
//! - the first request of the batch under a (user, key) *leads* it; later requests
//!   under the same key are not written and get the leader's answer: a replay of its
//!   order when their request is the same, `DifferentRequest` when it is not;
//! - leaders' key rows are upserted in (user, key) order, so two batches sharing keys
//!   take their locks in one order and cannot deadlock, and a batch waits on a key
//!   another transaction holds until that one ends; an order is written only if its
//!   key row was;
//! - a leader whose key was already taken answers from the stored key row, read
//!   right after the statement (committed by then): a replay, `DifferentRequest`, or
//!   `InProgress` when the row has gone meanwhile (expired, deleted) or cannot be read.
//!   Once the statement has committed nothing fails the batch as a whole: its unkeyed
//!   callers would retry orders that exist.

use std::{collections::HashMap, sync::LazyLock, time::Duration};

use chrono::{SubsecRound, Utc};
use contracts::OrderCreated;
use outbox::{OutboxRow, OutboxRows};
use pgsetup::Connection;
use postgres::types::ToSql;
use service_skeleton::ErrorChain;

use super::{Created, StoreError};
use crate::{
    idempotency::{self, IdempotencyKey, KeyConflict},
    validation::NewOrder,
};

/// One validated `CreateOrder` request, with its idempotency key if it has one.
#[derive(Debug, Clone, Copy)]
pub struct OrderRequest<'a> {
    pub order: &'a NewOrder,
    pub key: Option<&'a IdempotencyKey>,
    /// The trace the request is part of, kept with its outbox row.
    pub trace: Option<&'a telemetry::TraceHeaders>,
}

/// One request's answer: its order (new, or replayed under its key), or why its key
/// stood in the way (nothing was written for it).
pub type Outcome = Result<Created, KeyConflict>;

/// Writes `requests` in one statement; their answers, in their order. `topic` is
/// where their events go; keys are remembered for `key_ttl`. An error is the whole
/// batch's, and comes before or from the one statement: nothing of it was written.
pub fn write(
    client: &mut Connection,
    topic: &str,
    requests: &[OrderRequest<'_>],
    key_ttl: Duration,
) -> Result<Vec<Outcome>, StoreError> {
    let roles = roles(requests);
    let written: Vec<usize> = (0..requests.len())
        .filter(|&index| matches!(roles[index], Role::Writes))
        .collect();
    let rows = Rows::build(client, topic, requests, &written)?;
    let ttl_secs = key_ttl.as_secs_f64();
    let mut params = rows.params();
    let keyed_written: Vec<i64> = if rows.keys.is_empty() {
        let insert = client.prepare_cached(&INSERT_ORDERS)?;
        client.execute(&insert, &params)?;
        Vec::new()
    } else {
        params.extend(rows.keys.params());
        params.push(&ttl_secs);
        let insert = client.prepare_cached(&INSERT_KEYED_ORDERS)?;
        client
            .query(&insert, &params)?
            .iter()
            .map(|row| row.try_get(0))
            .collect::<Result<_, _>>()?
    };
    drop(params);

    // Leaders whose key was taken before: the stored row answers them.
    let taken: Vec<usize> = written
        .iter()
        .zip(&rows.order_ids)
        .filter(|&(&index, order_id)| {
            requests[index].key.is_some() && !keyed_written.contains(order_id)
        })
        .map(|(&index, _)| index)
        .collect();
    // The insert has committed: from here on no error may fail the batch (its callers
    // would retry orders that exist). Keys whose row cannot be read now answer
    // `InProgress`, which the keyed caller retries safely.
    let stored = stored_keys(client, requests, &taken, ttl_secs).unwrap_or_else(|err| {
        tracing::warn!(
            error = %ErrorChain(&err),
            keys = taken.len(),
            "cannot read the idempotency keys taken before this batch; their requests are answered ABORTED"
        );
        HashMap::new()
    });

    // Every request's answer: what its key row holds (fingerprint, order id), or
    // its new order.
    let mut answers: Vec<Option<Outcome>> = vec![None; requests.len()];
    let mut key_rows: Vec<Option<KeyRow>> = vec![None; requests.len()];
    for (&index, &order_id) in written.iter().zip(&rows.order_ids) {
        let request = requests[index];
        match request.key {
            None => answers[index] = Some(Ok(fresh(order_id))),
            Some(_) if keyed_written.contains(&order_id) => {
                answers[index] = Some(Ok(fresh(order_id)));
                key_rows[index] = Some(KeyRow {
                    fingerprint: idempotency::fingerprint(request.order),
                    order_id,
                });
            }
            Some(key) => {
                key_rows[index] = stored.get(&(request.order.user_id, key.as_str())).cloned();
                answers[index] = Some(answer_from(request, key, key_rows[index].as_ref()));
            }
        }
    }
    for (index, role) in roles.iter().enumerate() {
        if let (Role::Follows(leader), Some(key)) = (role, requests[index].key) {
            answers[index] = Some(answer_from(
                requests[index],
                key,
                key_rows[*leader].as_ref(),
            ));
        }
    }
    answers
        .into_iter()
        .map(|answer| answer.ok_or(StoreError::NoAnswer))
        .collect()
}

/// A new order's answer.
fn fresh(order_id: i64) -> Created {
    Created {
        order_id,
        replayed: false,
    }
}

/// What a key row holds: the request's fingerprint and the order made under it.
#[derive(Debug, Clone)]
struct KeyRow {
    fingerprint: Vec<u8>,
    order_id: i64,
}

/// The answer of `request`, whose `key` was taken: by `key_row`, or by a row that
/// has gone since.
fn answer_from(
    request: OrderRequest<'_>,
    key: &IdempotencyKey,
    key_row: Option<&KeyRow>,
) -> Outcome {
    match key_row {
        None => Err(KeyConflict::InProgress(key.as_str().to_owned())),
        Some(row) if row.fingerprint == idempotency::fingerprint(request.order) => Ok(Created {
            order_id: row.order_id,
            replayed: true,
        }),
        Some(_) => Err(KeyConflict::DifferentRequest(key.as_str().to_owned())),
    }
}

/// What the statement does with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Written (unkeyed, or the first of the batch under its key).
    Writes,
    /// Under the same key as the request at this index, earlier in the batch.
    Follows(usize),
}

fn roles(requests: &[OrderRequest<'_>]) -> Vec<Role> {
    let mut leaders: HashMap<(i64, &str), usize> = HashMap::new();
    requests
        .iter()
        .enumerate()
        .map(|(index, request)| match request.key {
            None => Role::Writes,
            Some(key) => match leaders.get(&(request.order.user_id, key.as_str())) {
                Some(&leader) => Role::Follows(leader),
                None => {
                    leaders.insert((request.order.user_id, key.as_str()), index);
                    Role::Writes
                }
            },
        })
        .collect()
}

/// The live key rows of the keys of `requests[taken]`, by (user, key). One round trip; none when `taken` is empty.
fn stored_keys<'a>(
    client: &mut Connection,
    requests: &[OrderRequest<'a>],
    taken: &[usize],
    ttl_secs: f64,
) -> Result<HashMap<(i64, &'a str), KeyRow>, StoreError> {
    let mut found = HashMap::new();
    if taken.is_empty() {
        return Ok(found);
    }
    let (users, keys): (Vec<i64>, Vec<&str>) = taken
        .iter()
        .filter_map(|&index| {
            let request = requests[index];
            Some((request.order.user_id, request.key?.as_str()))
        })
        .unzip();
    let select = client.prepare_cached(&SELECT_KEYS)?;
    for row in client.query(&select, &[&users, &keys, &ttl_secs])? {
        let (user_id, key, fingerprint, order_id): (i64, String, Vec<u8>, i64) = (
            row.try_get(0)?,
            row.try_get(1)?,
            row.try_get(2)?,
            row.try_get(3)?,
        );
        // Keys borrowed from the requests, so answers can look them up as given.
        if let Some(&given) = keys.iter().find(|given| **given == key) {
            found.insert(
                (user_id, given),
                KeyRow {
                    fingerprint,
                    order_id,
                },
            );
        }
    }
    Ok(found)
}

/// The arrays the insert binds, for the written requests.
struct Rows<'a> {
    order_ids: Vec<i64>,
    user_ids: Vec<i64>,
    totals: Vec<i64>,
    created_at: chrono::DateTime<Utc>,
    item_orders: Vec<i64>,
    positions: Vec<i64>,
    product_ids: Vec<i64>,
    quantities: Vec<i32>,
    prices: Vec<i64>,
    events: OutboxRows,
    keys: KeyRows<'a>,
}

impl<'a> Rows<'a> {
    /// Reserves the ids of `requests[written]` and their events (one round trip;
    /// both before the insert, so each event's JSON, built by the contracts crate,
    /// carries them) and lays out their rows.
    fn build(
        client: &mut Connection,
        topic: &str,
        requests: &[OrderRequest<'a>],
        written: &[usize],
    ) -> Result<Self, StoreError> {
        let count =
            i32::try_from(written.len()).map_err(|_| StoreError::BatchTooLarge(written.len()))?;
        let next_ids = client.prepare_cached(&NEXT_IDS)?;
        let ids = client
            .query(&next_ids, &[&count])?
            .iter()
            .map(|row| Ok((row.try_get::<_, i64>(0)?, row.try_get::<_, i64>(1)?)))
            .collect::<Result<Vec<_>, postgres::Error>>()?;
        if ids.len() != written.len() {
            return Err(StoreError::IdCount {
                asked: written.len(),
                got: ids.len(),
            });
        }
        // PostgreSQL keeps microseconds: round here so the events and the rows agree.
        let created_at = Utc::now().trunc_subsecs(6);
        let mut rows = Self {
            order_ids: Vec::with_capacity(written.len()),
            user_ids: Vec::with_capacity(written.len()),
            totals: Vec::with_capacity(written.len()),
            created_at,
            item_orders: Vec::new(),
            positions: Vec::new(),
            product_ids: Vec::new(),
            quantities: Vec::new(),
            prices: Vec::new(),
            events: OutboxRows::with_capacity(written.len()),
            keys: KeyRows::default(),
        };
        for (&index, &(order_id, event_id)) in written.iter().zip(&ids) {
            rows.push(topic, requests[index], order_id, event_id);
        }
        Ok(rows)
    }

    fn push(&mut self, topic: &str, request: OrderRequest<'a>, order_id: i64, event_id: i64) {
        let order = request.order;
        self.order_ids.push(order_id);
        self.user_ids.push(order.user_id);
        self.totals.push(order.total_amount);
        for (position, item) in (1_i64..).zip(&order.items) {
            self.item_orders.push(order_id);
            self.positions.push(position);
            self.product_ids.push(item.product_id);
            self.quantities.push(item.quantity);
            self.prices.push(item.price);
        }
        let event = OrderCreated {
            event_id,
            order_id,
            user_id: order.user_id,
            total_amount: order.total_amount,
            created_at: self.created_at,
        };
        self.events.push(
            OutboxRow::new(event_id, topic, contracts::message_key(order_id), &event)
                .traced(request.trace),
        );
        if let Some(key) = request.key {
            self.keys.user_ids.push(order.user_id);
            self.keys.keys.push(key.as_str());
            self.keys.fingerprints.push(idempotency::fingerprint(order));
            self.keys.order_ids.push(order_id);
        }
    }

    /// `$1..$14` of both inserts, in their order.
    fn params(&self) -> Vec<&(dyn ToSql + Sync)> {
        let orders: [&(dyn ToSql + Sync); 9] = [
            &self.order_ids,
            &self.user_ids,
            &self.totals,
            &self.created_at,
            &self.item_orders,
            &self.positions,
            &self.product_ids,
            &self.quantities,
            &self.prices,
        ];
        orders.into_iter().chain(self.events.params()).collect()
    }
}

/// The key rows of the written keyed requests.
#[derive(Default)]
struct KeyRows<'a> {
    user_ids: Vec<i64>,
    keys: Vec<&'a str>,
    fingerprints: Vec<Vec<u8>>,
    order_ids: Vec<i64>,
}

impl KeyRows<'_> {
    fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// `$15..$18` of [`INSERT_KEYED_ORDERS`].
    fn params(&self) -> [&(dyn ToSql + Sync); 4] {
        [
            &self.user_ids,
            &self.keys,
            &self.fingerprints,
            &self.order_ids,
        ]
    }
}

/// Reserves `$1` orders' and their events' ids in one round trip.
static NEXT_IDS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT nextval('orders_order_id_seq'), {} FROM generate_series(1, $1::int)",
        outbox::NEXT_EVENT_ID
    )
});

/// The orders' and items' inserts of [`INSERT_ORDERS`] and [`INSERT_KEYED_ORDERS`],
/// reading the orders from `source` (columns `order_id`, `user_id`, `total_amount`)
/// and writing the items of those orders only.
fn insert_orders_and_items(source: &str, filter_items: bool) -> String {
    let items_filter = if filter_items {
        "WHERE i.order_id IN (SELECT order_id FROM written)"
    } else {
        ""
    };
    format!(
        "new_orders AS (
    INSERT INTO orders (order_id, user_id, status, total_amount, created_at, updated_at)
    SELECT o.order_id, o.user_id, 'new', o.total_amount, $4, $4 FROM {source}
), new_items AS (
    INSERT INTO order_items (order_id, position, product_id, quantity, price)
    SELECT i.order_id, i.position, i.product_id, i.quantity, i.price
    FROM unnest($5::bigint[], $6::bigint[], $7::bigint[], $8::int[], $9::bigint[])
         AS i (order_id, position, product_id, quantity, price)
    {items_filter}
)"
    )
}

/// The orders (`$1..$3`: ids, users, totals; `$4` their creation time).
const ORDERS: &str =
    "unnest($1::bigint[], $2::bigint[], $3::bigint[]) AS o (order_id, user_id, total_amount)";

/// Writes unkeyed orders, all their items and their outbox rows (`$10..$14`) in
/// one statement.
static INSERT_ORDERS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH {}\n{}",
        insert_orders_and_items(ORDERS, false),
        outbox::insert_many_sql(10)
    )
});

/// [`INSERT_ORDERS`] with idempotency keys: the keyed orders' key rows first (`$15`
/// users, `$16` keys, `$17` fingerprints, `$18` order ids; `$19` the TTL in seconds),
/// in (user, key) order; then the unkeyed orders and the keyed ones whose key row was
/// written, with their items and outbox rows. A key already taken (and not expired)
/// writes nothing; an expired row is replaced, so a key can be reused after its TTL
/// even before retention deletes it. Returns the keyed orders written.
static INSERT_KEYED_ORDERS: LazyLock<String> = LazyLock::new(|| {
    let events = outbox::insert_select_sql(
        "SELECT e.event_id, e.topic, e.message_key, e.payload, e.trace_context
         FROM unnest($1::bigint[], $10::bigint[], $11::text[], $12::text[], $13::text[],
                     $14::text[])
              AS e (order_id, event_id, topic, message_key, payload, trace_context)
         WHERE e.order_id IN (SELECT order_id FROM written)",
    );
    format!(
        "
WITH new_keys AS (
    INSERT INTO {table} AS old (user_id, idempotency_key, fingerprint, order_id, created_at)
    SELECT k.user_id, k.idempotency_key, k.fingerprint, k.order_id, now()
    FROM unnest($15::bigint[], $16::text[], $17::bytea[], $18::bigint[])
         AS k (user_id, idempotency_key, fingerprint, order_id)
    ORDER BY k.user_id, k.idempotency_key
    ON CONFLICT (user_id, idempotency_key) DO UPDATE
        SET fingerprint = EXCLUDED.fingerprint, order_id = EXCLUDED.order_id,
            created_at = EXCLUDED.created_at
        WHERE old.created_at < now() - make_interval(secs => $19)
    RETURNING order_id
), written AS (
    SELECT o.order_id, o.user_id, o.total_amount FROM {ORDERS}
    WHERE o.order_id <> ALL ($18::bigint[]) OR o.order_id IN (SELECT order_id FROM new_keys)
), {orders_and_items}, new_events AS (
    {events}
)
SELECT order_id FROM new_keys",
        table = idempotency::TABLE,
        orders_and_items = insert_orders_and_items("written o", true),
    )
});

/// The live (younger than the TTL, `$3` seconds) key rows of users `$1` and keys `$2`
/// (pairwise).
static SELECT_KEYS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT k.user_id, k.idempotency_key, k.fingerprint, k.order_id
         FROM {} AS k JOIN unnest($1::bigint[], $2::text[]) AS q (user_id, idempotency_key)
              USING (user_id, idempotency_key)
         WHERE k.created_at >= now() - make_interval(secs => $3)",
        idempotency::TABLE
    )
});

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validation::NewItem;

    fn order(user_id: i64) -> NewOrder {
        NewOrder {
            user_id,
            items: vec![NewItem {
                product_id: 1,
                quantity: 1,
                price: 10,
            }],
            total_amount: 10,
        }
    }

    #[test]
    fn a_taken_key_replays_the_same_request_and_refuses_another() {
        let (first, other) = (order(1), order(2));
        let key = IdempotencyKey::parse("k").unwrap();
        let request = OrderRequest {
            order: &first,
            key: Some(&key),
            trace: None,
        };
        let stored = |order: &NewOrder| KeyRow {
            fingerprint: idempotency::fingerprint(order),
            order_id: 41,
        };
        assert_eq!(
            answer_from(request, &key, Some(&stored(&first))),
            Ok(Created {
                order_id: 41,
                replayed: true
            })
        );
        assert_eq!(
            answer_from(request, &key, Some(&stored(&other))),
            Err(KeyConflict::DifferentRequest("k".into()))
        );
        // The row is gone (expired, deleted) or could not be read: retry.
        assert_eq!(
            answer_from(request, &key, None),
            Err(KeyConflict::InProgress("k".into()))
        );
    }

    #[test]
    fn the_first_request_under_a_users_key_leads_the_later_ones() {
        let (a, b) = (order(1), order(2));
        let (key, other) = (
            IdempotencyKey::parse("k").unwrap(),
            IdempotencyKey::parse("other").unwrap(),
        );
        let request = |order, key| OrderRequest {
            order,
            key,
            trace: None,
        };
        let requests = [
            request(&a, None),
            request(&a, Some(&key)),
            request(&b, Some(&key)),
            request(&a, None),
            request(&a, Some(&key)),
            request(&a, Some(&other)),
            request(&b, Some(&key)),
        ];
        assert_eq!(
            roles(&requests),
            [
                Role::Writes,
                Role::Writes,
                Role::Writes,
                Role::Writes,
                Role::Follows(1),
                Role::Writes,
                Role::Follows(2),
            ]
        );
    }
}
