//! An invalid setting stops the real binary with a non-zero exit and a message that
//! names the variable.
#![allow(clippy::unwrap_used)]

use testkit::ServiceBinary;

/// The real notifications binary and the variables it reads.
const NOTIFICATIONS: ServiceBinary = testkit::service_binary!(notifications);

#[test]
fn kafka_tls_or_sasl_without_rdkafka_or_a_password_stops_the_binary() {
    NOTIFICATIONS.assert_kafka_security_refused();
}
