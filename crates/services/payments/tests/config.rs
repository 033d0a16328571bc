//! An invalid setting stops the real binary with a non-zero exit and a message that
//! names the variable.
#![allow(clippy::unwrap_used)]

use testkit::ServiceBinary;

/// The real payments binary and the variables it reads.
const PAYMENTS: ServiceBinary = testkit::service_binary!(payments);

#[test]
fn invalid_outbox_and_retention_settings_stop_the_binary_naming_the_variable() {
    PAYMENTS.assert_settings_refused(&[
        ("OUTBOX_RETENTION", "a week", "Go duration"),
        ("OUTBOX_LEASE", "0", "must not be 0"),
        ("OUTBOX_BATCH_SIZE", "0", "at least 1"),
        ("KAFKA_SENDER_PERIOD", "soon", "Go duration"),
        ("KAFKA_SENDER_PERIOD", "-1s", "negative"),
        ("PAYMENTS_PG_MAX_CONNS", "1", "at least 2"),
        ("PROCESSED_EVENTS_RETENTION", "-1h", "negative"),
        ("PROCESSED_EVENTS_RETENTION", "10m", "at least 1h"),
        ("DEAD_LETTERS_RETENTION", "30d", "unknown unit"),
        ("RETENTION_INTERVAL", "0", "must not be 0"),
        ("RETENTION_INTERVAL", "often", "Go duration"),
        ("RETENTION_BATCH", "0", "from 1 to 100000"),
        ("RETENTION_BATCH", "1000000", "from 1 to 100000"),
        ("RETENTION_BATCH", "many", ""),
    ]);
}

#[test]
fn kafka_tls_or_sasl_without_rdkafka_or_a_password_stops_the_binary() {
    PAYMENTS.assert_kafka_security_refused();
}
