//! The payments worker's settings: defaults < TOML file named by `PAYMENTS_CONFIG` <
//! environment.

use inbox::InboxSettings;
use outbox::OutboxSettings;
use serde::{Deserialize, Serialize};
use settings::{ConfigError, GoDuration, ListenAddr};

pub use settings::PartitionList;

/// Every environment variable the worker reads but the Kafka connection's
/// ([`settings::KafkaConnection::ENV_VARS`], loaded beside these).
pub const ENV_VARS: &[&str] = &[
    "PAYMENTS_PG_DSN",
    "PAYMENTS_HEALTH_ADDR",
    "PAYMENTS_DB_POOL_SIZE",
    "PAYMENTS_DB_TIMEOUT",
    "KAFKA_TOPIC_ORDER",
    "KAFKA_TOPIC_STATUS",
    "KAFKA_CONSUMER_GROUP",
    "KAFKA_PARTITIONS",
    "KAFKA_PERIOD",
    "OUTBOX_BATCH_SIZE",
    "OUTBOX_LEASE",
    "OUTBOX_RETENTION",
    "PROCESSED_EVENTS_RETENTION",
    "DEAD_LETTERS_RETENTION",
    "RETENTION_INTERVAL",
    "RETENTION_BATCH",
];

/// The variable naming an optional TOML file with the same keys in lowercase.
pub const CONFIG_FILE_VAR: &str = "PAYMENTS_CONFIG";

pub use inbox::MIN_PROCESSED_EVENTS_RETENTION;

#[derive(Debug, Clone, Serialize, Deserialize)]
// No `deny_unknown_fields`: the Kafka section's keys are in the same file; the
// loader refuses a key that names none of `ENV_VARS`.
#[serde(default)]
pub struct Config {
    /// PostgreSQL URL; the database is created at start-up if missing.
    pub payments_pg_dsn: String,
    /// `/healthz`, `/readyz`, `/metrics` listen address.
    pub payments_health_addr: ListenAddr,
    /// Most PostgreSQL connections held at once (consumer, relay, readiness).
    pub payments_db_pool_size: u32,
    /// How long a caller waits for a database connection before giving up (and
    /// the message is retried).
    pub payments_db_timeout: GoDuration,
    /// Brokers, client library and TLS/SASL (`KAFKA_BROKERS`, `KAFKA_CLIENT`,
    /// `KAFKA_SECURITY_PROTOCOL`, `KAFKA_SSL_*`, `KAFKA_SASL_*`), loaded beside the
    /// rest by [`settings::load_with_kafka`].
    #[serde(skip)]
    pub kafka: settings::KafkaConnection,
    /// Topic carrying `OrderCreated`.
    pub kafka_topic_order: String,
    /// Topic the relay publishes `PaymentStatus` to.
    pub kafka_topic_status: String,
    /// Group the consumed offsets are committed under.
    pub kafka_consumer_group: String,
    /// Partitions of the order topic this instance reads (`0,1`); empty = all.
    pub kafka_partitions: PartitionList,
    /// Relay poll interval when no NOTIFY arrives.
    pub kafka_period: GoDuration,
    /// Most outbox rows the relay claims and publishes at once.
    pub outbox_batch_size: u32,
    /// How long a claim lasts before another relay may take the rows over.
    pub outbox_lease: GoDuration,
    /// Sent outbox rows older than this are deleted; 0 keeps them.
    pub outbox_retention: GoDuration,
    /// `processed_events` rows (the deduplication record) older than this are
    /// deleted; 0 keeps them. Must stay far longer than any redelivery.
    pub processed_events_retention: GoDuration,
    /// `dead_letters` rows older than this are deleted; 0 keeps them.
    pub dead_letters_retention: GoDuration,
    /// Time between retention runs.
    pub retention_interval: GoDuration,
    /// Most rows one retention batch (one transaction) deletes.
    pub retention_batch: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            payments_pg_dsn: "postgres://postgres:postgres@127.0.0.1:5432/payments_db".to_owned(),
            payments_health_addr: ListenAddr::all_interfaces(8082),
            payments_db_pool_size: 8,
            payments_db_timeout: GoDuration::from_secs(2),
            kafka: settings::KafkaConnection::default(),
            kafka_topic_order: "order-topic".to_owned(),
            kafka_topic_status: "status-topic".to_owned(),
            kafka_consumer_group: "payments".to_owned(),
            kafka_partitions: PartitionList::default(),
            kafka_period: GoDuration(OutboxSettings::DEFAULT.poll_interval),
            outbox_batch_size: OutboxSettings::DEFAULT.batch_size,
            outbox_lease: GoDuration(OutboxSettings::DEFAULT.lease),
            outbox_retention: GoDuration(OutboxSettings::DEFAULT.retention),
            processed_events_retention: GoDuration(
                InboxSettings::DEFAULT.processed_events_retention,
            ),
            dead_letters_retention: GoDuration(InboxSettings::DEFAULT.dead_letters_retention),
            retention_interval: GoDuration(retention::DEFAULT_INTERVAL),
            retention_batch: retention::DEFAULT_BATCH_SIZE,
        }
    }
}

impl Config {
    /// The outbox's settings (`OUTBOX_*`, `KAFKA_PERIOD`).
    pub fn outbox(&self) -> OutboxSettings {
        OutboxSettings {
            batch_size: self.outbox_batch_size,
            lease: self.outbox_lease.get(),
            retention: self.outbox_retention.get(),
            poll_interval: self.kafka_period.get(),
        }
    }

    /// The inbox's settings (`PROCESSED_EVENTS_RETENTION`, `DEAD_LETTERS_RETENTION`).
    pub fn inbox(&self) -> InboxSettings {
        InboxSettings {
            processed_events_retention: self.processed_events_retention.get(),
            dead_letters_retention: self.dead_letters_retention.get(),
        }
    }

    /// Reads the process environment (and the TOML file it may name).
    pub fn from_env() -> Result<Self, ConfigError> {
        let (config, kafka): (Config, _) = settings::load_with_kafka(CONFIG_FILE_VAR, ENV_VARS)?;
        Config { kafka, ..config }.check()
    }

    /// Refuses values that would only fail later.
    pub fn check(mut self) -> Result<Self, ConfigError> {
        self.kafka.check_with_partitions(&self.kafka_partitions)?;
        // Consumer, relay (pool side) and readiness each hold one at times.
        if self.payments_db_pool_size < 2 {
            return Err(ConfigError::Other(
                "PAYMENTS_DB_POOL_SIZE must be at least 2".into(),
            ));
        }
        self.outbox()
            .check("KAFKA_PERIOD")
            .map_err(ConfigError::Other)?;
        retention::check_schedule(self.retention_interval.get(), self.retention_batch)
            .map_err(ConfigError::Other)?;
        // A redelivery from beyond the deduplication window still finds its order
        // paid (one payment per order), but is handled as a new event.
        self.inbox().check().map_err(ConfigError::Other)?;
        for (var, value) in [
            ("KAFKA_TOPIC_ORDER", &self.kafka_topic_order),
            ("KAFKA_TOPIC_STATUS", &self.kafka_topic_status),
            ("KAFKA_CONSUMER_GROUP", &self.kafka_consumer_group),
        ] {
            if value.trim().is_empty() {
                return Err(ConfigError::Other(format!("{var} must not be empty")));
            }
        }
        if self.kafka_topic_order == self.kafka_topic_status {
            return Err(ConfigError::Other(format!(
                "KAFKA_TOPIC_ORDER and KAFKA_TOPIC_STATUS are both {:?}: payments would consume its own events",
                self.kafka_topic_order
            )));
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_go_worker() {
        let config = Config::default().check().unwrap();
        assert_eq!(config.kafka_topic_order, "order-topic");
        assert_eq!(config.kafka_topic_status, "status-topic");
        assert_eq!(config.kafka_consumer_group, "payments");
        assert_eq!(
            config.payments_health_addr,
            ListenAddr::all_interfaces(8082)
        );
        assert_eq!(config.kafka_partitions.selected(), None);
    }

    #[test]
    fn bad_values_are_refused() {
        // Each case spoils one setting of the defaults; the error names its variable.
        type Spoil = fn(&mut Config);
        let cases: [(&str, Spoil); 3] = [
            ("PAYMENTS_DB_POOL_SIZE", |c| c.payments_db_pool_size = 1),
            ("KAFKA_TOPIC_STATUS", |c| {
                c.kafka_topic_status = "order-topic".into()
            }),
            ("KAFKA_CONSUMER_GROUP", |c| {
                c.kafka_consumer_group = "".into()
            }),
        ];
        for (var, spoil) in cases {
            let mut config = Config::default();
            spoil(&mut config);
            let err = config.check().unwrap_err().to_string();
            assert!(err.contains(var), "{var}: {err}");
        }
    }

    #[test]
    fn kafka_sasl_settings_are_checked_once_and_the_password_never_shown() {
        let config = Config {
            kafka: settings::KafkaConnection {
                client: settings::KafkaClient::Rdkafka,
                security_protocol: "sasl_ssl".into(),
                sasl_mechanism: "SCRAM-SHA-256".into(),
                sasl_username: "payments".into(),
                sasl_password: settings::Secret::new("hunter2"),
                ..Default::default()
            },
            ..Config::default()
        }
        .check()
        .unwrap();
        assert_eq!(
            config.kafka.security.protocol,
            settings::SecurityProtocol::SaslSsl
        );
        let shown = format!("{config:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}
