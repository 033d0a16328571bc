//! The transactional outbox: the only way events leave orders and payments.
//!
//! This crate owns all of it: the table ([`migrations`], its own migration set with
//! its own history table, which every service with an outbox adds to its
//! [`pgsetup::Schema`]), the insert ([`insert_sql`] with an [`OutboxRow`]'s values,
//! part of the service's own statement), the settings ([`OutboxSettings`]: defaults, checks, the relay's
//! configuration and the retention policy) and the relay, which a service starts with
//! retention as [`OutboxWorkers`].
//!
//! A service writes its state change and an `events` row in one transaction; the
//! relay, on its own OS thread, turns those rows into Kafka messages:
//!
//! 1. **claim** a batch of unsent rows (`FOR UPDATE SKIP LOCKED`, oldest first) by
//!    setting `claimed_until = now() + lease`: concurrent relays on one database take
//!    disjoint batches, and the rows of a relay that crashed become claimable again
//!    when its lease runs out;
//! 2. **publish** them with the `bus` producer (acks from all in-sync replicas),
//!    keyed by `message_key` so one order's events stay in one partition;
//! 3. **mark** them sent, in the statement that claims the next batch (one round trip
//!    per cycle; alone when the relay stops).
//!
//! A crash between 2 and 3 publishes a row twice: delivery is at least once, and
//! consumers deduplicate on `event_id`. When a batch comes back empty the relay
//! sleeps on `LISTEN outbox_events` (a trigger on `events` NOTIFYs at commit), so
//! a new event leaves within milliseconds, with `poll_interval` as the fallback if
//! a notification is missed. Broker or database down: rows stay unsent, the relay
//! retries with backoff and catches up when they return. A broker that no longer serves
//! the `kafka` client's protocol (Apache Kafka 4.x) stops the relay and its service.
//!
//! The table and its trigger ([`TABLE`], [`CHANNEL`]) are in `migrations/outbox`;
//! [`takeover`] turns a Go service's outbox rows into ours.
//! Sent rows are kept for a while, then deleted by the `retention` crate as
//! [`RETENTION_TABLE`] describes (unsent rows never).

mod claim;
mod relay;
pub mod schema;
mod settings;
pub mod takeover;
mod workers;

pub use claim::{ClaimedEvent, OutboxTable};
pub use relay::{RelayConfig, RelayHandle, spawn_relay};
pub use schema::{
    NEXT_EVENT_ID, OutboxRow, OutboxRows, insert_many_sql, insert_select_sql, insert_sql,
    migrations,
};
pub use settings::{ACK_TIMEOUT, ENV_VARS, OutboxSettings};
pub use workers::{OutboxWorkers, RetentionPlan, WorkersError};

/// The outbox table's name.
pub const TABLE: &str = "events";
/// The NOTIFY channel the table's trigger signals on.
pub const CHANNEL: &str = "outbox_events";

/// The outbox for the `retention` crate: a row's age is counted from `sent_at`, so
/// only published rows ever go (an unsent row's `sent_at` is NULL); the index on it
/// is `events_sent_at` (`migrations/outbox`).
pub const RETENTION_TABLE: retention::Table = retention::Table {
    name: TABLE,
    key: "event_id",
    age_column: "sent_at",
};

/// How long sent rows are kept unless configured (`OUTBOX_RETENTION`): a week, to
/// look into what was published recently.
pub const DEFAULT_RETENTION: std::time::Duration = std::time::Duration::from_secs(168 * 3600);

/// Why a relay step failed; retried, except a broker without the protocol versions the
/// `kafka` client uses ([`bus::BusError::UnsupportedBroker`]), which stops the relay.
///
/// The cause is the [`source`](std::error::Error::source): log the chain, not only
/// `Display`.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error(transparent)]
    Database(#[from] pgsetup::DbError),
    #[error("publishing to the broker failed")]
    Broker(#[from] bus::BusError),
}
