//! An invalid setting stops the real binary with a non-zero exit and a message that
//! names the variable; so do Kafka TLS or SASL settings the binary cannot use.

/// Each `(variable, value, message part)` stops the binary, beside the outbox's and
/// the inbox's.
const BAD_SETTINGS: &[(&str, &str, &str)] = &[
    ("KAFKA_SENDER_PERIOD", "soon", "Go duration"),
    ("KAFKA_SENDER_PERIOD", "-1s", "negative"),
    ("PAYMENTS_PG_MAX_CONNS", "1", "at least 2"),
];

testkit::service_config_tests!(
    payments,
    testkit::OUTBOX_AND_INBOX_BAD_SETTINGS,
    BAD_SETTINGS
);
