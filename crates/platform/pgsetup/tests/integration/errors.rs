//! PostgreSQL's own message stays visible: `postgres::Error` says only "db error" for
//! an error the server sent, the server's message being its source, so pgsetup's
//! errors keep the driver's error as their source and `ErrorChain` shows it.

use lifecycle::ErrorChain;
use pgsetup::{DbError, SetupError};
use testkit::{pg_base_url, unique_name};

#[test]
fn a_refused_connection_shows_the_servers_message() {
    let missing = unique_name("no_such_database");
    let Err(err) = pgsetup::connect(&format!("{}/{missing}", pg_base_url())) else {
        panic!("connected to a database that does not exist");
    };
    let chain = ErrorChain(&err).to_string();
    assert!(matches!(err, SetupError::Connect(_)), "{chain}");
    assert_eq!(err.to_string(), "cannot connect to PostgreSQL");
    assert!(
        chain.starts_with("cannot connect to PostgreSQL: db error: FATAL: "),
        "{chain}"
    );
    assert!(
        chain.contains(&format!("\"{missing}\" does not exist")),
        "{chain}"
    );
}

#[test]
fn a_failed_statement_shows_the_servers_message_once() {
    let mut client = pgsetup::connect(&format!("{}/postgres", pg_base_url())).unwrap();
    let err = DbError::from(
        client
            .batch_execute("SELECT * FROM no_such_table_here")
            .unwrap_err(),
    );
    assert_eq!(
        ErrorChain(&err).to_string(),
        "database query failed: db error: ERROR: relation \"no_such_table_here\" does not exist"
    );
}

/// `DbError::from` classifies a failed statement once: refused data, an outage, or
/// another failure.
#[test]
fn a_failed_statement_is_classified() {
    let mut client = pgsetup::connect(&format!("{}/postgres", pg_base_url())).unwrap();
    let mut fail = |sql: &str| DbError::from(client.batch_execute(sql).unwrap_err());

    let missing = fail("SELECT * FROM no_such_table_here");
    assert!(matches!(missing, DbError::Query(_)), "{missing:?}");
    assert!(!missing.is_transient() && !missing.is_rejected());

    // 22012, division by zero: a data exception.
    let refused = fail("SELECT 1 / 0");
    assert!(matches!(refused, DbError::Rejected(_)), "{refused:?}");
    assert!(refused.is_rejected() && !refused.is_transient());
    assert_eq!(refused.to_string(), "database refused the data");

    // The server ends this session (57P01, admin shutdown): an outage.
    let ended = fail("SELECT pg_terminate_backend(pg_backend_pid())");
    assert!(matches!(ended, DbError::Unavailable(_)), "{ended:?}");
    assert!(ended.is_transient() && !ended.is_rejected());
}
