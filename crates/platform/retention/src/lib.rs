//! Retention: keeps the services' append-only tables bounded.
//!
//! Orders and payments only ever insert into their outbox (`events`) and, as
//! consumers, into the inbox's `processed_events` and `dead_letters`: at 1,000 orders/s that is tens of
//! millions of rows a day. A [`Retention`] deletes, per [`Policy`], the rows of a
//! [`Table`] whose age column is older than the policy's window:
//!
//! - **bounded batches**: each batch is one short transaction deleting at most
//!   `batch_size` rows by primary key, picked oldest first through an index on the
//!   age column (`... WHERE key IN (SELECT key ... ORDER BY age LIMIT n FOR UPDATE
//!   SKIP LOCKED)`), with `lock_timeout` and `statement_timeout` set, and a pause
//!   between batches: it never holds locks for long, never waits on a row another
//!   transaction holds, and leaves the pool to the hot path in between;
//! - **only aged rows**: a row whose age column is NULL never goes, so an outbox row
//!   (age column `sent_at`) stays until it has been published, however old;
//! - **off the hot path**: [`Retention::spawn`] runs it on its own OS thread (the
//!   `postgres` client blocks), once at start and then every `interval`; a window of
//!   zero disables that table's retention;
//! - **observable**: `retention_deleted_rows_total{table}` counts the rows deleted,
//!   `retention_table_rows{table}` estimates each table's rows (PostgreSQL's
//!   statistics, no scan), and `retention_failures_total` counts failed runs. A run that deleted something logs
//!   one info line; a failure logs a warning and is retried at the next interval,
//!   never stopping the service.
//!
//! The age column needs an index (each service's migrations create one), or every
//! batch would scan the table.

mod prune;
mod task;

pub use prune::Pruned;
pub use task::{Retention, RetentionConfig, RetentionHandle};

use std::time::Duration;

/// A table retention can prune. The names are written into SQL as they are, so they
/// come from code (constants), never from outside input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Table {
    /// The table's name, also the `table` label of the metrics.
    pub name: &'static str,
    /// Its primary key column: batches are deleted by key.
    pub key: &'static str,
    /// The `timestamptz` column a row's age is measured from; NULL means never.
    pub age_column: &'static str,
}

/// One table and how long its rows are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub table: Table,
    /// Rows whose age column is older than this go; zero keeps everything.
    pub keep: Duration,
}

impl Policy {
    pub fn new(table: Table, keep: Duration) -> Self {
        Self { table, keep }
    }

    /// False when the window is zero: the table is left alone.
    pub fn is_enabled(&self) -> bool {
        !self.keep.is_zero()
    }
}

/// `RETENTION_INTERVAL` unless set: time between runs.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);
/// `RETENTION_BATCH` unless set: most rows one batch (one transaction) deletes.
pub const DEFAULT_BATCH_SIZE: u32 = 1000;
/// The largest `RETENTION_BATCH` accepted: a bigger batch holds its row locks and
/// its share of the WAL for too long at once.
pub const MAX_BATCH_SIZE: u32 = 100_000;

/// Checks `RETENTION_INTERVAL` and `RETENTION_BATCH` as every service reads them; the
/// error names the variable (the caller wraps it in its configuration error).
pub fn check_schedule(interval: Duration, batch_size: u32) -> Result<(), String> {
    if interval.is_zero() {
        return Err(
            "RETENTION_INTERVAL must not be 0 (set a table's retention to 0 to keep its rows)"
                .to_owned(),
        );
    }
    if !(1..=MAX_BATCH_SIZE).contains(&batch_size) {
        return Err(format!(
            "RETENTION_BATCH must be from 1 to {MAX_BATCH_SIZE}"
        ));
    }
    Ok(())
}
