//! The outbox table: its migrations, and the one way rows get into it.
//!
//! A service writes its state change and its outbox row in one transaction, and in
//! orders and payments in one statement (one round trip on the hot path): the service's
//! statement ends with the `INSERT` [`insert_sql`] gives, bound to the values of an
//! [`OutboxRow`]. The event id is drawn first ([`NEXT_EVENT_ID`]), so the event's JSON
//! can carry it.

use contracts::Event;
use postgres::types::ToSql;

mod embedded {
    refinery::embed_migrations!("../../../migrations/outbox");
}

/// The table recording which of the outbox's migrations ran, apart from the service's.
pub const HISTORY_TABLE: &str = "outbox_schema_history";

/// The outbox's migrations (`migrations/outbox`), for a service's [`pgsetup::Schema`].
pub fn migrations() -> pgsetup::MigrationSet {
    pgsetup::MigrationSet::new(embedded::migrations::runner()).history_table(HISTORY_TABLE)
}

/// SQL expression drawing the next event id, e.g. `SELECT nextval(...), ...`.
pub const NEXT_EVENT_ID: &str = "nextval('events_event_id_seq')";

/// `INSERT INTO events ...` with the row's five values bound to `$first` ..
/// `$first+4` in [`OutboxRow::params`] order. With `only_if = Some(cte)` the row is
/// written only when the CTE `cte` of the same statement returned a row (e.g. "only
/// if the payment was new").
pub fn insert_sql(first: usize, only_if: Option<&str>) -> String {
    let values = format!(
        "${first}, ${}, ${}, ${}::text::json, ${}",
        first + 1,
        first + 2,
        first + 3,
        first + 4
    );
    let source = match only_if {
        None => format!("VALUES ({values})"),
        Some(cte) => format!("SELECT {values} FROM {cte}"),
    };
    format!(
        "INSERT INTO {} (event_id, topic, message_key, payload, trace_context) {source}",
        crate::TABLE
    )
}

/// One event about to be written to the outbox.
#[derive(Debug, Clone)]
pub struct OutboxRow {
    event_id: i64,
    topic: String,
    key: String,
    payload: String,
    trace_context: Option<String>,
}

impl OutboxRow {
    /// `event` published to `topic` under `key` (e.g. the order id, so one order's
    /// events stay in one partition); `event_id` is the one `event` carries.
    pub fn new<E: Event>(event_id: i64, topic: &str, key: String, event: &E) -> Self {
        Self {
            event_id,
            topic: topic.to_owned(),
            key,
            payload: contracts::encode(event),
            trace_context: None,
        }
    }

    /// The row carrying `trace` (the span that wrote it), for the relay to continue.
    pub fn traced(mut self, trace: Option<&telemetry::TraceHeaders>) -> Self {
        self.trace_context = trace.map(telemetry::TraceHeaders::stored);
        self
    }

    /// The values for [`insert_sql`], in its order.
    pub fn params(&self) -> [&(dyn ToSql + Sync); 5] {
        [
            &self.event_id,
            &self.topic,
            &self.key,
            &self.payload,
            &self.trace_context,
        ]
    }
}

/// `INSERT INTO events ...` of the rows `select` yields: its columns, in order, the
/// event id, topic, message key, payload (text holding the event's JSON) and trace
/// context (text, or NULL; see [`OutboxRow::traced`]). For a
/// statement that writes many events drawn from its own data (e.g. "one per new
/// payment").
pub fn insert_select_sql(select: &str) -> String {
    format!(
        "INSERT INTO {} (event_id, topic, message_key, payload, trace_context) \
         SELECT s.event_id, s.topic, s.message_key, s.payload::json, s.trace_context \
         FROM ({select}) AS s (event_id, topic, message_key, payload, trace_context)",
        crate::TABLE
    )
}

/// `INSERT INTO events ...` of many rows at once: five arrays bound to `$first` ..
/// `$first+4` in [`OutboxRows::params`] order, one row per element.
pub fn insert_many_sql(first: usize) -> String {
    format!(
        "INSERT INTO {} (event_id, topic, message_key, payload, trace_context) \
         SELECT e.event_id, e.topic, e.message_key, e.payload::json, e.trace_context \
         FROM unnest(${first}::bigint[], ${}::text[], ${}::text[], ${}::text[], ${}::text[]) \
              AS e (event_id, topic, message_key, payload, trace_context)",
        crate::TABLE,
        first + 1,
        first + 2,
        first + 3,
        first + 4
    )
}

/// Many [`OutboxRow`]s for one multi-row insert ([`insert_many_sql`]).
#[derive(Debug, Clone, Default)]
pub struct OutboxRows {
    event_ids: Vec<i64>,
    topics: Vec<String>,
    keys: Vec<String>,
    payloads: Vec<String>,
    trace_contexts: Vec<Option<String>>,
}

impl OutboxRows {
    /// No rows yet, room for `capacity`.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            event_ids: Vec::with_capacity(capacity),
            topics: Vec::with_capacity(capacity),
            keys: Vec::with_capacity(capacity),
            payloads: Vec::with_capacity(capacity),
            trace_contexts: Vec::with_capacity(capacity),
        }
    }

    /// Adds one row.
    pub fn push(&mut self, row: OutboxRow) {
        self.event_ids.push(row.event_id);
        self.topics.push(row.topic);
        self.keys.push(row.key);
        self.payloads.push(row.payload);
        self.trace_contexts.push(row.trace_context);
    }

    /// How many rows there are.
    pub fn len(&self) -> usize {
        self.event_ids.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.event_ids.is_empty()
    }

    /// The five arrays for [`insert_many_sql`], in its order.
    pub fn params(&self) -> [&(dyn ToSql + Sync); 5] {
        [
            &self.event_ids,
            &self.topics,
            &self.keys,
            &self.payloads,
            &self.trace_contexts,
        ]
    }
}
