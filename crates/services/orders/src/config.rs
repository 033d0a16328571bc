//! The orders service's settings: defaults < TOML file named by `ORDERS_CONFIG` < environment.
//!
//! Go's orders reads `env`, `ORDERS_GRPC_ADDR`, `ORDERS_HEALTH_ADDR`, `ORDERS_PG_DSN`,
//! `ORDERS_PG_*` pool settings, `KAFKA_BROKERS`, `KAFKA_TOPIC` and `KAFKA_PERIOD`; each
//! is read here with its meaning ([`ENV_VARS`]) or accepted ([`GO_ONLY_VARS`]).
//! `docs/configuration.md` lists every variable of both platforms.

use std::path::PathBuf;

use grpc_tls::{PemFile, ServerTlsFiles};
use inbox::InboxSettings;
use outbox::OutboxSettings;
use serde::{Deserialize, Serialize};
use settings::{ConfigError, EnvSpec, GoDuration, ListenAddr, NotRead, PartitionList};

/// Every environment variable the service reads but the Kafka connection's
/// ([`settings::KafkaConnection::ENV_VARS`], loaded beside these).
pub const ENV_VARS: &[&str] = &[
    "ORDERS_PG_DSN",
    "ORDERS_GRPC_ADDR",
    "ORDERS_HEALTH_ADDR",
    "ORDERS_DB_POOL_SIZE",
    "ORDERS_PG_MAX_CONNS",
    "ORDERS_DB_TIMEOUT",
    "ORDERS_MAX_IN_FLIGHT",
    "ORDERS_IDEMPOTENCY_TTL",
    "ORDERS_BATCH_MAX",
    "ORDERS_GRPC_TLS_CERT",
    "ORDERS_GRPC_TLS_KEY",
    "ORDERS_GRPC_CLIENT_CA",
    "KAFKA_TOPIC",
    "KAFKA_TOPIC_ORDER",
    "KAFKA_PERIOD",
    "ORDERS_TRACK_PAYMENTS",
    "KAFKA_TOPIC_STATUS",
    "ORDERS_CONSUMER_GROUP",
    "ORDERS_KAFKA_PARTITIONS",
    "KAFKA_PARTITIONS",
    "PROCESSED_EVENTS_RETENTION",
    "DEAD_LETTERS_RETENTION",
    "OUTBOX_BATCH_SIZE",
    "OUTBOX_LEASE",
    "OUTBOX_RETENTION",
    "RETENTION_INTERVAL",
    "RETENTION_BATCH",
];

/// Go's orders reads these; this service has no use for them (logging is `RUST_LOG`
/// and `LOG_FORMAT`; the pool opens connections as load needs them and checks each
/// before use). Accepted, and named once at start-up.
pub const GO_ONLY_VARS: &[&str] = &[
    "env",
    "ENV",
    "ORDERS_PG_DSN_TEST",
    "ORDERS_PG_MIN_CONNS",
    "ORDERS_PG_MAX_CONN_IDLE_TIME",
    "ORDERS_PG_HEALTH_CHECK_PERIOD",
];

/// Other services' variables orders once read or might be thought to read: never
/// taken for orders' own, warned of when set without orders' variable.
pub const NOT_READ: &[NotRead] = &[
    NotRead {
        name: "KAFKA_SENDER_PERIOD",
        whose: "the payments service's relay tick",
        instead: "KAFKA_PERIOD",
    },
    NotRead {
        name: "KAFKA_CONSUMER_GROUP",
        whose: "the consumer group of payments and notifications",
        instead: "ORDERS_CONSUMER_GROUP",
    },
];

/// Every variable name orders knows, for [`settings::load_with_kafka`]. Go's
/// `ORDERS_PG_MAX_CONNS` is the pool size when `ORDERS_DB_POOL_SIZE` is not set.
pub const ENV_SPEC: EnvSpec<'static> = EnvSpec {
    service: "orders",
    config_file_var: CONFIG_FILE_VAR,
    read: ENV_VARS,
    aliases: &[
        ("ORDERS_PG_MAX_CONNS", "ORDERS_DB_POOL_SIZE"),
        ("KAFKA_PARTITIONS", "ORDERS_KAFKA_PARTITIONS"),
    ],
    go_only: GO_ONLY_VARS,
    not_read: NOT_READ,
};

/// Default of `ORDERS_MAX_IN_FLIGHT`: 16 calls per database connection of the default
/// pool (`ORDERS_DB_POOL_SIZE` 16). A call waits for a connection up to
/// `ORDERS_DB_TIMEOUT` (2 s); at 125 ms per order (a database 100 times slower than
/// usual) 256 calls still get one within it. Also well under tokio's 512 blocking
/// threads, which the store calls run on.
pub const DEFAULT_MAX_IN_FLIGHT: u32 = 256;

/// The topic published to when neither `KAFKA_TOPIC` nor `KAFKA_TOPIC_ORDER` is set.
pub const DEFAULT_TOPIC: &str = "order-topic";

/// The status topic read when `KAFKA_TOPIC_STATUS` is not set.
pub const DEFAULT_STATUS_TOPIC: &str = "status-topic";

/// The consumer group when `ORDERS_CONSUMER_GROUP` is not set.
pub const DEFAULT_CONSUMER_GROUP: &str = "orders";

/// The variable naming an optional TOML file with the same keys in lowercase.
pub const CONFIG_FILE_VAR: &str = "ORDERS_CONFIG";

#[derive(Debug, Clone, Serialize, Deserialize)]
// No `deny_unknown_fields`: the Kafka section's keys are in the same file; the
// loader refuses a key that names none of `ENV_VARS`.
#[serde(default)]
pub struct Config {
    /// PostgreSQL URL; the database is created at start-up if missing.
    pub orders_pg_dsn: String,
    /// gRPC listen address (Go forms: `50051`, `:50051`, `host:port`).
    pub orders_grpc_addr: ListenAddr,
    /// `/healthz`, `/readyz`, `/metrics` listen address.
    pub orders_health_addr: ListenAddr,
    /// Most PostgreSQL connections held at once (Go's name: `ORDERS_PG_MAX_CONNS`).
    pub orders_db_pool_size: u32,
    /// How long a request waits for a database connection before UNAVAILABLE.
    pub orders_db_timeout: GoDuration,
    /// Most `orders.v1.OrdersService` calls handled at once, over all connections;
    /// past it a call fails at once with UNAVAILABLE ("orders overloaded ...").
    /// Health and reflection calls are not counted.
    pub orders_max_in_flight: u32,
    /// How long an idempotency key (`CreateOrder` metadata `idempotency-key`) is
    /// remembered; older keys are ignored and deleted by retention. Not 0.
    pub orders_idempotency_ttl: GoDuration,
    /// Most `CreateOrder` calls written in one transaction (group commit, see
    /// `batcher`), 1 to 1000; 1 writes each order in its own transaction.
    pub orders_batch_max: u32,
    /// gRPC over TLS: the certificate chain (PEM) served, with
    /// `orders_grpc_tls_key`; unset (or empty) with it: plaintext gRPC. See
    /// [`Config::grpc_tls`].
    pub orders_grpc_tls_cert: Option<PathBuf>,
    /// The private key (PEM: PKCS#8, RSA or SEC1) of `orders_grpc_tls_cert`.
    pub orders_grpc_tls_key: Option<PathBuf>,
    /// Mutual TLS: every client must present a certificate signed by this CA (PEM);
    /// only with the two above.
    pub orders_grpc_client_ca: Option<PathBuf>,
    /// Brokers, client library and TLS/SASL (`KAFKA_BROKERS`, `KAFKA_CLIENT`,
    /// `KAFKA_SECURITY_PROTOCOL`, `KAFKA_SSL_*`, `KAFKA_SASL_*`), loaded beside the
    /// rest by [`settings::load_with_kafka`].
    #[serde(skip)]
    pub kafka: settings::KafkaConnection,
    /// Topic the relay publishes `OrderCreated` to (the Go service's name for it);
    /// see [`Config::topic`].
    pub kafka_topic: Option<String>,
    /// Alias of `KAFKA_TOPIC` (the name payments reads it under); `KAFKA_TOPIC` wins.
    pub kafka_topic_order: Option<String>,
    /// Relay poll interval when no NOTIFY arrives (Go: one event per tick); `0` is the
    /// default, 1s, as in Go.
    pub kafka_period: GoDuration,
    /// Whether orders follows payment results: consumes `PaymentStatus` from
    /// `KAFKA_TOPIC_STATUS` and moves each order to `paid` or `payment_failed`.
    /// `false` for a deployment whose payments service does not publish them in
    /// this platform's way (e.g. the Go payments): orders then stay `new`.
    pub orders_track_payments: bool,
    /// Topic carrying `PaymentStatus` (as payments and notifications name it).
    pub kafka_topic_status: String,
    /// Group orders' consumed offsets of `KAFKA_TOPIC_STATUS` are committed under
    /// (its own name: `KAFKA_CONSUMER_GROUP` is notifications' group on that topic).
    pub orders_consumer_group: String,
    /// Partitions of the status topic this instance reads (`0,1`); empty = all.
    pub orders_kafka_partitions: PartitionList,
    /// Applied `PaymentStatus` event ids (deduplication) older than this are
    /// deleted; 0 keeps them. Must stay far longer than any redelivery.
    pub processed_events_retention: GoDuration,
    /// Kept `PaymentStatus` messages that could not be applied older than this are
    /// deleted; 0 keeps them.
    pub dead_letters_retention: GoDuration,
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
            orders_idempotency_ttl: GoDuration(crate::idempotency::DEFAULT_TTL),
            orders_batch_max: crate::batcher::DEFAULT_BATCH_MAX,
            orders_grpc_tls_cert: None,
            orders_grpc_tls_key: None,
            orders_grpc_client_ca: None,
            kafka: settings::KafkaConnection::default(),
            kafka_topic: None,
            kafka_topic_order: None,
            kafka_period: GoDuration(OutboxSettings::DEFAULT.poll_interval),
            orders_track_payments: true,
            kafka_topic_status: DEFAULT_STATUS_TOPIC.to_owned(),
            orders_consumer_group: DEFAULT_CONSUMER_GROUP.to_owned(),
            orders_kafka_partitions: PartitionList::default(),
            processed_events_retention: GoDuration(
                InboxSettings::DEFAULT.processed_events_retention,
            ),
            dead_letters_retention: GoDuration(InboxSettings::DEFAULT.dead_letters_retention),
            outbox_batch_size: OutboxSettings::DEFAULT.batch_size,
            outbox_lease: GoDuration(OutboxSettings::DEFAULT.lease),
            outbox_retention: GoDuration(OutboxSettings::DEFAULT.retention),
            retention_interval: GoDuration(retention::DEFAULT_INTERVAL),
            retention_batch: retention::DEFAULT_BATCH_SIZE,
        }
    }
}

settings::impl_from_env_with_kafka!(Config, ENV_SPEC);

impl Config {
    fn check(mut self) -> Result<Self, ConfigError> {
        self.kafka.check_with_partitions(
            "ORDERS_KAFKA_PARTITIONS",
            "ORDERS_CONSUMER_GROUP",
            &self.orders_kafka_partitions,
        )?;
        if self.orders_db_pool_size == 0 {
            return Err(ConfigError::Other(
                "ORDERS_DB_POOL_SIZE (or Go's ORDERS_PG_MAX_CONNS) must be at least 1".into(),
            ));
        }
        if self.orders_max_in_flight == 0 {
            return Err(ConfigError::Other(
                "ORDERS_MAX_IN_FLIGHT must be at least 1 (e.g. 256)".into(),
            ));
        }
        if !(1..=crate::batcher::MAX_BATCH_MAX).contains(&self.orders_batch_max) {
            return Err(ConfigError::Other(format!(
                "ORDERS_BATCH_MAX must be from 1 to {} (e.g. {}; 1 = one transaction per order), got {}",
                crate::batcher::MAX_BATCH_MAX,
                crate::batcher::DEFAULT_BATCH_MAX,
                self.orders_batch_max
            )));
        }
        if self.orders_idempotency_ttl.get().is_zero() {
            return Err(ConfigError::Other(
                "ORDERS_IDEMPOTENCY_TTL must not be 0 (e.g. 24h): a key must be remembered for retries".into(),
            ));
        }
        self.grpc_tls()?;
        settings::check_not_blank(&[("KAFKA_TOPIC", self.topic())]).map_err(ConfigError::Other)?;
        self.outbox()
            .check("KAFKA_PERIOD")
            .map_err(ConfigError::Other)?;
        self.check_payment_tracking()?;
        retention::check_schedule(self.retention_interval.get(), self.retention_batch)
            .map_err(ConfigError::Other)?;
        Ok(self)
    }

    fn check_payment_tracking(&self) -> Result<(), ConfigError> {
        if !self.orders_track_payments {
            return Ok(());
        }
        settings::check_not_blank(&[
            ("KAFKA_TOPIC_STATUS", &self.kafka_topic_status),
            ("ORDERS_CONSUMER_GROUP", &self.orders_consumer_group),
        ])
        .map_err(|err| ConfigError::Other(format!("{err} (or set ORDERS_TRACK_PAYMENTS=false)")))?;
        settings::check_topics_differ(
            "orders",
            ("KAFKA_TOPIC_STATUS", &self.kafka_topic_status),
            ("KAFKA_TOPIC", self.topic()),
        )
        .map_err(ConfigError::Other)?;
        self.inbox().check().map_err(ConfigError::Other)
    }

    /// The gRPC server's TLS files: `ORDERS_GRPC_TLS_CERT` and `ORDERS_GRPC_TLS_KEY`
    /// (TLS), with `ORDERS_GRPC_CLIENT_CA` (mutual TLS); `None`: plaintext gRPC. An
    /// empty value counts as unset. One of the pair without the other, or a client
    /// CA without them, is refused: either would silently serve plaintext.
    pub fn grpc_tls(&self) -> Result<Option<ServerTlsFiles>, ConfigError> {
        let set = |path: &Option<PathBuf>| path.clone().filter(|path| !path.as_os_str().is_empty());
        let client_ca = set(&self.orders_grpc_client_ca);
        match (
            set(&self.orders_grpc_tls_cert),
            set(&self.orders_grpc_tls_key),
        ) {
            (Some(cert), Some(key)) => Ok(Some(ServerTlsFiles {
                cert: PemFile::new("ORDERS_GRPC_TLS_CERT", cert),
                key: PemFile::new("ORDERS_GRPC_TLS_KEY", key),
                client_ca: client_ca.map(|ca| PemFile::new("ORDERS_GRPC_CLIENT_CA", ca)),
            })),
            (None, None) if client_ca.is_none() => Ok(None),
            (None, None) => Err(ConfigError::Other(
                "ORDERS_GRPC_CLIENT_CA is set but ORDERS_GRPC_TLS_CERT and ORDERS_GRPC_TLS_KEY \
                 are not: client certificates are only asked for over TLS (set both, or unset \
                 ORDERS_GRPC_CLIENT_CA)"
                    .into(),
            )),
            (Some(_), None) | (None, Some(_)) => Err(ConfigError::Other(
                "ORDERS_GRPC_TLS_CERT and ORDERS_GRPC_TLS_KEY go together: set both (TLS: the \
                 certificate chain and its private key) or neither (plaintext gRPC)"
                    .into(),
            )),
        }
    }

    /// The inbox's settings (`PROCESSED_EVENTS_RETENTION`, `DEAD_LETTERS_RETENTION`).
    pub fn inbox(&self) -> InboxSettings {
        InboxSettings {
            processed_events_retention: self.processed_events_retention.get(),
            dead_letters_retention: self.dead_letters_retention.get(),
        }
    }

    /// The outbox's settings (`OUTBOX_*`, `KAFKA_PERIOD`).
    pub fn outbox(&self) -> OutboxSettings {
        let (lease, retention) = (self.outbox_lease.get(), self.outbox_retention.get());
        let (batch, poll) = (self.outbox_batch_size, self.kafka_period.get());
        OutboxSettings::read(batch, lease, retention, poll)
    }

    /// The order topic: `KAFKA_TOPIC`, else `KAFKA_TOPIC_ORDER`, else [`DEFAULT_TOPIC`].
    pub fn topic(&self) -> &str {
        self.kafka_topic
            .as_deref()
            .or(self.kafka_topic_order.as_deref())
            .unwrap_or(DEFAULT_TOPIC)
    }
}

#[cfg(test)]
mod tests {
    use std::{collections::BTreeMap, time::Duration};

    use settings::{Notes, env_from_pairs as vars};

    use super::*;

    fn load(env: &BTreeMap<String, String>) -> (Config, Notes) {
        Config::from_vars(env).unwrap()
    }

    /// Go's `orders/.env.example`, names and values as written there.
    #[test]
    fn the_go_env_example_means_what_it_means_to_the_go_service() {
        let (config, notes) = load(&testkit::go_env("orders"));
        assert_eq!(
            config.orders_pg_dsn,
            "postgres://postgres:postgres@postgres:5432/orders_db?sslmode=disable"
        );
        assert_eq!(config.orders_grpc_addr, ListenAddr::all_interfaces(50051));
        assert_eq!(config.orders_health_addr, ListenAddr::all_interfaces(8081));
        assert_eq!(config.orders_db_pool_size, 10, "ORDERS_PG_MAX_CONNS");
        assert_eq!(config.kafka.hosts(), ["kafka_produce:29092"]);
        assert_eq!(config.topic(), "order-topic");
        assert_eq!(config.outbox().poll_interval, Duration::from_secs(1));
        assert_eq!(config.orders_consumer_group, "orders");
        assert_eq!(config.kafka_topic_status, "status-topic");
        assert_eq!(
            notes.go_only_line().as_deref(),
            Some(
                "accepted, only the Go service uses: env, ORDERS_PG_DSN_TEST, \
                 ORDERS_PG_MIN_CONNS, ORDERS_PG_MAX_CONN_IDLE_TIME, ORDERS_PG_HEALTH_CHECK_PERIOD"
            )
        );
        assert!(notes.not_read.is_empty(), "{:?}", notes.not_read);
    }

    #[test]
    fn the_relay_tick_is_kafka_period_and_payments_tick_is_not_taken() {
        let (config, notes) = load(&vars(&[("KAFKA_SENDER_PERIOD", "5s")]));
        assert_eq!(config.outbox().poll_interval, Duration::from_secs(1));
        testkit::assert_mentions(
            &notes.not_read.join("\n"),
            &["KAFKA_SENDER_PERIOD", "KAFKA_PERIOD"],
        );

        let (config, _) = load(&vars(&[
            ("KAFKA_PERIOD", "250ms"),
            ("KAFKA_SENDER_PERIOD", "5s"),
        ]));
        assert_eq!(config.outbox().poll_interval, Duration::from_millis(250));
        // Go takes 0 as its default tick, 1s.
        let (config, _) = load(&vars(&[("KAFKA_PERIOD", "0")]));
        assert_eq!(config.outbox().poll_interval, Duration::from_secs(1));
    }

    #[test]
    fn the_status_consumer_has_a_group_of_its_own() {
        let (config, notes) = load(&vars(&[("KAFKA_CONSUMER_GROUP", "my-group")]));
        assert_eq!(config.orders_consumer_group, DEFAULT_CONSUMER_GROUP);
        testkit::assert_mentions(
            &notes.not_read.join("\n"),
            &["KAFKA_CONSUMER_GROUP", "ORDERS_CONSUMER_GROUP"],
        );
        let (config, _) = load(&vars(&[("ORDERS_CONSUMER_GROUP", "orders-eu")]));
        assert_eq!(config.orders_consumer_group, "orders-eu");
    }

    #[test]
    fn the_partition_list_of_earlier_releases_is_read_when_orders_own_is_unset() {
        let (config, notes) = load(&vars(&[("KAFKA_PARTITIONS", "0")]));
        assert_eq!(config.orders_kafka_partitions.selected(), Some(vec![0]));
        assert!(notes.not_read.is_empty(), "{:?}", notes.not_read);
        let both = vars(&[
            ("KAFKA_PARTITIONS", "0"),
            ("ORDERS_KAFKA_PARTITIONS", "1,2"),
        ]);
        assert_eq!(
            load(&both).0.orders_kafka_partitions.selected(),
            Some(vec![1, 2])
        );
    }

    #[test]
    fn the_platforms_pool_size_wins_over_gos_name_for_it() {
        let both = vars(&[("ORDERS_PG_MAX_CONNS", "10"), ("ORDERS_DB_POOL_SIZE", "32")]);
        assert_eq!(load(&both).0.orders_db_pool_size, 32);
        assert_eq!(load(&vars(&[])).0.orders_db_pool_size, 16);
        let err = testkit::config_refusal(Config::from_vars, &[("ORDERS_PG_MAX_CONNS", "0")]);
        testkit::assert_mentions(&err, &["ORDERS_PG_MAX_CONNS", "at least 1"]);
        let err = testkit::config_refusal(Config::from_vars, &[("ORDERS_PG_MAX_CONNS", "ten")]);
        assert!(err.starts_with("ORDERS_PG_MAX_CONNS = \"ten\""), "{err}");
    }

    #[test]
    fn grpc_tls_needs_both_files_and_a_client_ca_needs_tls() {
        assert!(load(&vars(&[])).0.grpc_tls().unwrap().is_none());
        // Empty values are unset, as a shared env file may leave them.
        let empty = vars(&[("ORDERS_GRPC_TLS_CERT", ""), ("ORDERS_GRPC_TLS_KEY", "")]);
        assert!(load(&empty).0.grpc_tls().unwrap().is_none());

        let tls = vars(&[
            ("ORDERS_GRPC_TLS_CERT", "/tls/orders.pem"),
            ("ORDERS_GRPC_TLS_KEY", "/tls/orders.key"),
        ]);
        let files = load(&tls).0.grpc_tls().unwrap().unwrap();
        assert_eq!(
            files.cert,
            PemFile::new("ORDERS_GRPC_TLS_CERT", "/tls/orders.pem")
        );
        assert_eq!(
            files.key,
            PemFile::new("ORDERS_GRPC_TLS_KEY", "/tls/orders.key")
        );
        assert!(!files.mutual());
        let mut mutual = tls.clone();
        mutual.insert("ORDERS_GRPC_CLIENT_CA".into(), "/tls/ca.pem".into());
        assert!(load(&mutual).0.grpc_tls().unwrap().unwrap().mutual());

        type Env<'a> = &'a [(&'a str, &'a str)];
        #[rustfmt::skip]
        let refused: &[(Env, &[&str])] = &[
            (&[("ORDERS_GRPC_TLS_CERT", "/c.pem")], &["ORDERS_GRPC_TLS_CERT", "ORDERS_GRPC_TLS_KEY", "both"]),
            (&[("ORDERS_GRPC_TLS_KEY", "/k.pem")], &["ORDERS_GRPC_TLS_CERT", "ORDERS_GRPC_TLS_KEY", "both"]),
            (&[("ORDERS_GRPC_CLIENT_CA", "/ca.pem")], &["ORDERS_GRPC_CLIENT_CA", "ORDERS_GRPC_TLS_CERT", "ORDERS_GRPC_TLS_KEY"]),
            (&[("ORDERS_GRPC_CLIENT_CA", "/ca.pem"), ("ORDERS_GRPC_TLS_KEY", "/k.pem")], &["both"]),
        ];
        for (env, parts) in refused {
            let err = testkit::config_refusal(Config::from_vars, env);
            testkit::assert_mentions(&err, parts);
        }
    }

    #[test]
    fn go_only_variables_are_never_refused() {
        let env = vars(&[
            ("env", "prod"),
            ("ORDERS_PG_MIN_CONNS", "many"),
            ("ORDERS_PG_MAX_CONN_IDLE_TIME", "a while"),
            ("ORDERS_PG_HEALTH_CHECK_PERIOD", "-"),
        ]);
        let (_, notes) = load(&env);
        assert_eq!(notes.go_only.len(), 4);
    }
}
