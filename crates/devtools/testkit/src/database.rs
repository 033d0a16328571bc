//! One fresh database per test.

use postgres::{Client, NoTls};

/// `postgres://postgres:postgres@127.0.0.1:5432` unless `TEST_PG_URL` says otherwise (no
/// database name, no query string).
pub fn pg_base_url() -> String {
    std::env::var("TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres:postgres@127.0.0.1:5432".to_owned())
}

/// A database name reserved for one test. It is not created here (the service
/// under test creates it, as it does in production; call [`TestDatabase::client`]
/// after that) and it is dropped, with any open connections, on drop.
pub struct TestDatabase {
    pub name: String,
}

impl TestDatabase {
    pub fn new(service: &str) -> Self {
        Self {
            name: crate::unique_name(&format!("test_{service}")),
        }
    }

    /// The DSN a service under test is given.
    pub fn dsn(&self) -> String {
        format!("{}/{}", pg_base_url(), self.name)
    }

    /// The same database reached through another host:port (e.g. a [`crate::TcpProxy`]).
    pub fn dsn_via(&self, host_port: &str) -> String {
        let base = pg_base_url();
        let (scheme_user, _) = base
            .rsplit_once('@')
            .unwrap_or(("postgres://postgres:postgres", ""));
        format!("{scheme_user}@{host_port}/{}", self.name)
    }

    /// A direct connection, for assertions.
    pub fn client(&self) -> Client {
        Client::connect(&self.dsn(), NoTls)
            .unwrap_or_else(|err| panic!("cannot connect to {}: {err}", self.dsn()))
    }

    /// The one `bigint` a query such as `SELECT count(*) FROM payments` returns, on a
    /// fresh connection.
    pub fn count(&self, sql: &str) -> i64 {
        self.client()
            .query_one(sql, &[])
            .unwrap_or_else(|err| panic!("{sql}: {err}"))
            .get(0)
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let maintenance = format!("{}/postgres", pg_base_url());
        if let Ok(mut client) = Client::connect(&maintenance, NoTls) {
            let _ = client.batch_execute(&format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                self.name
            ));
        }
    }
}

/// Runs `f` with a fresh connection to `dsn` on a blocking thread (the blocking
/// `postgres` client refuses to run inside async code).
pub async fn with_db<T, F>(dsn: &str, f: F) -> T
where
    T: Send + 'static,
    F: FnOnce(&mut Client) -> T + Send + 'static,
{
    let dsn = dsn.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut client = Client::connect(&dsn, NoTls)
            .unwrap_or_else(|err| panic!("cannot connect to {dsn}: {err}"));
        f(&mut client)
    })
    .await
    .unwrap()
}

/// The number of rows in each of `tables`, in that order, read in one statement
/// (one snapshot) over a fresh connection to `dsn`.
pub async fn row_counts<const N: usize>(dsn: &str, tables: [&str; N]) -> [i64; N] {
    let columns: Vec<String> = tables
        .iter()
        .map(|table| format!("(SELECT count(*) FROM {table})"))
        .collect();
    let sql = format!("SELECT {}", columns.join(", "));
    with_db(dsn, move |client| {
        let row = client.query_one(&sql, &[]).unwrap();
        std::array::from_fn(|index| row.get(index))
    })
    .await
}

/// A lock held in an open transaction on its own thread, e.g. `LOCK TABLE orders IN
/// SHARE MODE` (inserts wait, reads do not), until [`HeldLock::release`]: to make a
/// service's writes wait without stopping its database.
pub struct HeldLock {
    release: std::sync::mpsc::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl HeldLock {
    /// Runs `lock_sql` in a transaction on `dsn`; returns once the lock is held.
    pub fn take(dsn: &str, lock_sql: &str) -> Self {
        let (dsn, lock_sql) = (dsn.to_owned(), lock_sql.to_owned());
        let (locked_tx, locked_rx) = std::sync::mpsc::channel();
        let (release, release_rx) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let mut client = Client::connect(&dsn, NoTls).unwrap();
            let mut transaction = client.transaction().unwrap();
            transaction.batch_execute(&lock_sql).unwrap();
            locked_tx.send(()).unwrap();
            let _ = release_rx.recv();
            transaction.commit().unwrap();
        });
        locked_rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .unwrap();
        Self { release, thread }
    }

    /// Ends the transaction, so what waited on the lock goes on.
    pub fn release(self) {
        let _ = self.release.send(());
        self.thread.join().unwrap();
    }
}
