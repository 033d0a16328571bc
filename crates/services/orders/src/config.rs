//! The orders service's settings: defaults < TOML file named by `ORDERS_CONFIG` < environment.

use outbox::OutboxSettings;
use serde::{Deserialize, Serialize};
use settings::{BrokerList, ConfigError, GoDuration, ListenAddr};

/// Every environment variable the service reads.
pub const ENV_VARS: &[&str] = &[
    "ORDERS_PG_DSN",
    "ORDERS_GRPC_ADDR",
    "ORDERS_HEALTH_ADDR",
    "ORDERS_DB_POOL_SIZE",
    "ORDERS_DB_TIMEOUT",
    "ORDERS_MAX_IN_FLIGHT",
    "KAFKA_BROKERS",
    "KAFKA_TOPIC",
    "KAFKA_TOPIC_ORDER",
    "KAFKA_SENDER_PERIOD",
    "OUTBOX_BATCH_SIZE",
    "OUTBOX_LEASE",
    "OUTBOX_RETENTION",
    "RETENTION_INTERVAL",
    "RETENTION_BATCH",
];

/// Default of `ORDERS_MAX_IN_FLIGHT`: 16 calls per database connection of the default
/// pool (`ORDERS_DB_POOL_SIZE` 16). A call waits for a connection up to
/// `ORDERS_DB_TIMEOUT` (2 s); at 125 ms per order (a database 100 times slower than
/// usual) 256 calls still get one within it. Also well under tokio's 512 blocking
/// threads, which the store calls run on.
pub const DEFAULT_MAX_IN_FLIGHT: u32 = 256;

/// The topic published to when neither `KAFKA_TOPIC` nor `KAFKA_TOPIC_ORDER` is set.
pub const DEFAULT_TOPIC: &str = "order-topic";

/// The variable naming an optional TOML file with the same keys in lowercase.
pub const CONFIG_FILE_VAR: &str = "ORDERS_CONFIG";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// PostgreSQL URL; the database is created at start-up if missing.
    pub orders_pg_dsn: String,
    /// gRPC listen address (Go forms: `50051`, `:50051`, `host:port`).
    pub orders_grpc_addr: ListenAddr,
    /// `/healthz`, `/readyz`, `/metrics` listen address.
    pub orders_health_addr: ListenAddr,
    /// Most PostgreSQL connections held at once.
    pub orders_db_pool_size: u32,
    /// How long a request waits for a database connection before UNAVAILABLE.
    pub orders_db_timeout: GoDuration,
    /// Most `orders.v1.OrdersService` calls handled at once, over all connections;
    /// past it a call fails at once with UNAVAILABLE ("orders overloaded ...").
    /// Health and reflection calls are not counted.
    pub orders_max_in_flight: u32,
    /// Kafka bootstrap brokers for the outbox relay.
    pub kafka_brokers: BrokerList,
    /// Topic the relay publishes `OrderCreated` to (the Go service's name for it);
    /// see [`Config::topic`].
    pub kafka_topic: Option<String>,
    /// Alias of `KAFKA_TOPIC` (the name payments reads it under); `KAFKA_TOPIC` wins.
    pub kafka_topic_order: Option<String>,
    /// Relay poll interval when no NOTIFY arrives (Go: one event per tick).
    pub kafka_sender_period: GoDuration,
    /// Most outbox rows the relay claims and publishes at once.
    pub outbox_batch_size: u32,
    /// How long a claim lasts before another relay may take the rows over.
    pub outbox_lease: GoDuration,
    /// Sent outbox rows older than this are deleted; 0 keeps them.
    pub outbox_retention: GoDuration,
    /// Time between retention runs.
    pub retention_interval: GoDuration,
    /// Most rows one retention batch (one transaction) deletes.
    pub retention_batch: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            orders_pg_dsn: "postgres://postgres:postgres@127.0.0.1:5432/orders_db".to_owned(),
            orders_grpc_addr: ListenAddr::all_interfaces(50051),
            orders_health_addr: ListenAddr::all_interfaces(8081),
            orders_db_pool_size: 16,
            orders_db_timeout: GoDuration::from_secs(2),
            orders_max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            kafka_brokers: BrokerList::single("127.0.0.1", 9092),
            kafka_topic: None,
            kafka_topic_order: None,
            kafka_sender_period: GoDuration(OutboxSettings::DEFAULT.poll_interval),
            outbox_batch_size: OutboxSettings::DEFAULT.batch_size,
            outbox_lease: GoDuration(OutboxSettings::DEFAULT.lease),
            outbox_retention: GoDuration(OutboxSettings::DEFAULT.retention),
            retention_interval: GoDuration(retention::DEFAULT_INTERVAL),
            retention_batch: retention::DEFAULT_BATCH_SIZE,
        }
    }
}

impl Config {
    /// Reads the process environment (and the TOML file it may name).
    pub fn from_env() -> Result<Self, ConfigError> {
        let config: Config = settings::load(CONFIG_FILE_VAR, ENV_VARS)?;
        config.check()
    }

    fn check(self) -> Result<Self, ConfigError> {
        if self.orders_db_pool_size == 0 {
            return Err(ConfigError::Other(
                "ORDERS_DB_POOL_SIZE must be at least 1".into(),
            ));
        }
        if self.orders_max_in_flight == 0 {
            return Err(ConfigError::Other(
                "ORDERS_MAX_IN_FLIGHT must be at least 1 (e.g. 256)".into(),
            ));
        }
        if self.topic().trim().is_empty() {
            return Err(ConfigError::Other("KAFKA_TOPIC must not be empty".into()));
        }
        self.outbox()
            .check("KAFKA_SENDER_PERIOD")
            .map_err(ConfigError::Other)?;
        retention::check_schedule(self.retention_interval.get(), self.retention_batch)
            .map_err(ConfigError::Other)?;
        Ok(self)
    }

    /// The outbox's settings (`OUTBOX_*`, `KAFKA_SENDER_PERIOD`).
    pub fn outbox(&self) -> OutboxSettings {
        OutboxSettings {
            batch_size: self.outbox_batch_size,
            lease: self.outbox_lease.get(),
            retention: self.outbox_retention.get(),
            poll_interval: self.kafka_sender_period.get(),
        }
    }

    /// The order topic: `KAFKA_TOPIC`, else `KAFKA_TOPIC_ORDER`, else [`DEFAULT_TOPIC`].
    pub fn topic(&self) -> &str {
        self.kafka_topic
            .as_deref()
            .or(self.kafka_topic_order.as_deref())
            .unwrap_or(DEFAULT_TOPIC)
    }
}
