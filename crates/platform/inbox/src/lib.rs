//! The inbox: what a service that consumes Kafka into PostgreSQL needs to handle each
//! event once and to keep what it cannot use, the counterpart of the `outbox`.
//!
//! - [`migrations`]: the `processed_events` and `dead_letters` tables, their own
//!   migration set with its own history table, added to the [`pgsetup::Schema`] of
//!   every consuming service (payments, orders);
//! - [`record_sql`]: records an event id in `processed_events` in the transaction of
//!   its effect; no row back means the event was handled before (a redelivery) and
//!   is skipped; [`record_many_cte`] does it for a whole poll in one statement;
//! - [`DeadLetter`] / [`INSERT_DEAD_LETTER`]: a message that cannot be used, kept
//!   byte for byte with the reason, so its offset can be committed and the partition
//!   moves on;
//! - [`InboxSettings`]: how long both tables keep their rows
//!   (`PROCESSED_EVENTS_RETENTION`, `DEAD_LETTERS_RETENTION`), checked, and the
//!   `retention` crate's policies for them;
//! - [`consume_poll`]: a poll of messages applied once, in one commit: all together
//!   (one statement) when they are valid events for distinct orders, else one by one
//!   in one transaction with poison messages kept in `dead_letters`; the service says
//!   how its events apply ([`Apply`]);
//! - [`takeover`]: the Go payments service's `processed_events`, kept on a switch.

mod consume_once;
mod settings;
pub mod takeover;

pub use consume_once::{Apply, Consumed, InboxEvent, Poll, consume_poll, keep_dead_letter};
pub use settings::{
    DEAD_LETTERS_TABLE, ENV_VARS, InboxSettings, MIN_PROCESSED_EVENTS_RETENTION,
    PROCESSED_EVENTS_TABLE,
};

use postgres::types::ToSql;

mod embedded {
    refinery::embed_migrations!("../../../migrations/inbox");
}

/// The table recording which of the inbox's migrations ran, apart from the service's.
pub const HISTORY_TABLE: &str = "inbox_schema_history";

/// The inbox's migrations (`migrations/inbox`), for a service's [`pgsetup::Schema`].
pub fn migrations() -> pgsetup::MigrationSet {
    pgsetup::MigrationSet::new(embedded::migrations::runner()).history_table(HISTORY_TABLE)
}

/// Where a message came from, recorded with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    /// The consumer's trace of it ([`bus::Message::trace`]), for the events it causes.
    pub trace: Option<&'a telemetry::TraceHeaders>,
}

impl<'a> Origin<'a> {
    /// Where `message` came from.
    pub fn of(message: &bus::Message<'a>) -> Self {
        Self {
            topic: message.topic,
            partition: message.partition,
            offset: message.offset,
            trace: message.trace,
        }
    }
}

/// `INSERT INTO processed_events`, binding `$1` event id, `$2` order id, `$3` topic,
/// `$4` partition, `$5` offset; a row comes back (`RETURNING returning`) only for
/// an event not recorded before.
pub fn record_sql(returning: &str) -> String {
    format!(
        "INSERT INTO processed_events (event_id, order_id, kafka_topic, kafka_partition, kafka_offset)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (event_id) DO NOTHING
         RETURNING {returning}"
    )
}

/// A `recorded AS (...)` common table expression for a statement that handles many
/// events at once: records every event of the relation `incoming` (columns
/// `event_id`, `order_id`, `kafka_topic`, `kafka_partition`, `kafka_offset`, event
/// ids distinct) and yields the `event_id`s that were new; the others were handled
/// before and must be skipped.
pub fn record_many_cte(incoming: &str) -> String {
    format!(
        "recorded AS (
    INSERT INTO processed_events (event_id, order_id, kafka_topic, kafka_partition, kafka_offset)
    SELECT event_id, order_id, kafka_topic, kafka_partition, kafka_offset FROM {incoming}
    ON CONFLICT (event_id) DO NOTHING
    RETURNING event_id
)"
    )
}

/// Keeps a message that cannot be used; bind [`DeadLetter::params`].
pub const INSERT_DEAD_LETTER: &str = "
INSERT INTO dead_letters (kafka_topic, kafka_partition, kafka_offset, message_key, payload, error)
VALUES ($1, $2, $3, $4, $5, $6)";

/// A message kept in `dead_letters`, and why.
#[derive(Debug, Clone)]
pub struct DeadLetter<'a> {
    pub origin: Origin<'a>,
    pub key: &'a [u8],
    pub payload: &'a [u8],
    pub reason: String,
}

impl<'a> DeadLetter<'a> {
    /// `message`, kept because of `reason`.
    pub fn of(message: &bus::Message<'a>, reason: String) -> Self {
        Self {
            origin: Origin::of(message),
            key: message.key,
            payload: message.value,
            reason,
        }
    }

    /// The values for [`INSERT_DEAD_LETTER`], in its order.
    pub fn params(&self) -> [&(dyn ToSql + Sync); 6] {
        [
            &self.origin.topic,
            &self.origin.partition,
            &self.origin.offset,
            &self.key,
            &self.payload,
            &self.reason,
        ]
    }
}
