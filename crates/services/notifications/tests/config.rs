//! An invalid setting stops the real binary with a non-zero exit and a message that
//! names the variable.
#![allow(clippy::unwrap_used)]

use testkit::ServiceBinary;

/// The real notifications binary and the variables it reads.
const NOTIFICATIONS: ServiceBinary = testkit::service_binary!(notifications);

#[test]
fn invalid_values_stop_the_binary_naming_the_variable() {
    NOTIFICATIONS.assert_settings_refused(&[
        ("REDIS_DIAL_TIMEOUT", "soon", "Go duration"),
        ("REDIS_TIMEOUT", "-1s", "negative"),
        ("KAFKA_TOPIC_STATUS", " ", "must not be empty"),
        ("NOTIFICATIONS_KAFKA_PARTITIONS", "x", "partition"),
    ]);
}

#[test]
fn kafka_tls_or_sasl_without_rdkafka_or_a_password_stops_the_binary() {
    NOTIFICATIONS.assert_kafka_security_refused();
}
