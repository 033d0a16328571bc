//! Taking over the database of the Go payments service (its goose migration
//! `00001_init.sql`), with [`pgsetup::takeover`]: every payment, outbox row and
//! handled event kept with its id and timestamps.
//!
//! - `payments`: `total_amount` becomes `amount`, `updated_at` starts as
//!   `created_at` (Go did not keep it). Go wrote `pending` and its decision in one
//!   transaction, so only `succeeded` and `failed` can be there; any other status
//!   stops the take-over and is named;
//! - `events` (`PaymentStatus`): see [`outbox::takeover`];
//! - `processed_events`: see [`inbox::takeover`].

use pgsetup::{
    MoveStep, Predecessor,
    takeover::{self, ASIDE},
};

/// Go's payments database, taken over at start-up: `order_topic` is where the
/// handled `OrderCreated` events came from, `status_topic` where its unsent
/// `PaymentStatus` events are published.
pub fn go_payments(order_topic: &str, status_topic: &str) -> Predecessor {
    Predecessor {
        name: "the Go payments service",
        goose_version: 1,
        tables: &["payments", "events", "processed_events"],
        steps: vec![
            payments(),
            outbox::takeover::go_events(status_topic),
            inbox::takeover::go_processed_events(order_topic),
        ],
    }
}

fn payments() -> MoveStep {
    let undecided = format!(
        "SELECT status, count(*) FROM {ASIDE}.payments
         WHERE status IS DISTINCT FROM 'succeeded' AND status IS DISTINCT FROM 'failed'
         GROUP BY status ORDER BY status"
    );
    let copy = format!(
        "INSERT INTO payments (order_id, user_id, amount, status, created_at, updated_at)
         SELECT order_id, user_id, total_amount, status, created_at, created_at
         FROM {ASIDE}.payments ORDER BY order_id"
    );
    MoveStep::new("payments", move |transaction| {
        takeover::refuse_any(
            transaction,
            &undecided,
            "status other than succeeded or failed (a payment Go had not decided)",
            "payments",
        )?;
        Ok(transaction.execute(&copy, &[])?)
    })
}
