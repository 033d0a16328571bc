//! The SQL side of retention: one bounded batch of deletions, and a table's row
//! estimate.

use std::time::Duration;

use postgres::Client;

use crate::Table;

/// What pruning one table did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Rows deleted.
    pub rows: u64,
    /// Batches (transactions) that deleted at least one row.
    pub batches: u32,
}

/// Set in each batch's transaction: a batch that would wait on a table lock (a
/// migration, `VACUUM FULL`) or run long gives up and is retried at the next interval
/// rather than holding up the hot path behind it.
const BATCH_LIMITS: &str = "SET LOCAL lock_timeout = '2s'; SET LOCAL statement_timeout = '60s'";

/// The `DELETE` for one table, written once.
#[derive(Debug)]
pub(crate) struct DeleteBatch {
    sql: String,
}

impl DeleteBatch {
    pub(crate) fn new(table: &Table) -> Self {
        let Table {
            name,
            key,
            age_column: age,
            ..
        } = table;
        // Oldest first through the age column's index; SKIP LOCKED: a row some other
        // transaction holds is left for the next run instead of waited for.
        let sql = format!(
            "DELETE FROM {name} WHERE {key} IN (
                SELECT {key} FROM {name}
                WHERE {age} IS NOT NULL AND {age} < now() - make_interval(secs => $1)
                ORDER BY {age}
                LIMIT $2
                FOR UPDATE SKIP LOCKED
            )"
        );
        Self { sql }
    }

    /// Deletes at most `limit` rows whose age is over `keep`, in one transaction;
    /// returns how many went. The cut-off is taken from the database clock.
    pub(crate) fn run(
        &self,
        client: &mut Client,
        keep: Duration,
        limit: u32,
    ) -> Result<u64, postgres::Error> {
        let mut transaction = client.transaction()?;
        transaction.batch_execute(BATCH_LIMITS)?;
        let deleted =
            transaction.execute(self.sql.as_str(), &[&keep.as_secs_f64(), &i64::from(limit)])?;
        transaction.commit()?;
        Ok(deleted)
    }
}

/// The table's live rows as PostgreSQL's statistics count them (`n_live_tup`: kept
/// up to date by every insert and delete, without scanning the table); `None` if the
/// table does not exist.
pub(crate) fn estimate_rows(
    client: &mut Client,
    table: &Table,
) -> Result<Option<i64>, postgres::Error> {
    client
        .query_opt(
            "SELECT n_live_tup FROM pg_stat_user_tables WHERE relid = to_regclass($1)",
            &[&table.name],
        )?
        .map(|row| row.try_get(0))
        .transpose()
}
