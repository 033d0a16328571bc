//! What the services' configuration tests share: the tests every Kafka-using
//! service's binary must pass on bad settings, the bad values of the settings more
//! than one service reads, Go's env files as the variables they set, and the message
//! a service's settings refuse variables with.

use std::{collections::BTreeMap, fmt, path::Path};

/// Writes a Kafka-using service crate's "a bad setting stops the binary" tests, on
/// its [`service_binary!`](crate::service_binary): each `(variable, value, message
/// part)` of each of the lists `$cases` stops it naming the variable
/// ([`ServiceBinary::assert_settings_refused`](crate::ServiceBinary::assert_settings_refused)),
/// and so do the Kafka TLS/SASL settings it cannot use
/// ([`assert_kafka_security_refused`](crate::assert_kafka_security_refused)).
///
/// ```text
/// const BAD_SETTINGS: &[(&str, &str, &str)] = &[("ORDERS_DB_TIMEOUT", "soon", "Go duration")];
/// testkit::service_config_tests!(orders, testkit::OUTBOX_AND_INBOX_BAD_SETTINGS, BAD_SETTINGS);
/// ```
#[macro_export]
macro_rules! service_config_tests {
    ($service:ident, $($cases:expr),+ $(,)?) => {
        #[test]
        fn invalid_values_stop_the_binary_naming_the_variable() {
            let binary = $crate::service_binary!($service);
            $(binary.assert_settings_refused($cases);)+
        }

        #[test]
        fn kafka_tls_or_sasl_without_rdkafka_or_a_password_stops_the_binary() {
            $crate::service_binary!($service).assert_kafka_security_refused();
        }
    };
}

/// Bad values of the outbox's (`OUTBOX_*`), the inbox's (`PROCESSED_EVENTS_RETENTION`,
/// `DEAD_LETTERS_RETENTION`) and retention's (`RETENTION_*`) variables, which every
/// service with an outbox and an inbox (orders, payments) reads and checks alike:
/// for [`service_config_tests!`], beside the service's own.
pub const OUTBOX_AND_INBOX_BAD_SETTINGS: &[(&str, &str, &str)] = &[
    ("OUTBOX_BATCH_SIZE", "0", "at least 1"),
    ("OUTBOX_LEASE", "0", "must not be 0"),
    ("OUTBOX_RETENTION", "a week", "Go duration"),
    ("OUTBOX_RETENTION", "7d", "unknown unit"),
    ("PROCESSED_EVENTS_RETENTION", "-1h", "negative"),
    ("PROCESSED_EVENTS_RETENTION", "10m", "at least 1h"),
    ("DEAD_LETTERS_RETENTION", "30d", "unknown unit"),
    ("RETENTION_INTERVAL", "0", "must not be 0"),
    ("RETENTION_INTERVAL", "often", "Go duration"),
    ("RETENTION_BATCH", "0", "from 1 to 100000"),
    ("RETENTION_BATCH", "1000000", "from 1 to 100000"),
    ("RETENTION_BATCH", "lots", ""),
];

/// The variables Go's env file for `service` sets (`orders`, `payments`,
/// `notifications` or `gateway`: the Go repository's files, kept in
/// `crates/devtools/stack/tests/fixtures/go-env/`).
pub fn go_env(service: &str) -> BTreeMap<String, String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../stack/tests/fixtures/go-env")
        .join(format!("{service}.env"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display()));
    settings::parse_env_file(&text).unwrap()
}

/// The message `load` (a service's `Config::from_vars`) refuses the variables `vars`
/// with; panics if it accepts them.
#[track_caller]
pub fn config_refusal<T: fmt::Debug, E: fmt::Display>(
    load: impl FnOnce(&BTreeMap<String, String>) -> Result<T, E>,
    vars: &[(&str, &str)],
) -> String {
    match load(&settings::env_from_pairs(vars)) {
        Ok(loaded) => panic!("{vars:?} accepted: {loaded:?}"),
        Err(err) => err.to_string(),
    }
}
