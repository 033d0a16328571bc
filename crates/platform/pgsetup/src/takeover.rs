//! Taking over, in place, a database that a predecessor's goose migrations made
//! (the Go platform's services), so a team can switch a service without moving data.
//!
//! A [`Predecessor`] names the goose version it understands, the tables it expects
//! and the [`MoveStep`]s that copy their rows into ours. At start-up, in the one
//! transaction that applies the migrations ([`crate::prepare`]):
//!
//! 1. [`detect`]: goose's history table in `public` means a predecessor's database;
//!    one that is also ours already, of a newer goose version or missing a table
//!    is refused, naming what was found.
//! 2. Its tables (and goose's) move to the schema [`ASIDE`], with their indexes and
//!    sequences, so ours can be created under the same names.
//! 3. Our migrations run as on an empty database.
//! 4. Each step copies rows from [`ASIDE`] into ours (same ids and timestamps) and
//!    moves our id sequences past the predecessor's ([`continue_ids`]).
//! 5. [`ASIDE`] is dropped.
//!
//! Any failure rolls the whole transaction back: the database is exactly as it was.

use postgres::Transaction;

use crate::{SetupError, describe};

/// The schema a predecessor's tables wait in while ours are created; dropped at the end.
pub const ASIDE: &str = "taken_over";

/// goose's history table (`version_id`, `is_applied`).
pub const GOOSE_HISTORY: &str = "goose_db_version";

/// A predecessor whose database this service takes over.
pub struct Predecessor {
    /// Who made the database, for messages: "the Go orders service".
    pub name: &'static str,
    /// The newest goose version the steps understand (a newer schema is refused).
    pub goose_version: i64,
    /// The predecessor's tables, all expected, all moved aside and dropped.
    pub tables: &'static [&'static str],
    /// Copy the rows into ours, in order (e.g. orders before their items).
    pub steps: Vec<MoveStep>,
}

/// Copies one table's rows in the take-over's transaction; returns how many.
pub type CopyRows = dyn Fn(&mut Transaction<'_>) -> Result<u64, MoveError> + Send + Sync;

/// One table's rows copied from [`ASIDE`] into ours.
pub struct MoveStep {
    /// The table it fills, for messages.
    pub table: &'static str,
    pub run: Box<CopyRows>,
}

impl MoveStep {
    pub fn new(
        table: &'static str,
        run: impl Fn(&mut Transaction<'_>) -> Result<u64, MoveError> + Send + Sync + 'static,
    ) -> Self {
        Self {
            table,
            run: Box::new(run),
        }
    }
}

/// Why a step could not copy its rows.
#[derive(Debug, thiserror::Error)]
pub enum MoveError {
    /// Rows this platform cannot represent (e.g. an unknown status); names them.
    #[error("{0}")]
    Refused(String),
    /// A statement failed: the server's message (with its SQLSTATE and detail) is
    /// this error's message, the form a take-over's reason carries, so the
    /// driver's error is kept here but not exposed as a source as well.
    #[error("{}", describe(.0))]
    Db(postgres::Error),
}

impl From<postgres::Error> for MoveError {
    fn from(err: postgres::Error) -> Self {
        MoveError::Db(err)
    }
}

/// What [`detect`] found.
#[derive(Debug)]
pub enum Found {
    /// No goose history: not a predecessor's database (empty, or already ours).
    Nothing,
    /// A predecessor's database at this goose version.
    Predecessor { goose_version: i64 },
}

/// Looks for the predecessor's schema; refuses one this release cannot take over.
/// `our_history` are the tables our migration sets record in.
pub fn detect(
    transaction: &mut Transaction<'_>,
    predecessor: &Predecessor,
    our_history: &[&str],
) -> Result<Found, SetupError> {
    let refuse = |reason: String| SetupError::Takeover {
        predecessor: predecessor.name,
        reason,
    };
    let db = |err: postgres::Error| refuse(describe(&err));
    if !table_exists(transaction, GOOSE_HISTORY).map_err(db)? {
        return Ok(Found::Nothing);
    }
    let mut ours = Vec::new();
    for table in our_history {
        if table_exists(transaction, table).map_err(db)? {
            ours.push(*table);
        }
    }
    if !ours.is_empty() {
        return Err(refuse(format!(
            "the database holds both goose's {GOOSE_HISTORY} and this platform's {} \
             (a take-over that was undone by hand?); restore the backup taken before the \
             switch, or drop one of the two schemas",
            ours.join(", ")
        )));
    }
    let goose_version: i64 = transaction
        .query_one(
            &format!(
                "SELECT COALESCE(max(version_id) FILTER (WHERE is_applied), 0) FROM {GOOSE_HISTORY}"
            ),
            &[],
        )
        .and_then(|row| row.try_get(0))
        .map_err(db)?;
    if goose_version > predecessor.goose_version {
        return Err(refuse(format!(
            "goose version {goose_version} is newer than the schema this release takes over \
             (version {}); its tables may differ",
            predecessor.goose_version
        )));
    }
    let mut missing = Vec::new();
    for table in predecessor.tables {
        if !table_exists(transaction, table).map_err(db)? {
            missing.push(*table);
        }
    }
    if !missing.is_empty() {
        return Err(refuse(format!(
            "goose version {goose_version}, but table(s) {} missing",
            missing.join(", ")
        )));
    }
    if schema_exists(transaction, ASIDE).map_err(db)? {
        return Err(refuse(format!(
            "a schema named {ASIDE:?} already exists; the take-over needs that name for the \
             predecessor's tables while it copies them"
        )));
    }
    Ok(Found::Predecessor { goose_version })
}

/// Step 2: moves the predecessor's tables (with their indexes, constraints and owned
/// sequences) and goose's history out of `public`, into [`ASIDE`].
pub fn set_aside(
    transaction: &mut Transaction<'_>,
    predecessor: &Predecessor,
) -> Result<(), SetupError> {
    let mut sql = format!("CREATE SCHEMA {ASIDE};");
    for table in predecessor.tables.iter().chain([&GOOSE_HISTORY]) {
        sql.push_str(&format!("ALTER TABLE public.{table} SET SCHEMA {ASIDE};"));
    }
    transaction
        .batch_execute(&sql)
        .map_err(|err| SetupError::Takeover {
            predecessor: predecessor.name,
            reason: format!("moving its tables aside: {}", describe(&err)),
        })
}

/// Steps 4 and 5: copies every table's rows, then drops [`ASIDE`]. Returns "table:
/// rows" for the log.
pub fn move_rows(
    transaction: &mut Transaction<'_>,
    predecessor: &Predecessor,
) -> Result<Vec<String>, SetupError> {
    let mut moved = Vec::new();
    for step in &predecessor.steps {
        let rows = (step.run)(transaction).map_err(|err| SetupError::Takeover {
            predecessor: predecessor.name,
            reason: format!("copying into {}: {err}", step.table),
        })?;
        moved.push(format!("{}: {rows}", step.table));
    }
    transaction
        .batch_execute(&format!("DROP SCHEMA {ASIDE} CASCADE"))
        .map_err(|err| SetupError::Takeover {
            predecessor: predecessor.name,
            reason: format!("dropping its moved tables: {}", describe(&err)),
        })?;
    Ok(moved)
}

/// Refuses the rows `query` finds: it returns one row per offending value and how
/// many rows have it (`SELECT status, count(*) ... GROUP BY status`); the error says
/// `problem` and lists them, e.g. `"StatusCanceled" (2 orders)`, `NULL (1 orders)`.
pub fn refuse_any(
    transaction: &mut Transaction<'_>,
    query: &str,
    problem: &str,
    rows_name: &str,
) -> Result<(), MoveError> {
    let found: Vec<String> = transaction
        .query(query, &[])?
        .iter()
        .map(|row| {
            let value: Option<String> = row.try_get(0)?;
            let count: i64 = row.try_get(1)?;
            let value = value.map_or_else(|| "NULL".to_owned(), |value| format!("{value:?}"));
            Ok(format!("{value} ({count} {rows_name})"))
        })
        .collect::<Result<_, postgres::Error>>()?;
    if found.is_empty() {
        return Ok(());
    }
    Err(MoveError::Refused(format!(
        "{problem}: {}",
        found.join(", ")
    )))
}

/// Moves `table.column`'s id sequence past every id the predecessor used: the
/// larger of the predecessor's sequence (`aside_table.aside_column`, in [`ASIDE`])
/// and the highest id copied. Ids are identities on the wire (consumers deduplicate
/// on event ids), so a new row must never reuse one, even of a row since deleted.
pub fn continue_ids(
    transaction: &mut Transaction<'_>,
    (aside_table, aside_column): (&str, &str),
    (table, column): (&str, &str),
) -> Result<(), postgres::Error> {
    let sequence = |transaction: &mut Transaction<'_>, table: String, column: &str| {
        transaction
            .query_one("SELECT pg_get_serial_sequence($1, $2)", &[&table, &column])
            .and_then(|row| row.try_get::<_, Option<String>>(0))
    };
    let theirs = sequence(transaction, format!("{ASIDE}.{aside_table}"), aside_column)?;
    let ours = sequence(transaction, table.to_owned(), column)?;
    let Some(ours) = ours else {
        return Ok(());
    };
    // Names from pg_get_serial_sequence come quoted as needed; the table and column
    // names are constants of this program.
    let used_by_predecessor = match theirs {
        Some(theirs) => format!(
            "(SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END FROM {theirs})"
        ),
        None => "0".to_owned(),
    };
    transaction.batch_execute(&format!(
        "SELECT setval('{ours}', greatest(n, 1), n > 0) FROM (
             SELECT greatest({used_by_predecessor}, (SELECT coalesce(max({column}), 0) FROM {table})) AS n
         ) AS last"
    ))
}

fn table_exists(transaction: &mut Transaction<'_>, table: &str) -> Result<bool, postgres::Error> {
    transaction
        .query_one(
            "SELECT to_regclass(quote_ident('public') || '.' || quote_ident($1)) IS NOT NULL",
            &[&table],
        )?
        .try_get(0)
}

fn schema_exists(transaction: &mut Transaction<'_>, schema: &str) -> Result<bool, postgres::Error> {
    transaction
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)",
            &[&schema],
        )?
        .try_get(0)
}
