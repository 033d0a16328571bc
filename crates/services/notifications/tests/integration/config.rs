//! An invalid setting stops the real binary with a non-zero exit and a message that
//! names the variable; so do Kafka TLS or SASL settings the binary cannot use.

/// Each `(variable, value, message part)` stops the binary.
const BAD_SETTINGS: &[(&str, &str, &str)] = &[
    ("REDIS_DIAL_TIMEOUT", "soon", "Go duration"),
    ("REDIS_TIMEOUT", "-1s", "negative"),
    ("KAFKA_TOPIC_STATUS", " ", "must not be empty"),
    ("NOTIFICATIONS_KAFKA_PARTITIONS", "x", "partition"),
];

testkit::service_config_tests!(notifications, BAD_SETTINGS);
