//! The notifications worker's settings: defaults < TOML file named by
//! `NOTIFICATIONS_CONFIG` < environment.
//!
//! Go's notifications reads `env`/`ENV`, `NOTIFICATIONS_HEALTH_ADDR`, `KAFKA_BROKERS`,
//! `KAFKA_TOPIC_STATUS` (its only topic variable), `KAFKA_CONSUMER_GROUP`,
//! `SESSION_TIMEOUT`, `READ_TIMEOUT`, `REDIS_ADDR`, `REDIS_DB` and `REDIS_TTL`; its
//! `.env.example` also sets the Redis client's `REDIS_USER`, `REDIS_PASSWORD`,
//! `REDIS_MAX_RETRIES`, `REDIS_DIAL_TIMEOUT` and `REDIS_TIMEOUT`. Each is read here
//! with its meaning ([`ENV_VARS`]) or accepted ([`GO_ONLY_VARS`]).
//! `docs/configuration.md` lists every variable of both platforms.

use std::{path::PathBuf, time::Duration};

use serde::{Deserialize, Serialize};
use settings::{ConfigError, EnvSpec, GoDuration, ListenAddr, NotRead};

use crate::sink::RedisTls;

pub use settings::PartitionList;

/// Every environment variable the worker reads but the Kafka connection's
/// ([`settings::KafkaConnection::ENV_VARS`], loaded beside these).
pub const ENV_VARS: &[&str] = &[
    "NOTIFICATIONS_HEALTH_ADDR",
    "KAFKA_TOPIC_STATUS",
    "KAFKA_CONSUMER_GROUP",
    "NOTIFICATIONS_KAFKA_PARTITIONS",
    "KAFKA_PARTITIONS",
    "REDIS_ADDR",
    "REDIS_DB",
    "REDIS_USER",
    "REDIS_PASSWORD",
    "REDIS_TTL",
    "REDIS_DIAL_TIMEOUT",
    "REDIS_TIMEOUT",
    "REDIS_KEY_PREFIX",
    "REDIS_TLS",
    "REDIS_TLS_CA",
];

/// Go's notifications reads these (or lists them for its clients); this worker has
/// no use for them (logging is `RUST_LOG` and `LOG_FORMAT`; the `kafka` client has no
/// group session and polls with its own wait; a failed Redis write is retried until
/// it succeeds, never given up after a count). Accepted, and named once at start-up.
pub const GO_ONLY_VARS: &[&str] = &[
    "env",
    "ENV",
    "SESSION_TIMEOUT",
    "READ_TIMEOUT",
    "REDIS_ADDR_TEST",
    "REDIS_MAX_RETRIES",
];

/// Other services' variables notifications once read or might be thought to read:
/// never taken for its own, warned of when set without notifications' variable.
pub const NOT_READ: &[NotRead] = &[NotRead {
    name: "KAFKA_TOPIC",
    whose: "the orders service's topic (OrderCreated)",
    instead: "KAFKA_TOPIC_STATUS",
}];

/// Every variable name notifications knows, for [`settings::load_with_kafka`].
pub const ENV_SPEC: EnvSpec<'static> = EnvSpec {
    service: "notifications",
    config_file_var: CONFIG_FILE_VAR,
    read: ENV_VARS,
    aliases: &[("KAFKA_PARTITIONS", "NOTIFICATIONS_KAFKA_PARTITIONS")],
    go_only: GO_ONLY_VARS,
    not_read: NOT_READ,
};

/// Default of `REDIS_DIAL_TIMEOUT` and `REDIS_TIMEOUT` (and what `0` means).
pub const DEFAULT_REDIS_TIMEOUT: Duration = Duration::from_secs(2);

/// The variable naming an optional TOML file with the same keys in lowercase.
pub const CONFIG_FILE_VAR: &str = "NOTIFICATIONS_CONFIG";

/// The topic read when `KAFKA_TOPIC_STATUS` is not set.
pub const DEFAULT_TOPIC: &str = "status-topic";

#[derive(Debug, Clone, Serialize, Deserialize)]
// No `deny_unknown_fields`: the Kafka section's keys are in the same file; the
// loader refuses a key that names none of `ENV_VARS`.
#[serde(default)]
pub struct Config {
    /// `/healthz`, `/readyz`, `/metrics` listen address.
    pub notifications_health_addr: ListenAddr,
    /// Brokers, client library and TLS/SASL (`KAFKA_BROKERS`, `KAFKA_CLIENT`,
    /// `KAFKA_SECURITY_PROTOCOL`, `KAFKA_SSL_*`, `KAFKA_SASL_*`), loaded beside the
    /// rest by [`settings::load_with_kafka`].
    #[serde(skip)]
    pub kafka: settings::KafkaConnection,
    /// Topic carrying `PaymentStatus`, the one consumed (as Go's notifications and
    /// payments name it; `KAFKA_TOPIC` is orders' topic and never read here).
    pub kafka_topic_status: String,
    /// Group the consumed offsets are committed under.
    pub kafka_consumer_group: String,
    /// Partitions this instance reads (`0,1`); empty = all.
    pub notifications_kafka_partitions: PartitionList,
    /// Redis `host:port`, also `redis://host:port` or `rediss://host:port` (TLS).
    pub redis_addr: String,
    /// Redis logical database number.
    pub redis_db: i64,
    /// Redis ACL user; empty = none (the `default` user).
    pub redis_user: String,
    /// Redis password; empty = none.
    pub redis_password: String,
    /// How long a notification is kept; `0` = no expiry.
    pub redis_ttl: GoDuration,
    /// Longest wait for a connection to Redis; `0` = the default (2s).
    pub redis_dial_timeout: GoDuration,
    /// Longest wait for one read or write on the connection; `0` = the default (2s).
    pub redis_timeout: GoDuration,
    /// Prepended to every key (the contract's key is the bare order id, so the
    /// default is empty; tests use a unique prefix).
    pub redis_key_prefix: String,
    /// TLS to Redis (as `rediss://` in `REDIS_ADDR` does); the certificate is
    /// verified, host name included.
    pub redis_tls: bool,
    /// PEM file of the CA certificates to trust for Redis TLS instead of the
    /// system's trust store (a private CA); empty = the system's.
    pub redis_tls_ca: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            notifications_health_addr: ListenAddr::all_interfaces(8083),
            kafka: settings::KafkaConnection::default(),
            kafka_topic_status: DEFAULT_TOPIC.to_owned(),
            kafka_consumer_group: "notifications".to_owned(),
            notifications_kafka_partitions: PartitionList::default(),
            redis_addr: "127.0.0.1:6379".to_owned(),
            redis_db: 0,
            redis_user: String::new(),
            redis_password: String::new(),
            redis_ttl: GoDuration::from_secs(48 * 3600),
            redis_dial_timeout: GoDuration(DEFAULT_REDIS_TIMEOUT),
            redis_timeout: GoDuration(DEFAULT_REDIS_TIMEOUT),
            redis_key_prefix: String::new(),
            redis_tls: false,
            redis_tls_ca: None,
        }
    }
}

settings::impl_from_env_with_kafka!(Config, ENV_SPEC);

impl Config {
    /// Refuses values that would only fail later.
    pub fn check(mut self) -> Result<Self, ConfigError> {
        self.kafka.check_with_partitions(
            "NOTIFICATIONS_KAFKA_PARTITIONS",
            "KAFKA_CONSUMER_GROUP",
            &self.notifications_kafka_partitions,
        )?;
        settings::check_not_blank(&[
            ("KAFKA_TOPIC_STATUS", self.topic()),
            ("KAFKA_CONSUMER_GROUP", &self.kafka_consumer_group),
        ])
        .map_err(ConfigError::Other)?;
        self.redis_host_port()?;
        if self.redis_tls_ca.is_some() && !self.redis_uses_tls() {
            return Err(ConfigError::Other(
                "REDIS_TLS_CA is set but TLS to Redis is off (set REDIS_TLS=true or use \
                 REDIS_ADDR=rediss://host:port)"
                    .into(),
            ));
        }
        if self.redis_db < 0 {
            return Err(ConfigError::Other(format!(
                "REDIS_DB must not be negative, got {}",
                self.redis_db
            )));
        }
        let ttl = self.redis_ttl.get();
        if !ttl.is_zero() && ttl < Duration::from_millis(1) {
            return Err(ConfigError::Other(format!(
                "REDIS_TTL must be 0 (no expiry) or at least 1ms, got {ttl:?}"
            )));
        }
        Ok(self)
    }

    /// The topic to consume: `KAFKA_TOPIC_STATUS` (default `status-topic`).
    pub fn topic(&self) -> &str {
        &self.kafka_topic_status
    }

    /// How long a connect to Redis may take (`REDIS_DIAL_TIMEOUT`).
    pub fn redis_dial_timeout(&self) -> Duration {
        self.redis_dial_timeout.or_if_zero(DEFAULT_REDIS_TIMEOUT)
    }

    /// How long one read or write on the Redis connection may take (`REDIS_TIMEOUT`).
    pub fn redis_io_timeout(&self) -> Duration {
        self.redis_timeout.or_if_zero(DEFAULT_REDIS_TIMEOUT)
    }

    /// The notification lifetime, `None` for no expiry (`REDIS_TTL=0`).
    pub fn ttl(&self) -> Option<Duration> {
        Some(self.redis_ttl.get()).filter(|ttl| !ttl.is_zero())
    }

    /// True for `REDIS_TLS=true` or a `rediss://` `REDIS_ADDR`.
    pub fn redis_uses_tls(&self) -> bool {
        self.redis_tls || self.redis_addr.trim().starts_with("rediss://")
    }

    /// The TLS settings for Redis (`None` = plain TCP); reads `REDIS_TLS_CA`.
    pub fn redis_tls_settings(&self) -> Result<Option<RedisTls>, ConfigError> {
        if !self.redis_uses_tls() {
            return Ok(None);
        }
        let ca_pem = match self
            .redis_tls_ca
            .as_ref()
            .filter(|path| !path.as_os_str().is_empty())
        {
            None => None,
            Some(path) => {
                let pem = std::fs::read(path).map_err(|err| {
                    ConfigError::Other(format!("REDIS_TLS_CA = {path:?}: cannot read it: {err}"))
                })?;
                if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
                    return Err(ConfigError::Other(format!(
                        "REDIS_TLS_CA = {path:?}: no PEM certificate in it"
                    )));
                }
                Some(pem)
            }
        };
        Ok(Some(RedisTls { ca_pem }))
    }

    /// `REDIS_ADDR` split into host and port (`redis://` / `rediss://` taken off).
    pub fn redis_host_port(&self) -> Result<(String, u16), ConfigError> {
        let text = self.redis_addr.trim();
        let fail = |reason: &str| {
            // Never echo credentials someone put into the URL.
            let shown = match text.rsplit_once('@') {
                Some((_, host)) => format!("<credentials hidden>@{host}"),
                None => text.to_owned(),
            };
            ConfigError::Other(format!(
                "REDIS_ADDR = {shown:?}: {reason} (expected host:port such as 127.0.0.1:6379, \
                 or redis://host:port, rediss://host:port for TLS)"
            ))
        };
        let text = text
            .strip_prefix("rediss://")
            .or_else(|| text.strip_prefix("redis://"))
            .unwrap_or(text);
        let text = text.strip_suffix('/').unwrap_or(text);
        if text.contains('@') {
            return Err(fail(
                "user and password go in REDIS_USER and REDIS_PASSWORD, not in the address",
            ));
        }
        if text.contains('/') || text.contains('?') {
            return Err(fail("no path or options: the database goes in REDIS_DB"));
        }
        let (host, port) = text.rsplit_once(':').ok_or_else(|| fail("no port"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(fail("no host"));
        }
        let port: u16 = port.parse().map_err(|_| fail("bad port"))?;
        Ok((host.to_owned(), port))
    }
}

#[cfg(test)]
mod tests {
    use settings::env_from_pairs as vars;

    use super::*;

    #[test]
    fn defaults_match_the_go_worker() {
        let config = Config::default().check().unwrap();
        assert_eq!(config.topic(), "status-topic");
        assert_eq!(
            config.redis_host_port().unwrap(),
            ("127.0.0.1".to_owned(), 6379)
        );
        assert_eq!(config.ttl(), Some(Duration::from_secs(48 * 3600)));
        assert_eq!(config.redis_key_prefix, "");
        assert_eq!(config.notifications_kafka_partitions.selected(), None);
        assert_eq!(config.redis_dial_timeout(), Duration::from_secs(2));
        assert_eq!(config.redis_io_timeout(), Duration::from_secs(2));
    }

    /// Go's `notifications/.env.example`, names and values as written there.
    #[test]
    fn the_go_env_example_means_what_it_means_to_the_go_worker() {
        let (config, notes) = Config::from_vars(&testkit::go_env("notifications")).unwrap();
        assert_eq!(
            config.notifications_health_addr,
            ListenAddr::all_interfaces(8083)
        );
        assert_eq!(config.kafka.hosts(), ["kafka_produce:29092"]);
        assert_eq!(config.topic(), "status-topic");
        assert_eq!(config.kafka_consumer_group, "my-group");
        assert_eq!(
            config.redis_host_port().unwrap(),
            ("redis".to_owned(), 6379)
        );
        assert_eq!(config.redis_db, 0);
        assert_eq!(config.redis_user, "");
        assert_eq!(config.redis_password, "");
        assert_eq!(config.redis_dial_timeout(), Duration::from_secs(2));
        assert_eq!(config.redis_io_timeout(), Duration::from_secs(2));
        assert_eq!(config.ttl(), Some(Duration::from_secs(48 * 3600)));
        assert_eq!(
            notes.go_only_line().as_deref(),
            Some(
                "accepted, only the Go service uses: ENV, SESSION_TIMEOUT, READ_TIMEOUT, \
                 REDIS_ADDR_TEST, REDIS_MAX_RETRIES"
            )
        );
        assert!(notes.not_read.is_empty(), "{:?}", notes.not_read);
    }

    #[test]
    fn orders_topic_variable_is_never_the_consumed_topic() {
        // A shared env file: orders' KAFKA_TOPIC beside (or without) the status topic.
        let (config, notes) = Config::from_vars(&vars(&[("KAFKA_TOPIC", "order-topic")])).unwrap();
        assert_eq!(config.topic(), "status-topic");
        testkit::assert_mentions(
            &notes.not_read.join("\n"),
            &["KAFKA_TOPIC", "KAFKA_TOPIC_STATUS"],
        );
        let (config, notes) = Config::from_vars(&vars(&[
            ("KAFKA_TOPIC", "order-topic"),
            ("KAFKA_TOPIC_STATUS", "statuses"),
        ]))
        .unwrap();
        assert_eq!(config.topic(), "statuses");
        assert!(notes.not_read.is_empty(), "{:?}", notes.not_read);
    }

    #[test]
    fn redis_timeouts_take_go_durations_and_zero_is_the_default() {
        let (config, _) = Config::from_vars(&vars(&[
            ("REDIS_DIAL_TIMEOUT", "500ms"),
            ("REDIS_TIMEOUT", "0"),
        ]))
        .unwrap();
        assert_eq!(config.redis_dial_timeout(), Duration::from_millis(500));
        assert_eq!(config.redis_io_timeout(), Duration::from_secs(2));
        let err = testkit::config_refusal(Config::from_vars, &[("REDIS_TIMEOUT", "-1")]);
        assert!(err.starts_with("REDIS_TIMEOUT = \"-1\""), "{err}");
    }

    #[test]
    fn redis_tls_from_the_scheme_or_the_switch() {
        let plain = Config::default().check().unwrap();
        assert!(plain.redis_tls_settings().unwrap().is_none());
        let scheme = Config {
            redis_addr: "rediss://cache.internal:6380".into(),
            ..Config::default()
        }
        .check()
        .unwrap();
        assert_eq!(
            scheme.redis_host_port().unwrap(),
            ("cache.internal".to_owned(), 6380)
        );
        assert!(scheme.redis_tls_settings().unwrap().is_some());
        let switch = Config {
            redis_addr: "redis://cache.internal:6380/".into(),
            redis_tls: true,
            ..Config::default()
        };
        assert!(switch.redis_tls_settings().unwrap().is_some());
        let ca_without_tls = Config {
            redis_tls_ca: Some("/ca.pem".into()),
            ..Config::default()
        };
        let refused = ca_without_tls.check().unwrap_err().to_string();
        testkit::assert_mentions(&refused, &["REDIS_TLS_CA"]);
        let missing_ca = Config {
            redis_tls: true,
            redis_tls_ca: Some("/nonexistent/ca.pem".into()),
            ..Config::default()
        };
        let unreadable = missing_ca.redis_tls_settings().unwrap_err().to_string();
        testkit::assert_mentions(&unreadable, &["/nonexistent/ca.pem"]);
    }

    #[test]
    fn credentials_in_redis_addr_are_refused_without_being_shown() {
        let err = Config {
            redis_addr: "rediss://user:hunter2@cache:6380".into(),
            ..Config::default()
        }
        .check()
        .unwrap_err()
        .to_string();
        testkit::assert_mentions(&err, &["REDIS_PASSWORD"]);
        testkit::assert_hides(&err, "hunter2");
    }

    #[test]
    fn zero_ttl_means_no_expiry() {
        let config = Config {
            redis_ttl: GoDuration::from_secs(0),
            ..Config::default()
        };
        assert_eq!(config.check().unwrap().ttl(), None);
    }

    #[test]
    fn bad_values_are_refused() {
        // Each case spoils one setting of the defaults; the error names its variable.
        type Spoil = fn(&mut Config);
        let cases: [(&str, Spoil); 4] = [
            ("REDIS_ADDR", |c| c.redis_addr = "localhost".into()),
            ("REDIS_TTL", |c| {
                c.redis_ttl = GoDuration(Duration::from_micros(10))
            }),
            ("KAFKA_TOPIC_STATUS", |c| c.kafka_topic_status = " ".into()),
            ("REDIS_DB", |c| c.redis_db = -1),
        ];
        for (var, spoil) in cases {
            let mut config = Config::default();
            spoil(&mut config);
            let err = config.check().unwrap_err().to_string();
            assert!(err.contains(var), "{var}: {err}");
        }
    }
}
