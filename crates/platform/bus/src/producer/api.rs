//! The client-neutral producer API: how a producer connects and sends
//! ([`ProducerConfig`]), what it sends ([`Record`]) and the retry backoff both
//! producers use ([`INITIAL_BACKOFF`], [`MAX_BACKOFF`]). Both producers
//! (`crate::kafka_crate::producer`, `crate::rd::producer`) take these; this file
//! imports neither.

use std::time::Duration;

use crate::{KafkaClient, KafkaSecurity};

/// First retry delay of the producer; doubles up to [`MAX_BACKOFF`].
pub(crate) const INITIAL_BACKOFF: Duration = Duration::from_millis(100);
/// Longest retry delay of the producer.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// How a [`Producer`](crate::Producer) connects and sends.
#[derive(Debug, Clone)]
pub struct ProducerConfig {
    /// Bootstrap brokers, `host:port`.
    pub brokers: Vec<String>,
    /// How long the broker may take to get the acks (sent as the produce timeout).
    pub ack_timeout: Duration,
    /// Retries of a transient failure (0 = one attempt only), with backoff.
    pub max_retries: u32,
    /// The `client.id` the brokers see.
    pub client_id: String,
    /// The client library (`KAFKA_CLIENT`): the `kafka` crate or librdkafka.
    pub client: KafkaClient,
    /// TLS and SASL (`KAFKA_SECURITY_PROTOCOL`, ...): anything but plaintext needs
    /// [`KafkaClient::Rdkafka`] (the `kafka` side refuses it).
    pub security: KafkaSecurity,
}

/// One record: JSON (or any bytes) with a key that picks the partition.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    /// The topic to publish to.
    pub topic: &'a str,
    /// The key (the order id); empty: no key, partitions taken in turn.
    pub key: &'a [u8],
    /// The value (JSON).
    pub value: &'a [u8],
}
