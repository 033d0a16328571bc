//! What the outbox's tests share: a database with the outbox's own schema.

use std::time::Duration;

use testkit::TestDatabase;

/// A database migrated with the outbox's migrations only (no service's tables).
pub fn outbox_database(name: &str) -> (TestDatabase, pgsetup::Pool) {
    let db = TestDatabase::new(name);
    let options = pgsetup::PoolOptions {
        max_size: 4,
        connect_timeout: Duration::from_secs(5),
    };
    let pool = pgsetup::prepare(&db.dsn(), outbox::migrations(), options).unwrap();
    (db, pool)
}
