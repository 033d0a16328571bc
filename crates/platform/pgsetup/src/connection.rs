//! A pooled connection that remembers its prepared statements.

use std::{
    collections::HashMap,
    ops::{Deref, DerefMut},
};

use postgres::{Client, Config, Statement};

use crate::tls::PgTls;

/// A PostgreSQL client plus the statements prepared on it. Derefs to [`Client`].
pub struct Connection {
    /// Always `Some` until drop (see [`Drop`] below).
    client: Option<Client>,
    statements: HashMap<&'static str, Statement>,
}

impl Connection {
    fn client(&self) -> &Client {
        self.client
            .as_ref()
            .expect("a connection holds its client until dropped")
    }

    fn client_mut(&mut self) -> &mut Client {
        self.client
            .as_mut()
            .expect("a connection holds its client until dropped")
    }
}

/// `postgres::Client` says goodbye to the server by blocking on its own runtime
/// when dropped, which panics on a tokio worker thread. A pool can be dropped
/// anywhere (the last clone of a store going away with an async task), so a
/// connection dropped on a runtime thread is closed on a short-lived thread instead.
impl Drop for Connection {
    fn drop(&mut self) {
        if let Some(client) = self.client.take()
            && tokio::runtime::Handle::try_current().is_ok()
        {
            let _ = std::thread::Builder::new()
                .name("pg-close".to_owned())
                .spawn(move || drop(client));
        }
    }
}

impl Connection {
    /// Forgets every statement prepared on this connection if `err` says one went
    /// stale, so the next [`Connection::prepare_cached`] prepares it again: its result
    /// type changed under it (SQLSTATE 0A000, "cached plan must not change result
    /// type", after a migration altered a column it returns), or the server no longer
    /// has it (26000, e.g. after `DISCARD ALL`). Without this, every later call on the
    /// connection would fail the same way. Gives `err` back, for `map_err`.
    pub fn forget_stale_statements(&mut self, err: postgres::Error) -> postgres::Error {
        use postgres::error::SqlState;
        if matches!(
            err.code(),
            Some(code) if *code == SqlState::FEATURE_NOT_SUPPORTED
                || *code == SqlState::INVALID_SQL_STATEMENT_NAME
        ) {
            self.statements.clear();
        }
        err
    }

    /// The statement for `sql`, prepared on first use on this connection.
    pub fn prepare_cached(&mut self, sql: &'static str) -> Result<Statement, postgres::Error> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client_mut().prepare(sql)?;
        self.statements.insert(sql, statement.clone());
        Ok(statement)
    }
}

impl Deref for Connection {
    type Target = Client;

    fn deref(&self) -> &Client {
        self.client()
    }
}

impl DerefMut for Connection {
    fn deref_mut(&mut self) -> &mut Client {
        self.client_mut()
    }
}

/// r2d2's manager for [`Connection`]s, over TLS as the DSN's `sslmode` says.
#[derive(Debug)]
pub struct ConnectionManager {
    config: Config,
    tls: PgTls,
}

impl ConnectionManager {
    pub fn new(config: Config, tls: PgTls) -> Self {
        Self { config, tls }
    }
}

impl r2d2::ManageConnection for ConnectionManager {
    type Connection = Connection;
    type Error = postgres::Error;

    fn connect(&self) -> Result<Connection, postgres::Error> {
        Ok(Connection {
            client: Some(self.config.connect(self.tls.clone())?),
            statements: HashMap::new(),
        })
    }

    fn is_valid(&self, connection: &mut Connection) -> Result<(), postgres::Error> {
        connection.client_mut().simple_query("").map(|_| ())
    }

    fn has_broken(&self, connection: &mut Connection) -> bool {
        connection.client().is_closed()
    }
}
