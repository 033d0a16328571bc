//! An invalid setting stops the real binary with a non-zero exit and a message that
//! names the variable.
#![allow(clippy::unwrap_used)]

use testkit::ServiceBinary;

/// The real orders binary and the variables it reads.
const ORDERS: ServiceBinary = testkit::service_binary!(orders);

#[test]
fn invalid_values_stop_the_binary_naming_the_variable() {
    ORDERS.assert_settings_refused(&[
        ("ORDERS_GRPC_ADDR", "nonsense", "is not a number"),
        (
            "ORDERS_HEALTH_ADDR",
            ":99999",
            "not a number from 0 to 65535",
        ),
        ("ORDERS_DB_TIMEOUT", "soon", "Go duration"),
        ("ORDERS_DB_POOL_SIZE", "lots", ""),
        ("ORDERS_DB_POOL_SIZE", "0", "at least 1"),
        ("ORDERS_PG_MAX_CONNS", "0", "at least 1"),
        ("ORDERS_PG_MAX_CONNS", "ten", ""),
        ("KAFKA_BROKERS", "", ""),
        ("OUTBOX_RETENTION", "a week", "Go duration"),
        ("OUTBOX_LEASE", "0", "must not be 0"),
        ("KAFKA_PERIOD", "soon", "Go duration"),
        ("KAFKA_PERIOD", "-1s", "negative"),
        ("OUTBOX_RETENTION", "7d", "unknown unit"),
        ("RETENTION_INTERVAL", "0", "must not be 0"),
        ("RETENTION_BATCH", "0", "from 1 to 100000"),
        ("RETENTION_BATCH", "lots", ""),
        ("ORDERS_BATCH_MAX", "0", "from 1 to 1000"),
        ("ORDERS_BATCH_MAX", "1001", "from 1 to 1000"),
        ("ORDERS_IDEMPOTENCY_TTL", "0", "must not be 0"),
        ("ORDERS_IDEMPOTENCY_TTL", "1d", "unknown unit"),
        ("ORDERS_MAX_IN_FLIGHT", "0", "at least 1"),
        ("ORDERS_MAX_IN_FLIGHT", "lots", ""),
        ("ORDERS_MAX_IN_FLIGHT", "-3", ""),
    ]);
}

#[test]
fn kafka_tls_or_sasl_without_rdkafka_or_a_password_stops_the_binary() {
    ORDERS.assert_kafka_security_refused();
}
