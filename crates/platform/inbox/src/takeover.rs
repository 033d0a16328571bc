//! The handled events of a database the Go payments service made, for
//! [`pgsetup::takeover`].
//!
//! Go's `processed_events` keeps only `event_id` and `processed_at`; every id is
//! kept, so an `OrderCreated` that Go handled and that is delivered again is still
//! skipped. What Go did not record is marked unknown: order id 0, partition and
//! offset -1, the topic the service consumes.

use pgsetup::{MoveStep, takeover::ASIDE};

/// Copies Go's `processed_events` into ours; `topic` is the topic they came from.
pub fn go_processed_events(topic: &str) -> MoveStep {
    let topic = topic.to_owned();
    let copy = format!(
        "INSERT INTO processed_events
             (event_id, order_id, kafka_topic, kafka_partition, kafka_offset, processed_at)
         SELECT p.event_id, 0, $1, -1, -1, coalesce(p.processed_at, now())
         FROM {ASIDE}.processed_events AS p"
    );
    MoveStep::new("processed_events", move |transaction| {
        Ok(transaction.execute(&copy, &[&topic])?)
    })
}
