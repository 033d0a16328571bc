//! What a service's database is made of: one or more sets of embedded migrations,
//! each with its own history table (a service's own tables, the outbox's, ...),
//! applied in order by [`crate::prepare`] under one advisory lock.
//!
//! A migration that has run on a database is never edited, with one exception this
//! module makes safe: when a part of a service's schema moves to the crate that owns
//! it (the outbox table left `orders`' and `payments`' `V1__init.sql` for the
//! outbox's own migrations), the edited migration lists the checksum it had before
//! as [`Superseded`]. A database migrated before the move then has its history row
//! updated to the current checksum (its tables already exist, the owner's migrations
//! adopt them with `IF NOT EXISTS`); any other difference still stops start-up as
//! refinery's divergence check does.

use postgres::Transaction;

use crate::{SetupError, in_transaction::InTransaction, takeover::Predecessor};

/// A migration's checksum before a known, reviewed edit.
#[derive(Debug, Clone, Copy)]
pub struct Superseded {
    /// The migration's version (`V1__init.sql` is 1).
    pub version: i32,
    /// The checksum refinery recorded for its earlier text.
    pub checksum: u64,
}

impl Superseded {
    pub const fn new(version: i32, checksum: u64) -> Self {
        Self { version, checksum }
    }
}

/// One set of migrations and the table that records which of them ran.
pub struct MigrationSet {
    runner: refinery::Runner,
    history_table: &'static str,
    superseded: &'static [Superseded],
}

/// refinery's own history table, which the services' first migrations used.
pub const DEFAULT_HISTORY_TABLE: &str = "refinery_schema_history";

impl MigrationSet {
    /// `runner`'s migrations recorded in [`DEFAULT_HISTORY_TABLE`].
    pub fn new(runner: refinery::Runner) -> Self {
        Self {
            runner,
            history_table: DEFAULT_HISTORY_TABLE,
            superseded: &[],
        }
    }

    /// Records this set in `table` instead, so two sets in one database keep their
    /// version numbers apart.
    pub fn history_table(mut self, table: &'static str) -> Self {
        self.history_table = table;
        self
    }

    /// Earlier checksums of migrations edited since they ran; see the module docs.
    pub fn superseded(mut self, superseded: &'static [Superseded]) -> Self {
        self.superseded = superseded;
        self
    }

    /// The table recording which of this set's migrations ran.
    pub fn history_table_name(&self) -> &'static str {
        self.history_table
    }

    /// The migrations, e.g. to apply them to a reference database.
    pub fn migrations(&self) -> &[refinery::Migration] {
        self.runner.get_migrations()
    }

    /// Applies the set in `transaction`, which the caller commits; the caller holds
    /// the migration lock.
    pub(crate) fn apply(
        mut self,
        transaction: &mut Transaction<'_>,
    ) -> Result<Vec<String>, SetupError> {
        self.adopt_superseded(transaction)
            .map_err(SetupError::AdoptSuperseded)?;
        let report = self
            .runner
            .set_migration_table_name(self.history_table)
            .run(&mut InTransaction(transaction))
            .map_err(SetupError::Migrate)?;
        Ok(report
            .applied_migrations()
            .iter()
            .map(|migration| format!("{}: {migration}", self.history_table))
            .collect())
    }

    /// Rewrites the history rows whose checksum is a listed earlier one.
    fn adopt_superseded(&self, client: &mut Transaction<'_>) -> Result<(), postgres::Error> {
        if self.superseded.is_empty() {
            return Ok(());
        }
        let exists = client
            .query_one("SELECT to_regclass($1) IS NOT NULL", &[&self.history_table])?
            .try_get::<_, bool>(0)?;
        if !exists {
            return Ok(());
        }
        // The table name is a constant of this program, never input.
        let update = format!(
            "UPDATE {} SET checksum = $1 WHERE version = $2 AND checksum = $3",
            self.history_table
        );
        for earlier in self.superseded {
            let Some(current) = self
                .runner
                .get_migrations()
                .iter()
                .find(|migration| migration.version() == earlier.version)
            else {
                continue;
            };
            let adopted = client.execute(
                &update,
                &[
                    &current.checksum().to_string(),
                    &earlier.version,
                    &earlier.checksum.to_string(),
                ],
            )?;
            if adopted > 0 {
                tracing::info!(
                    history = self.history_table,
                    version = earlier.version,
                    migration = current.name(),
                    "migration edited since it ran here (a part moved to its owner's migrations): recorded its current checksum"
                );
            }
        }
        Ok(())
    }
}

impl From<refinery::Runner> for MigrationSet {
    fn from(runner: refinery::Runner) -> Self {
        Self::new(runner)
    }
}

/// Everything a database needs, in the order it is applied, and the predecessor
/// whose database it may take over.
#[derive(Default)]
pub struct Schema {
    sets: Vec<MigrationSet>,
    predecessor: Option<Predecessor>,
}

impl Schema {
    pub fn new() -> Self {
        Self::default()
    }

    /// `sets`, applied in order.
    pub fn of(sets: impl IntoIterator<Item = MigrationSet>) -> Self {
        Self {
            sets: sets.into_iter().collect(),
            predecessor: None,
        }
    }

    /// Adds a set, applied after those added before.
    pub fn with(mut self, set: impl Into<MigrationSet>) -> Self {
        self.sets.push(set.into());
        self
    }

    /// Takes over `predecessor`'s database when start-up finds one (see
    /// [`crate::takeover`]).
    pub fn taking_over(mut self, predecessor: Predecessor) -> Self {
        self.predecessor = Some(predecessor);
        self
    }

    /// The sets in the order they are applied.
    pub fn sets(&self) -> &[MigrationSet] {
        &self.sets
    }

    pub(crate) fn into_parts(self) -> (Vec<MigrationSet>, Option<Predecessor>) {
        (self.sets, self.predecessor)
    }
}

impl From<refinery::Runner> for Schema {
    fn from(runner: refinery::Runner) -> Self {
        Self::new().with(runner)
    }
}

impl From<MigrationSet> for Schema {
    fn from(set: MigrationSet) -> Self {
        Self::new().with(set)
    }
}
