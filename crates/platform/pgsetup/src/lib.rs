//! PostgreSQL plumbing shared by the services that keep state in PostgreSQL.
//!
//! Start-up is [`prepare`]: make sure the service's database exists (creating it
//! through the `postgres` maintenance database if not), apply the service's
//! [`Schema`] (the refinery migration sets embedded in its binary: its own, the
//! outbox's, each with its own history table) in one transaction while holding an
//! advisory lock (so two instances starting at once neither fail nor apply anything
//! twice, and a failure changes nothing), and return an r2d2 pool that connects
//! lazily. A database the Go platform's goose migrations made is taken over in that
//! same transaction ([`takeover`]). [`is_unavailable`] tells a transient database
//! outage (connection refused, lost, server shutting down) from a real error, so
//! callers can answer UNAVAILABLE and retry instead of failing hard; [`DbError`] is
//! a failed call on the pool, classified once: no connection in time, an outage, data
//! the database refused, or another failed statement. Pooled
//! [`Connection`]s keep their prepared statements ([`Connection::prepare_cached`]),
//! so a hot statement costs one round trip instead of two.
//!
//! TLS follows libpq's `sslmode` / `sslrootcert` in the DSN (see [`tls`]); every
//! connection made here (database creation, migrations, the pool, [`connect`]) uses it.
//!
//! All calls here block: async code reaches them through `spawn_blocking`.

mod connection;
mod in_transaction;
mod schema;
pub mod takeover;
pub mod tls;

use backoff::RetryPolicy;
use lifecycle::ErrorChain;
use std::{str::FromStr, time::Duration};

use postgres::{Client, Config, error::SqlState};

pub use connection::{Connection, ConnectionManager};
pub use schema::{DEFAULT_HISTORY_TABLE, MigrationSet, Schema, Superseded};
pub use takeover::{MoveError, MoveStep, Predecessor};
pub use tls::{PgTls, SslMode, TlsConfigError, TlsSettings};

pub type Pool = r2d2::Pool<ConnectionManager>;
pub type PooledClient = r2d2::PooledConnection<ConnectionManager>;

/// Advisory lock key held while migrating ("migrate" in ASCII).
const MIGRATION_LOCK_KEY: i64 = 0x006d_6967_7261_7465;

/// Why [`prepare`] (or [`connect`]) failed. Each message says what failed; the
/// driver's error is the `source()` (for a database error its own source is the
/// server's message), so `lifecycle::ErrorChain` shows the whole story.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The DSN names no database.
    #[error("invalid PostgreSQL DSN: {0}")]
    Dsn(String),
    /// The DSN is not one the driver can parse.
    #[error("invalid PostgreSQL DSN")]
    ParseDsn(#[source] postgres::Error),
    #[error("cannot create database {database:?}")]
    CreateDatabase {
        database: String,
        source: postgres::Error,
    },
    #[error("cannot connect to PostgreSQL")]
    Connect(#[source] postgres::Error),
    /// `sslmode` / `sslrootcert` cannot work as given (a missing file, an unknown mode).
    #[error("PostgreSQL TLS settings")]
    TlsSettings(#[source] TlsConfigError),
    /// The TLS handshake failed, the server's certificate was refused or the server
    /// does not offer TLS: retrying does not help until the certificate or the
    /// settings change.
    #[error("TLS to PostgreSQL refused (sslmode={mode})")]
    TlsRefused {
        mode: SslMode,
        source: postgres::Error,
    },
    #[error("migration failed")]
    Migrate(#[source] refinery::Error),
    /// The database is a predecessor's (the Go platform's) and could not be taken
    /// over; nothing was changed.
    #[error(
        "cannot take over the database of {predecessor}: {reason}; the database was left unchanged"
    )]
    Takeover {
        predecessor: &'static str,
        reason: String,
    },
    /// The transaction holding the migrations could not begin or commit.
    #[error("cannot apply the migrations")]
    Transaction(#[source] postgres::Error),
    /// Recording the current checksum of a superseded migration failed.
    #[error("cannot update the migration history")]
    AdoptSuperseded(#[source] postgres::Error),
    #[error("database set-up task failed")]
    Task(#[source] tokio::task::JoinError),
}

impl SetupError {
    /// True when retrying later may succeed (the server is down or starting).
    pub fn is_transient(&self) -> bool {
        match self {
            SetupError::Connect(err) => is_unavailable(err),
            // OBJECT_IN_USE: another CREATE DATABASE was copying template1 at that
            // moment (two services starting together); trying again works.
            SetupError::CreateDatabase { source: err, .. } => {
                is_unavailable(err) || err.code() == Some(&SqlState::OBJECT_IN_USE)
            }
            SetupError::AdoptSuperseded(err) | SetupError::Transaction(err) => is_unavailable(err),
            SetupError::Migrate(_)
            | SetupError::Takeover { .. }
            | SetupError::Dsn(_)
            | SetupError::ParseDsn(_)
            | SetupError::Task(_)
            | SetupError::TlsSettings(_)
            | SetupError::TlsRefused { .. } => false,
        }
    }
}

/// A database call of a running service that failed, classified once (by
/// `From<postgres::Error>`): no connection from the pool in time, an outage
/// ([`is_unavailable`]), data the database refused, or another failed statement.
/// [`DbError::is_transient`] says whether retrying later may work,
/// [`DbError::is_rejected`] whether the data itself is at fault. The driver's error is
/// the [`source`](std::error::Error::source), not written into the message: a log line
/// shows it with `lifecycle::ErrorChain`.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// No connection from the pool in time; retrying later may work.
    #[error("no database connection")]
    NoConnection(#[from] r2d2::Error),
    /// A statement failed because the database cannot be reached right now
    /// (connection refused or lost, server shutting down); retrying later may work.
    #[error("database unavailable")]
    Unavailable(#[source] postgres::Error),
    /// The database refused the data itself (SQLSTATE class 22, data exception, or 23,
    /// integrity constraint violation): retrying the same data cannot help.
    #[error("database refused the data")]
    Rejected(#[source] postgres::Error),
    /// A statement failed otherwise.
    #[error("database query failed")]
    Query(#[source] postgres::Error),
}

impl DbError {
    /// True when the database cannot be reached right now (no connection in time, or
    /// an outage): retrying later may work.
    pub fn is_transient(&self) -> bool {
        matches!(self, DbError::NoConnection(_) | DbError::Unavailable(_))
    }

    /// True when the database refused the data itself: retrying it cannot help.
    pub fn is_rejected(&self) -> bool {
        matches!(self, DbError::Rejected(_))
    }
}

impl From<postgres::Error> for DbError {
    fn from(err: postgres::Error) -> Self {
        if is_unavailable(&err) {
            return DbError::Unavailable(err);
        }
        match err.code().and_then(|code| code.code().get(..2)) {
            // 22: data exception, 23: integrity constraint violation.
            Some("22" | "23") => DbError::Rejected(err),
            _ => DbError::Query(err),
        }
    }
}

/// Pool tuning.
#[derive(Debug, Clone, Copy)]
pub struct PoolOptions {
    pub max_size: u32,
    /// How long a caller waits for a connection before giving up (-> UNAVAILABLE).
    pub connect_timeout: Duration,
}

/// Creates the database named in `dsn` if needed, applies `schema` (a [`Schema`], or
/// one refinery runner), and returns a pool.
pub fn prepare(
    dsn: &str,
    schema: impl Into<Schema>,
    options: PoolOptions,
) -> Result<Pool, SetupError> {
    let (mut config, tls) = parse_dsn(dsn)?;
    config.connect_timeout(options.connect_timeout);
    // Notice a silently dead server (no RST, e.g. a partition) instead of blocking a
    // query, and so shutdown, until the kernel gives up after many minutes.
    config.keepalives(true);
    config.keepalives_idle(Duration::from_secs(10));
    config.keepalives_interval(Duration::from_secs(5));
    config.keepalives_retries(3);
    config.tcp_user_timeout(Duration::from_secs(30));
    let database = config
        .get_dbname()
        .ok_or_else(|| SetupError::Dsn("no database name (e.g. postgres://host/orders_db)".into()))?
        .to_owned();
    ensure_database(&config, &tls, &database)?;
    migrate(&config, &tls, schema.into())?;
    Ok(pool(config, tls, options))
}

/// Splits `dsn` into the settings tokio-postgres understands and the TLS connector
/// its `sslmode` / `sslrootcert` ask for (the CA file is read here).
pub fn parse_dsn(dsn: &str) -> Result<(Config, PgTls), SetupError> {
    let (rest, settings) = tls::split_dsn(dsn).map_err(SetupError::TlsSettings)?;
    let mut config = Config::from_str(&rest).map_err(SetupError::ParseDsn)?;
    config.ssl_mode(settings.mode.negotiation());
    let tls = PgTls::new(&settings).map_err(SetupError::TlsSettings)?;
    Ok((config, tls))
}

/// One connection to `dsn` with its TLS settings (e.g. for `LISTEN`).
pub fn connect(dsn: &str) -> Result<Client, SetupError> {
    let (config, tls) = parse_dsn(dsn)?;
    connect_with(&config, &tls)
}

/// One connection with `config` over `tls`; a refused certificate or failed TLS
/// handshake is [`SetupError::TlsRefused`], naming the reason.
pub fn connect_with(config: &Config, tls: &PgTls) -> Result<Client, SetupError> {
    config
        .connect(tls.clone())
        .map_err(|err| classify_connect_error(err, tls.mode()))
}

fn classify_connect_error(err: postgres::Error, mode: SslMode) -> SetupError {
    // The driver says "error performing TLS handshake"; why is in its source.
    let refused = tls::tls_failure(&err).is_some()
        || ErrorChain(&err)
            .to_string()
            .contains("server does not support TLS");
    if refused {
        SetupError::TlsRefused { mode, source: err }
    } else {
        SetupError::Connect(err)
    }
}

/// [`prepare`] from async code, retried with the platform's backoff
/// ([`RetryPolicy::DEFAULT`]) while PostgreSQL is unreachable, so a service may start
/// before its database. `None` when `shutdown` came first.
pub async fn prepare_until_ready<S: Into<Schema> + 'static>(
    dsn: &str,
    schema: impl Fn() -> S + Clone + Send + 'static,
    options: PoolOptions,
    shutdown: &tokio_util::sync::CancellationToken,
) -> Result<Option<Pool>, SetupError> {
    let mut backoff = RetryPolicy::DEFAULT.backoff();
    loop {
        let dsn_owned = dsn.to_owned();
        let schema = schema.clone();
        let attempt = tokio::task::spawn_blocking(move || prepare(&dsn_owned, schema(), options))
            .await
            .map_err(SetupError::Task)?;
        match attempt {
            Ok(pool) => return Ok(Some(pool)),
            Err(err) if err.is_transient() => {
                let delay = backoff.next_delay();
                tracing::warn!(error = %ErrorChain(&err), retry_in = ?delay, "PostgreSQL not reachable yet");
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(None),
                    _ = tokio::time::sleep(delay) => {}
                }
            }
            Err(err) => return Err(err),
        }
    }
}

/// A pool that opens connections on demand, so it can be built while the server is down.
pub fn pool(config: Config, tls: PgTls, options: PoolOptions) -> Pool {
    r2d2::Pool::builder()
        .max_size(options.max_size)
        // Open connections as load needs them (r2d2 otherwise keeps max_size idle),
        // so many services and instances fit in max_connections.
        .min_idle(Some(1))
        .connection_timeout(options.connect_timeout)
        // A broken connection is noticed by the failing query (and dropped by
        // r2d2's `has_broken`); pinging on every checkout would double the round trips.
        .test_on_check_out(false)
        .build_unchecked(ConnectionManager::new(config, tls))
}

fn ensure_database(config: &Config, tls: &PgTls, database: &str) -> Result<(), SetupError> {
    let mut maintenance = config.clone();
    maintenance.dbname("postgres");
    let mut client = connect_with(&maintenance, tls)?;
    let exists = client
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&database])
        .map_err(SetupError::Connect)?
        .is_some();
    if exists {
        return Ok(());
    }
    let quoted = format!("\"{}\"", database.replace('"', "\"\""));
    match client.batch_execute(&format!("CREATE DATABASE {quoted}")) {
        Ok(()) => {
            tracing::info!(database, "created database");
            Ok(())
        }
        // Another instance created it between our check and our CREATE.
        Err(err)
            if err.code() == Some(&SqlState::DUPLICATE_DATABASE)
                || err.code() == Some(&SqlState::UNIQUE_VIOLATION) =>
        {
            Ok(())
        }
        Err(source) => Err(SetupError::CreateDatabase {
            database: database.to_owned(),
            source,
        }),
    }
}

/// Applies `schema` in one transaction (and takes over a predecessor's database
/// first, see [`takeover`]), so a failure anywhere changes nothing.
fn migrate(config: &Config, tls: &PgTls, schema: Schema) -> Result<(), SetupError> {
    let mut client: Client = connect_with(config, tls)?;
    // Session-level lock: released when this connection closes, even on error.
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK_KEY])
        .map_err(SetupError::Connect)?;
    let mut transaction = client.transaction().map_err(SetupError::Transaction)?;
    let (sets, predecessor) = schema.into_parts();
    let our_history: Vec<&str> = sets.iter().map(MigrationSet::history_table_name).collect();
    let taking_over = match &predecessor {
        Some(predecessor) => match takeover::detect(&mut transaction, predecessor, &our_history)? {
            takeover::Found::Nothing => None,
            takeover::Found::Predecessor { goose_version } => {
                tracing::info!(
                    predecessor = predecessor.name,
                    goose_version,
                    tables = predecessor.tables.join(", "),
                    "found a database migrated by the predecessor's goose migrations: taking it over in one transaction"
                );
                takeover::set_aside(&mut transaction, predecessor)?;
                Some(predecessor)
            }
        },
        None => None,
    };
    for set in sets {
        for migration in set.apply(&mut transaction)? {
            tracing::info!(%migration, "applied migration");
        }
    }
    if let Some(predecessor) = taking_over {
        let moved = takeover::move_rows(&mut transaction, predecessor)?;
        tracing::info!(
            predecessor = predecessor.name,
            rows = moved.join(", "),
            "took over the predecessor's database: every row copied, its tables dropped"
        );
    }
    transaction.commit().map_err(SetupError::Transaction)
}

/// The server's own message for a database error (`postgres::Error` shows only
/// "db error" for those, the server's message being its source), with its SQLSTATE
/// and detail, on one line; the error with its causes otherwise. For the messages
/// that carry a database error as text (a take-over's reason), not as a source.
fn describe(err: &postgres::Error) -> String {
    match err.as_db_error() {
        Some(db) => {
            let mut text = format!("{}: {} ({})", db.severity(), db.message(), db.code().code());
            // The detail names the offending row ("Failing row contains ..."), the
            // part an operator needs when a take-over refuses data.
            if let Some(detail) = db.detail() {
                text.push_str(&format!("; {detail}"));
            }
            text
        }
        None => ErrorChain(err).to_string(),
    }
}

/// True when the error means the server cannot be reached or is going away, as
/// opposed to a query, constraint or data error.
pub fn is_unavailable(err: &postgres::Error) -> bool {
    if err.is_closed() {
        return true;
    }
    // A refused certificate arrives as an I/O error but will not go away by itself.
    if tls::tls_failure(err).is_some() {
        return false;
    }
    match err.code() {
        Some(code) => {
            let code = code.code();
            code.starts_with("08") // connection exception
                || code.starts_with("53") // insufficient resources (too many connections)
                || code.starts_with("57P") // admin shutdown, crash shutdown, cannot connect now
        }
        None => {
            let mut source = std::error::Error::source(err);
            while let Some(cause) = source {
                if cause.is::<std::io::Error>() {
                    return true;
                }
                source = cause.source();
            }
            false
        }
    }
}
