//! The payments worker's settings: defaults < TOML file named by `PAYMENTS_CONFIG` <
//! environment.
//!
//! Go's payments reads `env`/`ENV`, `PAYMENTS_PG_DSN`, `PAYMENTS_PG_*` pool settings,
//! `PAYMENTS_HEALTH_ADDR`, `KAFKA_BROKERS`, `KAFKA_TOPIC_ORDER`, `KAFKA_TOPIC_STATUS`,
//! `KAFKA_EVENT_TYPE`, `KAFKA_CONSUMER_GROUP` and `KAFKA_SENDER_PERIOD`; each is read
//! here with its meaning ([`ENV_VARS`]) or accepted ([`GO_ONLY_VARS`]).
//! `docs/configuration.md` lists every variable of both platforms.

use inbox::InboxSettings;
use outbox::OutboxSettings;
use serde::{Deserialize, Serialize};
use settings::{ConfigError, EnvSpec, GoDuration, ListenAddr, NotRead, Secret};

use crate::stripe::StripeSettings;

pub use settings::PartitionList;

/// Every environment variable the worker reads but the Kafka connection's
/// ([`settings::KafkaConnection::ENV_VARS`], loaded beside these).
pub const ENV_VARS: &[&str] = &[
    "PAYMENTS_PG_DSN",
    "PAYMENTS_HEALTH_ADDR",
    "PAYMENTS_DB_POOL_SIZE",
    "PAYMENTS_PG_MAX_CONNS",
    "PAYMENTS_DB_TIMEOUT",
    "KAFKA_TOPIC_ORDER",
    "KAFKA_TOPIC_STATUS",
    "KAFKA_CONSUMER_GROUP",
    "PAYMENTS_KAFKA_PARTITIONS",
    "KAFKA_PARTITIONS",
    "KAFKA_SENDER_PERIOD",
    "OUTBOX_BATCH_SIZE",
    "OUTBOX_LEASE",
    "OUTBOX_RETENTION",
    "PROCESSED_EVENTS_RETENTION",
    "DEAD_LETTERS_RETENTION",
    "RETENTION_INTERVAL",
    "RETENTION_BATCH",
    "PAYMENTS_PROVIDER",
    "PAYMENTS_STRIPE_API_BASE",
    "PAYMENTS_STRIPE_SECRET_KEY",
    "PAYMENTS_STRIPE_PAYMENT_METHOD",
    "PAYMENTS_CURRENCY",
    "PAYMENTS_PROVIDER_TIMEOUT",
    "PAYMENTS_PROVIDER_MAX_ATTEMPTS",
    "PAYMENTS_PROVIDER_CONCURRENCY",
    "PAYMENTS_PROVIDER_BREAKER_THRESHOLD",
    "PAYMENTS_PROVIDER_BREAKER_COOLDOWN",
];

/// Go's payments reads these; this worker has no use for them (logging is `RUST_LOG`
/// and `LOG_FORMAT`; the outbox has no event-type column; the pool opens connections
/// as load needs them and checks each before use). Accepted, and named once at
/// start-up.
pub const GO_ONLY_VARS: &[&str] = &[
    "env",
    "ENV",
    "KAFKA_EVENT_TYPE",
    "KAFKA_TEST_BROKERS",
    "PAYMENTS_PG_MIN_CONNS",
    "PAYMENTS_PG_MAX_CONN_IDLE_TIME",
    "PAYMENTS_PG_HEALTH_CHECK_PERIOD",
];

/// Other services' variables payments once read or might be thought to read: never
/// taken for its own, warned of when set without payments' variable.
pub const NOT_READ: &[NotRead] = &[NotRead {
    name: "KAFKA_PERIOD",
    whose: "the orders service's relay tick",
    instead: "KAFKA_SENDER_PERIOD",
}];

/// Every variable name payments knows, for [`settings::load_with_kafka`]. Go's
/// `PAYMENTS_PG_MAX_CONNS` is the pool size when `PAYMENTS_DB_POOL_SIZE` is not set.
pub const ENV_SPEC: EnvSpec<'static> = EnvSpec {
    service: "payments",
    config_file_var: CONFIG_FILE_VAR,
    read: ENV_VARS,
    aliases: &[
        ("PAYMENTS_PG_MAX_CONNS", "PAYMENTS_DB_POOL_SIZE"),
        ("KAFKA_PARTITIONS", "PAYMENTS_KAFKA_PARTITIONS"),
    ],
    go_only: GO_ONLY_VARS,
    not_read: NOT_READ,
};

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
    /// Most PostgreSQL connections held at once (consumer, relay, readiness; Go's
    /// name: `PAYMENTS_PG_MAX_CONNS`).
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
    pub payments_kafka_partitions: PartitionList,
    /// Relay poll interval when no NOTIFY arrives (Go's payments' name for its relay
    /// tick); `0` is the default, 1s, as in Go.
    pub kafka_sender_period: GoDuration,
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
    /// Who decides payments: `simulated` (the Go platform's parity rule) or
    /// `stripe` (Stripe's PaymentIntents API, [`crate::stripe`]).
    pub payments_provider: String,
    /// Stripe's API root (stripe-mock or a test server in tests).
    pub payments_stripe_api_base: String,
    /// Stripe's secret key (`sk_test_...` in test mode); required with `stripe`,
    /// never shown.
    pub payments_stripe_secret_key: Secret,
    /// The payment method each PaymentIntent is confirmed with (`pm_card_visa` is
    /// Stripe's test card).
    pub payments_stripe_payment_method: String,
    /// The currency of every order's total (ISO code, minor units).
    pub payments_currency: String,
    /// Per call to the provider: connect, send and read the answer.
    pub payments_provider_timeout: GoDuration,
    /// Calls per charge without an answer before the message goes to dead letters.
    pub payments_provider_max_attempts: u32,
    /// Charges of one poll in flight at once.
    pub payments_provider_concurrency: u32,
    /// Consecutive calls without an answer that open the circuit breaker.
    pub payments_provider_breaker_threshold: u32,
    /// How long an open circuit makes no call to the provider.
    pub payments_provider_breaker_cooldown: GoDuration,
}

/// Who decides payments ([`Config::provider`]).
#[derive(Debug, Clone)]
pub enum ProviderChoice {
    Simulated,
    Stripe(StripeSettings),
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
            payments_kafka_partitions: PartitionList::default(),
            kafka_sender_period: GoDuration(OutboxSettings::DEFAULT.poll_interval),
            outbox_batch_size: OutboxSettings::DEFAULT.batch_size,
            outbox_lease: GoDuration(OutboxSettings::DEFAULT.lease),
            outbox_retention: GoDuration(OutboxSettings::DEFAULT.retention),
            processed_events_retention: GoDuration(
                InboxSettings::DEFAULT.processed_events_retention,
            ),
            dead_letters_retention: GoDuration(InboxSettings::DEFAULT.dead_letters_retention),
            retention_interval: GoDuration(retention::DEFAULT_INTERVAL),
            retention_batch: retention::DEFAULT_BATCH_SIZE,
            payments_provider: "simulated".to_owned(),
            payments_stripe_api_base: "https://api.stripe.com".to_owned(),
            payments_stripe_secret_key: Secret::default(),
            payments_stripe_payment_method: "pm_card_visa".to_owned(),
            payments_currency: "usd".to_owned(),
            payments_provider_timeout: GoDuration::from_secs(10),
            payments_provider_max_attempts: 5,
            payments_provider_concurrency: 16,
            payments_provider_breaker_threshold: 5,
            payments_provider_breaker_cooldown: GoDuration::from_secs(30),
        }
    }
}

settings::impl_from_env_with_kafka!(Config, ENV_SPEC);

impl Config {
    /// The outbox's settings (`OUTBOX_*`, `KAFKA_SENDER_PERIOD`).
    pub fn outbox(&self) -> OutboxSettings {
        let (lease, retention) = (self.outbox_lease.get(), self.outbox_retention.get());
        let (batch, poll) = (self.outbox_batch_size, self.kafka_sender_period.get());
        OutboxSettings::read(batch, lease, retention, poll)
    }

    /// The inbox's settings (`PROCESSED_EVENTS_RETENTION`, `DEAD_LETTERS_RETENTION`).
    pub fn inbox(&self) -> InboxSettings {
        InboxSettings {
            processed_events_retention: self.processed_events_retention.get(),
            dead_letters_retention: self.dead_letters_retention.get(),
        }
    }

    /// The provider `PAYMENTS_PROVIDER` names, with its settings checked.
    pub fn provider(&self) -> Result<ProviderChoice, ConfigError> {
        let refuse = |text: String| Err(ConfigError::Other(text));
        match self.payments_provider.trim() {
            "simulated" | "" => return Ok(ProviderChoice::Simulated),
            "stripe" => {}
            other => {
                return refuse(format!(
                    "PAYMENTS_PROVIDER = {other:?}: expected simulated or stripe"
                ));
            }
        }
        if self.payments_stripe_secret_key.expose().trim().is_empty() {
            return refuse(
                "PAYMENTS_STRIPE_SECRET_KEY is required with PAYMENTS_PROVIDER=stripe".into(),
            );
        }
        let base = self.payments_stripe_api_base.trim();
        if !(base.starts_with("https://") || base.starts_with("http://")) {
            return refuse(format!(
                "PAYMENTS_STRIPE_API_BASE = {base:?}: expected an http:// or https:// URL"
            ));
        }
        let currency = self.payments_currency.trim().to_ascii_lowercase();
        if currency.len() != 3 || !currency.chars().all(|c| c.is_ascii_alphabetic()) {
            return refuse(format!(
                "PAYMENTS_CURRENCY = {:?}: expected a three-letter ISO currency code such as usd",
                self.payments_currency
            ));
        }
        settings::check_not_blank(&[(
            "PAYMENTS_STRIPE_PAYMENT_METHOD",
            &self.payments_stripe_payment_method,
        )])
        .map_err(ConfigError::Other)?;
        for (name, value) in [
            (
                "PAYMENTS_PROVIDER_MAX_ATTEMPTS",
                self.payments_provider_max_attempts,
            ),
            (
                "PAYMENTS_PROVIDER_CONCURRENCY",
                self.payments_provider_concurrency,
            ),
            (
                "PAYMENTS_PROVIDER_BREAKER_THRESHOLD",
                self.payments_provider_breaker_threshold,
            ),
        ] {
            if value == 0 {
                return refuse(format!("{name} must be at least 1"));
            }
        }
        if self.payments_provider_timeout.get().is_zero() {
            return refuse("PAYMENTS_PROVIDER_TIMEOUT must be more than 0".into());
        }
        Ok(ProviderChoice::Stripe(StripeSettings {
            api_base: base.to_owned(),
            secret_key: self.payments_stripe_secret_key.clone(),
            currency,
            payment_method: self.payments_stripe_payment_method.trim().to_owned(),
            timeout: self.payments_provider_timeout.get(),
            max_attempts: self.payments_provider_max_attempts,
            concurrency: usize::try_from(self.payments_provider_concurrency).unwrap_or(usize::MAX),
            breaker_threshold: self.payments_provider_breaker_threshold,
            breaker_cooldown: self.payments_provider_breaker_cooldown.get(),
            retry: backoff::RetryPolicy::DEFAULT,
        }))
    }

    /// Refuses values that would only fail later.
    pub fn check(mut self) -> Result<Self, ConfigError> {
        self.provider()?;
        self.kafka.check_with_partitions(
            "PAYMENTS_KAFKA_PARTITIONS",
            "KAFKA_CONSUMER_GROUP",
            &self.payments_kafka_partitions,
        )?;
        // Consumer, relay (pool side) and readiness each hold one at times.
        if self.payments_db_pool_size < 2 {
            return Err(ConfigError::Other(
                "PAYMENTS_DB_POOL_SIZE (or Go's PAYMENTS_PG_MAX_CONNS) must be at least 2".into(),
            ));
        }
        self.outbox()
            .check("KAFKA_SENDER_PERIOD")
            .map_err(ConfigError::Other)?;
        retention::check_schedule(self.retention_interval.get(), self.retention_batch)
            .map_err(ConfigError::Other)?;
        // A redelivery from beyond the deduplication window still finds its order
        // paid (one payment per order), but is handled as a new event.
        self.inbox().check().map_err(ConfigError::Other)?;
        settings::check_not_blank(&[
            ("KAFKA_TOPIC_ORDER", &self.kafka_topic_order),
            ("KAFKA_TOPIC_STATUS", &self.kafka_topic_status),
            ("KAFKA_CONSUMER_GROUP", &self.kafka_consumer_group),
        ])
        .map_err(ConfigError::Other)?;
        settings::check_topics_differ(
            "payments",
            ("KAFKA_TOPIC_ORDER", &self.kafka_topic_order),
            ("KAFKA_TOPIC_STATUS", &self.kafka_topic_status),
        )
        .map_err(ConfigError::Other)?;
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use settings::env_from_pairs as vars;

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
        assert_eq!(config.payments_kafka_partitions.selected(), None);
    }

    /// Go's `payments/.env.example`, names and values as written there.
    #[test]
    fn the_go_env_example_means_what_it_means_to_the_go_worker() {
        let (config, notes) = Config::from_vars(&testkit::go_env("payments")).unwrap();
        assert_eq!(
            config.payments_pg_dsn,
            "postgres://postgres:postgres@postgres:5432/payments_db?sslmode=disable"
        );
        assert_eq!(config.payments_db_pool_size, 10, "PAYMENTS_PG_MAX_CONNS");
        assert_eq!(
            config.payments_health_addr,
            ListenAddr::all_interfaces(8082)
        );
        assert_eq!(config.kafka.hosts(), ["kafka_produce:29092"]);
        assert_eq!(config.kafka_topic_order, "order-topic");
        assert_eq!(config.kafka_topic_status, "status-topic");
        assert_eq!(config.kafka_consumer_group, "my-group");
        assert_eq!(
            config.outbox().poll_interval,
            std::time::Duration::from_secs(1)
        );
        assert_eq!(
            notes.go_only_line().as_deref(),
            Some(
                "accepted, only the Go service uses: ENV, KAFKA_EVENT_TYPE, KAFKA_TEST_BROKERS, \
                 PAYMENTS_PG_MIN_CONNS, PAYMENTS_PG_MAX_CONN_IDLE_TIME, \
                 PAYMENTS_PG_HEALTH_CHECK_PERIOD"
            )
        );
        assert!(notes.not_read.is_empty(), "{:?}", notes.not_read);
    }

    #[test]
    fn the_relay_tick_is_kafka_sender_period_and_orders_tick_is_not_taken() {
        let tick = |env: &[(&str, &str)]| {
            let (config, notes) = Config::from_vars(&vars(env)).unwrap();
            (config.outbox().poll_interval, notes.not_read.join("\n"))
        };
        let (period, warned) = tick(&[("KAFKA_PERIOD", "5s")]);
        assert_eq!(period, std::time::Duration::from_secs(1));
        testkit::assert_mentions(&warned, &["KAFKA_PERIOD", "KAFKA_SENDER_PERIOD"]);
        let (period, warned) = tick(&[("KAFKA_PERIOD", "5s"), ("KAFKA_SENDER_PERIOD", "200ms")]);
        assert_eq!(period, std::time::Duration::from_millis(200));
        assert_eq!(warned, "");
        // Go takes 0 as its default tick, 1s.
        let (period, _) = tick(&[("KAFKA_SENDER_PERIOD", "0")]);
        assert_eq!(period, std::time::Duration::from_secs(1));
    }

    #[test]
    fn the_partition_list_is_payments_own() {
        // The one list of earlier releases, when payments' own is unset.
        let (config, notes) = Config::from_vars(&vars(&[("KAFKA_PARTITIONS", "0")])).unwrap();
        assert_eq!(config.payments_kafka_partitions.selected(), Some(vec![0]));
        assert!(notes.not_read.is_empty(), "{:?}", notes.not_read);
        let (config, _) =
            Config::from_vars(&vars(&[("PAYMENTS_KAFKA_PARTITIONS", "0,2")])).unwrap();
        assert_eq!(
            config.payments_kafka_partitions.selected(),
            Some(vec![0, 2])
        );
        let err = testkit::config_refusal(
            Config::from_vars,
            &[
                ("PAYMENTS_KAFKA_PARTITIONS", "0"),
                ("KAFKA_CLIENT", "rdkafka"),
            ],
        );
        testkit::assert_mentions(&err, &["PAYMENTS_KAFKA_PARTITIONS", "KAFKA_CONSUMER_GROUP"]);
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
    fn librdkafka_properties_are_read_from_the_environment_and_checked() {
        let (config, _) = Config::from_vars(&vars(&[
            ("KAFKA_CLIENT", "rdkafka"),
            ("KAFKA_RDKAFKA_PRODUCER_PROPERTIES", "linger.ms=5"),
            (
                "KAFKA_RDKAFKA_CONSUMER_PROPERTIES",
                "fetch.wait.max.ms=100;client.rack=a",
            ),
        ]))
        .unwrap();
        let producer: Vec<_> = config.kafka.producer_properties.iter().collect();
        assert_eq!(producer, [("linger.ms", "5")]);
        assert_eq!(config.kafka.consumer_properties.iter().count(), 2);

        let err = Config::from_vars(&vars(&[
            ("KAFKA_CLIENT", "rdkafka"),
            (
                "KAFKA_RDKAFKA_CONSUMER_PROPERTIES",
                "enable.auto.commit=true",
            ),
        ]))
        .unwrap_err()
        .to_string();
        testkit::assert_mentions(
            &err,
            &["KAFKA_RDKAFKA_CONSUMER_PROPERTIES", "enable.auto.commit"],
        );
        let err = Config::from_vars(&vars(&[(
            "KAFKA_RDKAFKA_PRODUCER_PROPERTIES",
            "linger.ms=5",
        )]))
        .unwrap_err()
        .to_string();
        testkit::assert_mentions(
            &err,
            &["KAFKA_RDKAFKA_PRODUCER_PROPERTIES", "KAFKA_CLIENT=rdkafka"],
        );
    }

    #[test]
    fn the_provider_is_simulated_unless_stripe_is_named_with_its_key() {
        let (config, _) = Config::from_vars(&vars(&[])).unwrap();
        assert!(matches!(
            config.provider().unwrap(),
            ProviderChoice::Simulated
        ));
        let (config, _) = Config::from_vars(&vars(&[
            ("PAYMENTS_PROVIDER", "stripe"),
            ("PAYMENTS_STRIPE_SECRET_KEY", "sk_test_hunter2"),
            ("PAYMENTS_CURRENCY", "EUR"),
            ("PAYMENTS_PROVIDER_TIMEOUT", "3s"),
        ]))
        .unwrap();
        let ProviderChoice::Stripe(stripe) = config.provider().unwrap() else {
            panic!("stripe expected");
        };
        assert_eq!(stripe.api_base, "https://api.stripe.com");
        assert_eq!(stripe.currency, "eur");
        assert_eq!(stripe.payment_method, "pm_card_visa");
        assert_eq!(stripe.timeout, std::time::Duration::from_secs(3));
        assert_eq!((stripe.max_attempts, stripe.concurrency), (5, 16));
        for shown in [format!("{config:?}"), format!("{stripe:?}")] {
            assert!(!shown.contains("hunter2"), "{shown}");
        }
        for (env, named) in [
            (&[("PAYMENTS_PROVIDER", "paypal")][..], "PAYMENTS_PROVIDER"),
            (
                &[("PAYMENTS_PROVIDER", "stripe")][..],
                "PAYMENTS_STRIPE_SECRET_KEY",
            ),
            (
                &[
                    ("PAYMENTS_PROVIDER", "stripe"),
                    ("PAYMENTS_STRIPE_SECRET_KEY", "sk_test_x"),
                    ("PAYMENTS_PROVIDER_CONCURRENCY", "0"),
                ][..],
                "PAYMENTS_PROVIDER_CONCURRENCY",
            ),
            (
                &[
                    ("PAYMENTS_PROVIDER", "stripe"),
                    ("PAYMENTS_STRIPE_SECRET_KEY", "sk_test_x"),
                    ("PAYMENTS_CURRENCY", "dollars"),
                ][..],
                "PAYMENTS_CURRENCY",
            ),
        ] {
            let err = testkit::config_refusal(Config::from_vars, env);
            testkit::assert_mentions(&err, &[named]);
            assert!(!err.contains("sk_test_x"), "{err}");
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
