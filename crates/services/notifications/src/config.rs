//! The notifications worker's settings: defaults < TOML file named by
//! `NOTIFICATIONS_CONFIG` < environment.

use std::{path::PathBuf, time::Duration};

use serde::{Deserialize, Serialize};
use settings::{ConfigError, GoDuration, ListenAddr};

use crate::sink::RedisTls;

pub use settings::PartitionList;

/// Every environment variable the worker reads but the Kafka connection's
/// ([`settings::KafkaConnection::ENV_VARS`], loaded beside these).
pub const ENV_VARS: &[&str] = &[
    "NOTIFICATIONS_HEALTH_ADDR",
    "KAFKA_TOPIC",
    "KAFKA_TOPIC_STATUS",
    "KAFKA_CONSUMER_GROUP",
    "KAFKA_PARTITIONS",
    "REDIS_ADDR",
    "REDIS_DB",
    "REDIS_USER",
    "REDIS_PASSWORD",
    "REDIS_TTL",
    "REDIS_KEY_PREFIX",
    "REDIS_TLS",
    "REDIS_TLS_CA",
];

/// The variable naming an optional TOML file with the same keys in lowercase.
pub const CONFIG_FILE_VAR: &str = "NOTIFICATIONS_CONFIG";

/// The topic read when neither `KAFKA_TOPIC` nor `KAFKA_TOPIC_STATUS` is set.
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
    /// Topic carrying `PaymentStatus` (the Go worker's name for it); see [`Config::topic`].
    pub kafka_topic: Option<String>,
    /// Alias of `KAFKA_TOPIC` (the name payments publishes under); `KAFKA_TOPIC` wins.
    pub kafka_topic_status: Option<String>,
    /// Group the consumed offsets are committed under.
    pub kafka_consumer_group: String,
    /// Partitions this instance reads (`0,1`); empty = all.
    pub kafka_partitions: PartitionList,
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
            kafka_topic: None,
            kafka_topic_status: None,
            kafka_consumer_group: "notifications".to_owned(),
            kafka_partitions: PartitionList::default(),
            redis_addr: "127.0.0.1:6379".to_owned(),
            redis_db: 0,
            redis_user: String::new(),
            redis_password: String::new(),
            redis_ttl: GoDuration::from_secs(48 * 3600),
            redis_key_prefix: String::new(),
            redis_tls: false,
            redis_tls_ca: None,
        }
    }
}

impl Config {
    /// Reads the process environment (and the TOML file it may name).
    pub fn from_env() -> Result<Self, ConfigError> {
        let (config, kafka): (Config, _) = settings::load_with_kafka(CONFIG_FILE_VAR, ENV_VARS)?;
        Config { kafka, ..config }.check()
    }

    /// Refuses values that would only fail later.
    pub fn check(mut self) -> Result<Self, ConfigError> {
        self.kafka.check_with_partitions(&self.kafka_partitions)?;
        if self.topic().trim().is_empty() {
            return Err(ConfigError::Other("KAFKA_TOPIC must not be empty".into()));
        }
        if self.kafka_consumer_group.trim().is_empty() {
            return Err(ConfigError::Other(
                "KAFKA_CONSUMER_GROUP must not be empty".into(),
            ));
        }
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

    /// The topic to consume: `KAFKA_TOPIC`, else `KAFKA_TOPIC_STATUS`, else `status-topic`.
    pub fn topic(&self) -> &str {
        self.kafka_topic
            .as_deref()
            .or(self.kafka_topic_status.as_deref())
            .unwrap_or(DEFAULT_TOPIC)
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
        assert_eq!(config.kafka_partitions.selected(), None);
    }

    #[test]
    fn kafka_topic_wins_over_its_alias() {
        let alias = Config {
            kafka_topic_status: Some("statuses".into()),
            ..Config::default()
        };
        assert_eq!(alias.topic(), "statuses");
        let both = Config {
            kafka_topic: Some("a".into()),
            kafka_topic_status: Some("b".into()),
            ..Config::default()
        };
        assert_eq!(both.topic(), "a");
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
            ("KAFKA_TOPIC", |c| c.kafka_topic = Some(" ".into())),
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
