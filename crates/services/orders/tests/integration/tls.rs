//! The real `orders` binary against a PostgreSQL that accepts TLS only: with
//! `sslmode=verify-full` it starts and is ready; with a host name its certificate
//! does not carry, it stops at start-up naming ORDERS_PG_DSN and the reason.

use std::{path::Path, time::Duration};

use testkit::{ServiceProcess, TestCerts, TlsPostgres, free_port, unique_name};

#[test]
fn orders_starts_over_verified_tls_and_refuses_a_wrong_host_name() {
    let certs = TestCerts::for_names(&["localhost"]);
    let server = TlsPostgres::start(&certs);
    let query = format!("?sslmode=verify-full&sslrootcert={}", certs.ca().display());

    let health = free_port();
    let mut orders = ServiceProcess::spawn(
        "orders",
        &[],
        &[
            (
                "ORDERS_PG_DSN",
                server.dsn("localhost", &unique_name("orders_tls"), &query),
            ),
            ("ORDERS_GRPC_ADDR", format!("127.0.0.1:{}", free_port())),
            ("ORDERS_HEALTH_ADDR", format!("127.0.0.1:{health}")),
            // Nothing listens there: the relay waits, readiness is the database's.
            ("KAFKA_BROKERS", format!("127.0.0.1:{}", free_port())),
        ],
    );
    testkit::wait_http_ok(
        &format!("http://127.0.0.1:{health}/readyz"),
        Duration::from_secs(60),
    );
    orders.assert_running();
    orders.terminate(Duration::from_secs(20));

    let clear = testkit::service_vars(orders::config::ENV_VARS, orders::config::CONFIG_FILE_VAR);
    let wrong_host = server.dsn("127.0.0.1", "orders_tls_refused", &query);
    let (code, stderr) = testkit::run_to_exit(
        Path::new(env!("CARGO_BIN_EXE_orders")),
        &clear,
        &[
            ("ORDERS_PG_DSN", &wrong_host),
            ("ORDERS_GRPC_ADDR", &format!("127.0.0.1:{}", free_port())),
            ("ORDERS_HEALTH_ADDR", &format!("127.0.0.1:{}", free_port())),
            ("KAFKA_BROKERS", &format!("127.0.0.1:{}", free_port())),
        ],
        Duration::from_secs(30),
    );
    assert_ne!(code, Some(0), "{stderr}");
    let named = ["ORDERS_PG_DSN", "sslmode=verify-full", "not valid for name"];
    testkit::assert_mentions(&stderr, &named);
    testkit::assert_hides(&stderr, "postgres:postgres@");
    println!("refused as expected:\n{stderr}");
}
