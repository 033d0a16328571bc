//! The outbox rows of a database the Go platform made, for [`pgsetup::takeover`].
//!
//! Go's `events` table (`id`, `event_type`, `payload` JSONB with `event_id: 0`,
//! `aggregate_id`, `locked_at`, `sent_at`) becomes ours row for row: the same event
//! ids and timestamps, the topic the service publishes to, the aggregate (the order
//! id) as the message key. Go's relay set `event_id` from the row id only when it
//! published, so the rows not sent yet get it written into their payload here; our
//! relay then publishes them once, with the ids Go would have used. Sent rows keep
//! their payload as it was (retention deletes them). Go's `locked_at` leases are
//! dropped: the Go relay is stopped before the switch.

use pgsetup::{
    MoveStep,
    takeover::{self, ASIDE},
};

/// Copies Go's `events` into ours; `topic` is where the service publishes (Go's
/// rows do not name it: its relay published everything to its one topic).
pub fn go_events(topic: &str) -> MoveStep {
    let topic = topic.to_owned();
    let copy = format!(
        "INSERT INTO events (event_id, topic, message_key, payload, created_at, sent_at)
         SELECT e.id, $1, e.aggregate_id::text,
                (CASE WHEN e.sent_at IS NULL
                      THEN jsonb_set(e.payload, '{{event_id}}', to_jsonb(e.id::bigint))
                      ELSE e.payload
                 END)::text::json,
                coalesce(e.created_at, now()), e.sent_at
         FROM {ASIDE}.events AS e
         ORDER BY e.id"
    );
    MoveStep::new(crate::TABLE, move |transaction| {
        let rows = transaction.execute(&copy, &[&topic])?;
        takeover::continue_ids(transaction, ("events", "id"), ("events", "event_id"))?;
        Ok(rows)
    })
}
