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
