//! The retention thread: every enabled policy pruned at start and then every interval.

use std::{
    fmt::Write as _,
    thread::{self, JoinHandle},
    time::Duration,
};

use lifecycle::{ErrorChain, stop};
use ops_http::{Counter, Gauge, Metrics};
use pgsetup::{DbError, Pool};
use tokio_util::sync::CancellationToken;

use crate::{
    Policy,
    prune::{DeleteBatch, Pruned, estimate_rows},
};

/// How often and how much.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionConfig {
    /// Time between runs (`RETENTION_INTERVAL`); a run goes on until no aged rows are
    /// left, then sleeps this long.
    pub interval: Duration,
    /// Most rows one batch (one transaction) deletes (`RETENTION_BATCH`).
    pub batch_size: u32,
    /// Sleep after a full batch before the next one, so the hot path gets the
    /// database, the pool and the table's locks in between.
    pub pause: Duration,
}

impl RetentionConfig {
    /// The pause between full batches unless set otherwise.
    pub const DEFAULT_PAUSE: Duration = Duration::from_millis(100);

    pub fn new(interval: Duration, batch_size: u32) -> Self {
        Self {
            interval,
            batch_size,
            pause: Self::DEFAULT_PAUSE,
        }
    }
}

/// Retention of some tables of one database; see the crate docs.
pub struct Retention {
    pool: Pool,
    config: RetentionConfig,
    tables: Vec<TableState>,
    failures: Counter,
    shutdown: CancellationToken,
}

struct TableState {
    policy: Policy,
    delete: DeleteBatch,
    deleted: Counter,
    rows: Gauge,
}

impl Retention {
    /// Registers the metrics for `policies` (disabled ones too: their row gauge is
    /// still kept up to date) on `metrics`; nothing runs until [`Retention::spawn`]
    /// or [`Retention::run_once`].
    pub fn new(
        pool: Pool,
        config: RetentionConfig,
        policies: &[Policy],
        metrics: &Metrics,
        shutdown: CancellationToken,
    ) -> Self {
        let deleted = metrics.counter_family(
            "retention_deleted_rows_total",
            "Rows deleted by retention (older than the table's window), by table.",
            ["table"],
        );
        let rows = metrics.gauge_family(
            "retention_table_rows",
            "Estimated rows in a table retention keeps bounded (PostgreSQL's n_live_tup), by table.",
            ["table"],
        );
        let tables = policies
            .iter()
            .map(|policy| TableState {
                policy: *policy,
                delete: DeleteBatch::new(&policy.table),
                // Created now, so every table shows 0 before its first deletion.
                deleted: deleted.with_labels([policy.table.name]),
                rows: rows.with_labels([policy.table.name]),
            })
            .collect();
        Self {
            pool,
            config,
            tables,
            failures: metrics.counter(
                "retention_failures_total",
                "Retention runs of a table that failed (database unreachable, lock or statement timeout); each is retried at the next interval.",
            ),
            shutdown,
        }
    }

    /// Starts the runs on their own OS thread; it stops when `shutdown` is cancelled
    /// (after the batch in hand).
    pub fn spawn(self) -> std::io::Result<RetentionHandle> {
        let thread = thread::Builder::new()
            .name("retention".to_owned())
            .spawn(move || self.run())?;
        Ok(RetentionHandle { thread })
    }

    fn run(self) {
        let enabled: Vec<String> = self
            .tables
            .iter()
            .filter(|table| table.policy.is_enabled())
            .map(|table| format!("{} ({:?})", table.policy.table.name, table.policy.keep))
            .collect();
        tracing::info!(
            tables = %enabled.join(", "),
            interval = ?self.config.interval,
            batch = self.config.batch_size,
            "retention started"
        );
        while !self.shutdown.is_cancelled() {
            self.run_once();
            stop::sleep(&self.shutdown, self.config.interval);
        }
        tracing::info!("retention stopped");
    }

    /// One run: prunes every enabled table until none of its rows is past its window
    /// (or shutdown), then refreshes the row gauges. Returns what each enabled table's
    /// pruning did, in policy order. Logs one info line if anything was deleted and a
    /// warning per table that failed.
    pub fn run_once(&self) -> Vec<(&'static str, Result<Pruned, DbError>)> {
        let mut outcomes = Vec::new();
        for table in self.tables.iter().filter(|table| table.policy.is_enabled()) {
            if self.shutdown.is_cancelled() {
                break;
            }
            let outcome = self.prune(table);
            if let Err(err) = &outcome {
                self.failures.inc();
                tracing::warn!(
                    table = table.policy.table.name,
                    error = %ErrorChain(err),
                    retry_in = ?self.config.interval,
                    "retention failed; retried at the next interval"
                );
            }
            outcomes.push((table.policy.table.name, outcome));
        }
        let total: u64 = outcomes
            .iter()
            .filter_map(|(_, outcome)| outcome.as_ref().ok())
            .map(|pruned| pruned.rows)
            .sum();
        if total > 0 {
            let mut detail = String::new();
            for (name, pruned) in outcomes
                .iter()
                .filter_map(|(name, outcome)| Some((name, outcome.as_ref().ok()?)))
                .filter(|(_, pruned)| pruned.rows > 0)
            {
                let sep = if detail.is_empty() { "" } else { ", " };
                let _ = write!(
                    detail,
                    "{sep}{name}: {} in {} batches",
                    pruned.rows, pruned.batches
                );
            }
            tracing::info!(deleted = total, %detail, "retention deleted old rows");
        }
        self.update_row_estimates();
        outcomes
    }

    /// Deletes the table's aged rows batch by batch until a batch comes back short.
    /// The deleted-rows counter moves with every batch, so a failure part-way through
    /// still counts what went.
    fn prune(&self, table: &TableState) -> Result<Pruned, DbError> {
        let mut pruned = Pruned::default();
        while !self.shutdown.is_cancelled() {
            let deleted = {
                let mut client = self.pool.get()?;
                table
                    .delete
                    .run(&mut client, table.policy.keep, self.config.batch_size)?
            };
            if deleted > 0 {
                pruned.rows += deleted;
                pruned.batches += 1;
                table.deleted.add(deleted);
            }
            if deleted < u64::from(self.config.batch_size) {
                break;
            }
            stop::sleep(&self.shutdown, self.config.pause);
        }
        Ok(pruned)
    }

    fn update_row_estimates(&self) {
        let mut client = match self.pool.get() {
            Ok(client) => client,
            Err(err) => {
                tracing::debug!(%err, "retention: no connection for the row estimates");
                return;
            }
        };
        for table in &self.tables {
            match estimate_rows(&mut client, &table.policy.table) {
                Ok(Some(rows)) => table.rows.set(rows),
                Ok(None) => {}
                Err(err) => {
                    tracing::debug!(table = table.policy.table.name, error = %ErrorChain(&err), "row estimate failed");
                }
            }
        }
    }
}

/// The retention thread.
pub struct RetentionHandle {
    thread: JoinHandle<()>,
}

impl RetentionHandle {
    /// Waits for the thread to stop (after the shutdown token is cancelled).
    pub fn join(self) {
        if self.thread.join().is_err() {
            tracing::error!("retention thread panicked");
        }
    }

    pub fn is_finished(&self) -> bool {
        self.thread.is_finished()
    }
}
