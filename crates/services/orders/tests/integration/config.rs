//! An invalid setting stops the real binary with a non-zero exit and a message that
//! names the variable; so do Kafka TLS or SASL settings the binary cannot use.

/// Each `(variable, value, message part)` stops the binary, beside the outbox's and
/// the inbox's; one row a line.
#[rustfmt::skip]
const BAD_SETTINGS: &[(&str, &str, &str)] = &[
    ("ORDERS_GRPC_ADDR", "nonsense", "is not a number"),
    ("ORDERS_HEALTH_ADDR", ":99999", "not a number from 0 to 65535"),
    ("ORDERS_DB_TIMEOUT", "soon", "Go duration"),
    ("ORDERS_DB_POOL_SIZE", "lots", ""),
    ("ORDERS_DB_POOL_SIZE", "0", "at least 1"),
    ("ORDERS_PG_MAX_CONNS", "0", "at least 1"),
    ("ORDERS_PG_MAX_CONNS", "ten", ""),
    ("KAFKA_BROKERS", "", ""),
    ("KAFKA_PERIOD", "soon", "Go duration"),
    ("KAFKA_PERIOD", "-1s", "negative"),
    ("ORDERS_BATCH_MAX", "0", "from 1 to 1000"),
    ("ORDERS_BATCH_MAX", "1001", "from 1 to 1000"),
    ("ORDERS_IDEMPOTENCY_TTL", "0", "must not be 0"),
    ("ORDERS_IDEMPOTENCY_TTL", "1d", "unknown unit"),
    ("ORDERS_MAX_IN_FLIGHT", "0", "at least 1"),
    ("ORDERS_MAX_IN_FLIGHT", "lots", ""),
    ("ORDERS_MAX_IN_FLIGHT", "-3", ""),
];

testkit::service_config_tests!(orders, testkit::OUTBOX_AND_INBOX_BAD_SETTINGS, BAD_SETTINGS);
