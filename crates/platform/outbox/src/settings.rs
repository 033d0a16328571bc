//! The outbox's settings, the same in every service that has an outbox, and the one
//! place a service's relay configuration and retention policy are made from them.
//!
//! The values are read by each service's configuration (whose keys stay flat, e.g.
//! `OUTBOX_LEASE`, so TOML files and the environment look as they always did) and
//! handed over as an [`OutboxSettings`], which checks them and builds the rest.

use std::time::Duration;

use crate::RelayConfig;

/// The variables the outbox reads in every service that has one.
pub const ENV_VARS: [&str; 3] = ["OUTBOX_BATCH_SIZE", "OUTBOX_LEASE", "OUTBOX_RETENTION"];

/// How long the relay waits for the broker's acknowledgement of a batch.
pub const ACK_TIMEOUT: Duration = Duration::from_secs(5);

/// `OUTBOX_BATCH_SIZE`, `OUTBOX_LEASE`, `OUTBOX_RETENTION` and the service's relay
/// poll interval (`KAFKA_PERIOD` in orders, `KAFKA_SENDER_PERIOD` in payments, as in Go).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboxSettings {
    /// Most rows the relay claims and publishes at once.
    pub batch_size: u32,
    /// How long a claim lasts before another relay may take the rows over.
    pub lease: Duration,
    /// Sent rows older than this are deleted; zero keeps them.
    pub retention: Duration,
    /// How often an idle relay looks for rows when no NOTIFY arrives.
    pub poll_interval: Duration,
}

impl OutboxSettings {
    /// The defaults: 500 rows a batch, a 30 s lease, a week of sent rows, 1 s polls.
    pub const DEFAULT: Self = Self {
        batch_size: 500,
        lease: Duration::from_secs(30),
        retention: crate::DEFAULT_RETENTION,
        poll_interval: Duration::from_secs(1),
    };

    /// The settings as a service read them: `poll_interval` zero (Go's unset relay
    /// tick) means the default.
    pub fn read(batch_size: u32, lease: Duration, retention: Duration, poll: Duration) -> Self {
        let poll_interval = if poll.is_zero() {
            Self::DEFAULT.poll_interval
        } else {
            poll
        };
        Self {
            batch_size,
            lease,
            retention,
            poll_interval,
        }
    }

    /// Refuses values that would only fail later; `poll_var` is the name the service
    /// reads the poll interval under, for the message.
    pub fn check(&self, poll_var: &str) -> Result<(), String> {
        if self.batch_size == 0 {
            return Err("OUTBOX_BATCH_SIZE must be at least 1".to_owned());
        }
        // Zero would let claims expire at once, so concurrent relays publish rows
        // twice, or make an idle relay poll PostgreSQL in a tight loop.
        if self.lease.is_zero() {
            return Err("OUTBOX_LEASE must not be 0".to_owned());
        }
        if self.poll_interval.is_zero() {
            return Err(format!("{poll_var} must not be 0"));
        }
        Ok(())
    }

    /// The relay of a service whose database is `dsn`, publishing as `client_id` to
    /// the brokers of `kafka`, on its client, TLS/SASL settings and librdkafka properties.
    pub fn relay_config(
        &self,
        dsn: &str,
        kafka: &bus::KafkaConnection,
        client_id: &str,
    ) -> RelayConfig {
        RelayConfig {
            dsn: dsn.to_owned(),
            brokers: kafka.hosts(),
            batch_size: self.batch_size,
            lease: self.lease,
            poll_interval: self.poll_interval,
            ack_timeout: ACK_TIMEOUT,
            client_id: client_id.to_owned(),
            kafka_client: kafka.client,
            kafka_security: kafka.security.clone(),
            kafka_properties: kafka.producer_properties.clone(),
        }
    }

    /// What retention keeps of the outbox.
    pub fn retention_policy(&self) -> retention::Policy {
        retention::Policy::new(crate::RETENTION_TABLE, self.retention)
    }
}

impl Default for OutboxSettings {
    fn default() -> Self {
        Self::DEFAULT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zero_poll_interval_as_read_is_the_default() {
        let lease = Duration::from_secs(7);
        let read = OutboxSettings::read(9, lease, Duration::ZERO, Duration::ZERO);
        let expected = OutboxSettings {
            batch_size: 9,
            lease,
            retention: Duration::ZERO,
            poll_interval: OutboxSettings::DEFAULT.poll_interval,
        };
        assert_eq!(read, expected);
        let tick = Duration::from_millis(250);
        assert_eq!(
            OutboxSettings::read(9, lease, Duration::ZERO, tick).poll_interval,
            tick
        );
    }

    #[test]
    fn the_relay_gets_the_kafka_sections_client_security_and_producer_properties() {
        let mut kafka = bus::KafkaConnection {
            client: bus::KafkaClient::Rdkafka,
            rdkafka_producer_properties: "linger.ms=5".into(),
            rdkafka_consumer_properties: "fetch.wait.max.ms=100".into(),
            ..Default::default()
        };
        kafka.check().expect("valid section");
        let relay = OutboxSettings::DEFAULT.relay_config("postgres://db", &kafka, "orders");
        assert_eq!(relay.kafka_client, bus::KafkaClient::Rdkafka);
        assert_eq!(relay.kafka_security, kafka.security);
        // The producer's list, not the consumers'.
        let properties: Vec<_> = relay.kafka_properties.iter().collect();
        assert_eq!(properties, [("linger.ms", "5")]);
    }

    #[test]
    fn each_zero_is_refused_naming_its_variable() {
        let ok = OutboxSettings::DEFAULT;
        assert_eq!(ok.check("KAFKA_PERIOD"), Ok(()));
        let cases = [
            (
                OutboxSettings {
                    batch_size: 0,
                    ..ok
                },
                "OUTBOX_BATCH_SIZE",
            ),
            (
                OutboxSettings {
                    lease: Duration::ZERO,
                    ..ok
                },
                "OUTBOX_LEASE",
            ),
            (
                OutboxSettings {
                    poll_interval: Duration::ZERO,
                    ..ok
                },
                "KAFKA_PERIOD",
            ),
        ];
        for (settings, var) in cases {
            let err = settings.check("KAFKA_PERIOD").unwrap_err();
            assert!(err.starts_with(var), "{err}");
        }
        // Zero retention means "keep": allowed.
        let keep = OutboxSettings {
            retention: Duration::ZERO,
            ..ok
        };
        assert_eq!(keep.check("KAFKA_PERIOD"), Ok(()));
    }
}
