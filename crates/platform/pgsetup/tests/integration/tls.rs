//! TLS to a real PostgreSQL (`ssl=on`, `hostssl`-only rules, a certificate for
//! `localhost` made in the test): every `sslmode` against it, through `prepare`
//! (database creation and migrations over TLS) and the pool.

use std::time::Duration;

use lifecycle::ErrorChain;
use pgsetup::{PoolOptions, SetupError};
use testkit::{TestCerts, TlsPostgres, unique_name};

fn options() -> PoolOptions {
    PoolOptions {
        max_size: 2,
        connect_timeout: Duration::from_secs(10),
    }
}

fn migrations() -> refinery::Runner {
    refinery::Runner::new(&[refinery::Migration::unapplied(
        "V1__tls_probe",
        "CREATE TABLE tls_probe (id BIGINT PRIMARY KEY)",
    )
    .unwrap()])
}

/// `prepare` on `dsn`, then whether the pooled session is encrypted.
fn prepare_and_check(dsn: &str) -> Result<bool, SetupError> {
    let pool = pgsetup::prepare(dsn, migrations(), options())?;
    let mut client = pool.get().unwrap();
    client
        .execute(
            "INSERT INTO tls_probe VALUES (1) ON CONFLICT DO NOTHING",
            &[],
        )
        .unwrap();
    let row = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .unwrap();
    Ok(row.get(0))
}

#[test]
fn every_sslmode_against_a_tls_only_server() {
    let certs = TestCerts::for_names(&["localhost"]);
    let server = TlsPostgres::start(&certs);
    let ca = certs.ca().display().to_string();
    let db = |host: &str, query: &str| server.dsn(host, &unique_name("tls"), query);

    // require: encrypted, nothing verified (the certificate does not name 127.0.0.1).
    assert!(prepare_and_check(&db("127.0.0.1", "?sslmode=require")).unwrap());
    // prefer (explicit and as the default): TLS when the server offers it.
    assert!(prepare_and_check(&db("127.0.0.1", "?sslmode=prefer")).unwrap());
    assert!(prepare_and_check(&db("127.0.0.1", "")).unwrap());
    // verify-full with the test CA and the name on the certificate.
    assert!(
        prepare_and_check(&db(
            "localhost",
            &format!("?sslmode=verify-full&sslrootcert={ca}")
        ))
        .unwrap()
    );
    // verify-ca checks the chain, not the name.
    assert!(
        prepare_and_check(&db(
            "127.0.0.1",
            &format!("?sslmode=verify-ca&sslrootcert={ca}")
        ))
        .unwrap()
    );
    // require with a root certificate verifies the chain (as libpq): still fine here.
    assert!(
        prepare_and_check(&db(
            "127.0.0.1",
            &format!("?sslmode=require&sslrootcert={ca}")
        ))
        .unwrap()
    );

    // verify-full with a host name the certificate does not carry.
    let err = prepare_and_check(&db(
        "127.0.0.1",
        &format!("?sslmode=verify-full&sslrootcert={ca}"),
    ))
    .unwrap_err();
    let message = ErrorChain(&err).to_string();
    assert!(matches!(err, SetupError::TlsRefused { .. }), "{message}");
    assert!(!err.is_transient(), "{message}");
    let named = [
        "sslmode=verify-full",
        "not valid for name",
        "127.0.0.1",
        "localhost",
    ];
    testkit::assert_mentions(&message, &named);
    testkit::assert_hides(&message, "postgres:postgres");

    // A CA that did not sign the server's certificate.
    let other = TestCerts::for_names(&["localhost"]);
    let err = prepare_and_check(&db(
        "localhost",
        &format!("?sslmode=verify-ca&sslrootcert={}", other.ca().display()),
    ))
    .unwrap_err();
    assert!(matches!(err, SetupError::TlsRefused { .. }), "{err}");
    let message = ErrorChain(&err).to_string();
    assert!(message.contains("UnknownIssuer"), "{message}");

    // disable against hostssl-only rules: the server refuses, and says why.
    let err = prepare_and_check(&db("127.0.0.1", "?sslmode=disable")).unwrap_err();
    let message = ErrorChain(&err).to_string();
    assert!(!err.is_transient(), "{message}");
    assert!(message.contains("no encryption"), "{message}");

    // The key=value form and pgsetup::connect (the relay's LISTEN connection).
    let mut client = pgsetup::connect(&format!(
        "host=localhost port={} user=postgres password=postgres dbname=postgres \
         sslmode=verify-full sslrootcert={ca}",
        server.port()
    ))
    .unwrap();
    let ssl: bool = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(ssl);
}

/// A refused certificate stops start-up at once instead of being retried as an outage.
#[test]
fn a_refused_certificate_is_not_retried() {
    let certs = TestCerts::for_names(&["localhost"]);
    let server = TlsPostgres::start(&certs);
    let dsn = server.dsn(
        "127.0.0.1",
        "postgres",
        &format!("?sslmode=verify-full&sslrootcert={}", certs.ca().display()),
    );
    let shutdown = tokio_util::sync::CancellationToken::new();
    let result = testkit::runtime().block_on(async {
        tokio::time::timeout(
            Duration::from_secs(20),
            pgsetup::prepare_until_ready(&dsn, migrations, options(), &shutdown),
        )
        .await
    });
    let err = result
        .expect("prepare_until_ready kept retrying a refused certificate")
        .unwrap_err();
    assert!(matches!(err, SetupError::TlsRefused { .. }), "{err}");
}

#[test]
fn bad_tls_settings_are_configuration_errors() {
    let refusal = |dsn: &str| {
        let err = pgsetup::prepare(dsn, migrations(), options()).unwrap_err();
        let message = ErrorChain(&err).to_string();
        (err, message)
    };
    let (err, message) = refusal(
        "postgres://u:secret@127.0.0.1:1/db?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem",
    );
    assert!(matches!(err, SetupError::TlsSettings(_)), "{message}");
    assert!(message.contains("/nonexistent/ca.pem"), "{message}");
    assert!(!message.contains("secret"), "{message}");
    let (_, message) = refusal("postgres://u:secret@127.0.0.1:1/db?sslmode=verify-full");
    assert!(message.contains("needs sslrootcert"), "{message}");
}
