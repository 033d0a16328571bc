//! The public [`Producer`]: checks the configuration, then connects and sends on the
//! client [`ProducerConfig::client`] names, the `kafka` crate
//! (`crate::kafka_crate::producer`) or librdkafka (`crate::rd::producer`); its callers
//! cannot tell them apart.

use tokio_util::sync::CancellationToken;

use crate::KafkaClient;
use crate::error::BusError;
use crate::kafka_crate::producer::KafkaProducer;
use crate::producer::api::{self, ProducerConfig, Record};
use crate::rd::producer::RdProducer;

/// A blocking producer with acks from all in-sync replicas, on the client
/// [`ProducerConfig::client`] names.
///
/// Partitioning is Java's default (murmur2 of the key) on both clients, so an order's
/// records land on the same partition whichever client published them. A batch that
/// fails transiently is retried (only its unacknowledged records), so a record may be
/// written twice: consumers deduplicate (on `event_id`).
#[derive(Debug)]
pub struct Producer {
    inner: Inner,
}

#[derive(Debug)]
enum Inner {
    /// Boxed, both: the clients are large, and a producer is made once.
    Kafka(Box<KafkaProducer>),
    Rdkafka(Box<RdProducer>),
}

impl Producer {
    /// Connects (the `kafka` crate: the protocol-version check, then one metadata
    /// round trip; librdkafka: one metadata round trip; retried like a send) and
    /// returns the producer. With the `kafka` crate, a broker without the protocol
    /// versions it uses fails at once with [`BusError::UnsupportedBroker`]. For callers
    /// without a stop signal (commands, tests): retries always run their course.
    pub fn connect(config: ProducerConfig) -> Result<Producer, BusError> {
        Self::connect_with_shutdown(config, CancellationToken::new())
    }

    /// [`Producer::connect`] for a long-running service: once `shutdown` is cancelled,
    /// a failing connect or send returns its error instead of waiting for a retry.
    pub fn connect_with_shutdown(
        config: ProducerConfig,
        shutdown: CancellationToken,
    ) -> Result<Producer, BusError> {
        if config.brokers.is_empty() {
            return Err(BusError::Config("no brokers given".into()));
        }
        crate::rd::check_security(config.client, &config.security).map_err(BusError::Config)?;
        crate::rd::check_properties(
            config.client,
            &config.rdkafka_properties,
            settings::RdkafkaRole::Producer,
        )
        .map_err(BusError::Config)?;
        let inner = match config.client {
            KafkaClient::Kafka => Inner::Kafka(Box::new(KafkaProducer::connect_with_shutdown(
                config, shutdown,
            )?)),
            KafkaClient::Rdkafka => {
                Inner::Rdkafka(Box::new(RdProducer::connect(config, shutdown)?))
            }
        };
        Ok(Producer { inner })
    }

    /// Sends one record and waits for its ack.
    pub fn send(&mut self, record: Record<'_>) -> Result<(), BusError> {
        self.send_all(std::slice::from_ref(&record))
    }

    /// Sends the records as one batch: Ok only if every record was acknowledged. A
    /// retry re-sends only the records that were not acknowledged, so a partial
    /// failure does not write the acknowledged records twice.
    pub fn send_all(&mut self, records: &[Record<'_>]) -> Result<(), BusError> {
        match &mut self.inner {
            Inner::Kafka(p) => api::send_all(p.as_mut(), records),
            Inner::Rdkafka(p) => api::send_all(p.as_mut(), records),
        }
    }

    /// The client this producer runs on.
    pub fn client(&self) -> KafkaClient {
        match self.inner {
            Inner::Kafka(_) => KafkaClient::Kafka,
            Inner::Rdkafka(_) => KafkaClient::Rdkafka,
        }
    }
}
