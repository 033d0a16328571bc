//! Taking over the database of the Go orders service (its goose migration
//! `00001_init.sql`), with [`pgsetup::takeover`]: every order, item and outbox row
//! kept with its id and timestamps.
//!
//! - `orders`: `id` becomes `order_id`; `total_amount`, which Go computed on every
//!   read, is stored (the sum of the items, in exact arithmetic: a total past i64
//!   stops the take-over); Go's `TIMESTAMP` columns, written by `now()` in the
//!   server's time zone, are read as times in that zone; Go's status names map to
//!   ours (`StatusNew`/`NEW`/`new`, and a pending payment, are `new`; `StatusPaid`/
//!   `PAID`/`paid` is `paid`), any other stops the take-over and is named;
//! - `order_items`: Go's item `id` order becomes `position` 1, 2, ...;
//! - `events`: see [`outbox::takeover`].
//!
//! Our constraints apply to Go's rows too (a positive `user_id`, `product_id`,
//! `quantity`; a price not below 0): a row Go let in that violates one stops the
//! take-over, and the error names the row.

use pgsetup::{
    MoveStep, Predecessor,
    takeover::{self, ASIDE},
};

/// Go's orders database, taken over at start-up; `topic` is the order topic its
/// unsent `OrderCreated` events are published to.
pub fn go_orders(topic: &str) -> Predecessor {
    Predecessor {
        name: "the Go orders service",
        goose_version: 1,
        tables: &["orders", "order_items", "events"],
        steps: vec![orders(), order_items(), outbox::takeover::go_events(topic)],
    }
}

/// Go's status, in any of the spellings its versions stored, as ours; NULL when
/// there is none.
const STATUS: &str = "CASE lower(o.status)
    WHEN 'new' THEN 'new' WHEN 'statusnew' THEN 'new'
    WHEN 'payment_pending' THEN 'new' WHEN 'statuspaymentpending' THEN 'new'
    WHEN 'paid' THEN 'paid' WHEN 'statuspaid' THEN 'paid'
END";

fn orders() -> MoveStep {
    let unknown_statuses = format!(
        "SELECT o.status, count(*) FROM {ASIDE}.orders AS o WHERE ({STATUS}) IS NULL
         GROUP BY o.status ORDER BY o.status"
    );
    let copy = format!(
        "INSERT INTO orders (order_id, user_id, status, total_amount, created_at, updated_at)
         SELECT o.id, o.user_id, {STATUS}, coalesce(t.total, 0)::bigint,
                o.created_at::timestamptz, o.updated_at::timestamptz
         FROM {ASIDE}.orders AS o
         LEFT JOIN (
             SELECT order_id, sum(price::numeric * quantity) AS total
             FROM {ASIDE}.order_items GROUP BY order_id
         ) AS t ON t.order_id = o.id
         ORDER BY o.id"
    );
    MoveStep::new("orders", move |transaction| {
        takeover::refuse_any(
            transaction,
            &unknown_statuses,
            "status with no equivalent here (new, paid, payment_failed)",
            "orders",
        )?;
        let rows = transaction.execute(&copy, &[])?;
        takeover::continue_ids(transaction, ("orders", "id"), ("orders", "order_id"))?;
        Ok(rows)
    })
}

fn order_items() -> MoveStep {
    let copy = format!(
        "INSERT INTO order_items (order_id, position, product_id, quantity, price)
         SELECT i.order_id, row_number() OVER (PARTITION BY i.order_id ORDER BY i.id),
                i.product_id, i.quantity, i.price
         FROM {ASIDE}.order_items AS i"
    );
    MoveStep::new("order_items", move |transaction| {
        Ok(transaction.execute(&copy, &[])?)
    })
}
