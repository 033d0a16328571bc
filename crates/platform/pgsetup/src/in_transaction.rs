//! refinery on a transaction the caller holds open.
//!
//! refinery's own PostgreSQL driver commits after every migration. Start-up instead
//! applies every set (and, on a predecessor's database, the take-over around them)
//! in one transaction, so a failure anywhere leaves the database exactly as it was.

use postgres::Transaction as PgTransaction;
use refinery::Migration;
use refinery_core::traits::sync::{Migrate, Query, Transaction};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

/// An open transaction refinery runs its statements in, never committing it.
pub(crate) struct InTransaction<'t, 'c>(pub(crate) &'t mut PgTransaction<'c>);

impl Transaction for InTransaction<'_, '_> {
    type Error = postgres::Error;

    fn execute<'a, T: Iterator<Item = &'a str>>(
        &mut self,
        queries: T,
    ) -> Result<usize, Self::Error> {
        let mut count = 0;
        for query in queries {
            self.0.batch_execute(query)?;
            count += 1;
        }
        Ok(count)
    }
}

impl Query<Vec<Migration>> for InTransaction<'_, '_> {
    fn query(&mut self, query: &str) -> Result<Vec<Migration>, Self::Error> {
        let mut applied = Vec::new();
        for row in self.0.query(query, &[])? {
            let applied_on: String = row.try_get(2)?;
            let checksum: String = row.try_get(3)?;
            // refinery writes both; a row edited by hand that no longer parses must
            // not panic start-up. A checksum that does not parse diverges from every
            // migration, which refinery then reports by name.
            let applied_on =
                OffsetDateTime::parse(&applied_on, &Rfc3339).unwrap_or(OffsetDateTime::UNIX_EPOCH);
            let checksum = checksum.parse::<u64>().unwrap_or_default();
            applied.push(Migration::applied(
                row.try_get(0)?,
                row.try_get(1)?,
                applied_on,
                checksum,
            ));
        }
        Ok(applied)
    }
}

impl Migrate for InTransaction<'_, '_> {}
