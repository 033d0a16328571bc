//! The client-neutral producer API: how a producer connects and sends
//! ([`ProducerConfig`]), what it sends ([`Record`]), what each client does once
//! ([`Attempts`]) and the retry loop both producers run on it ([`with_retries`],
//! [`send_all`], backing off as [`RetryPolicy::DEFAULT`] says). Both producers
//! (`crate::kafka_crate::producer`, `crate::rd::producer`) take these; this file
//! imports neither.

use std::time::Duration;

use backoff::RetryPolicy;
use lifecycle::{ErrorChain, stop};
use tokio_util::sync::CancellationToken;

use crate::error::BusError;
use crate::{KafkaClient, KafkaSecurity, RdkafkaProperties};

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
    /// librdkafka properties set over the platform's
    /// (`KAFKA_RDKAFKA_PRODUCER_PROPERTIES`; rdkafka only).
    pub rdkafka_properties: RdkafkaProperties,
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
    /// Record headers (e.g. the W3C trace context), sent by rdkafka only: the `kafka`
    /// crate's message format has no headers and leaves them out.
    pub headers: &'a [(&'a str, &'a [u8])],
}

/// What one Kafka client's producer does once; [`with_retries`] and [`send_all`]
/// make the retries around it, the same for both clients.
pub(crate) trait Attempts {
    /// The client's name in log lines (`kafka`, `rdkafka`).
    const CLIENT: &'static str;
    fn config(&self) -> &ProducerConfig;
    /// Cancelled: no further retries (the backoff sleep wakes at once).
    fn shutdown(&self) -> &CancellationToken;
    /// Sends `pending` once and keeps in it only the records that were not
    /// acknowledged; fails if any are left.
    fn try_send_all(&mut self, pending: &mut Vec<Record<'_>>) -> Result<(), BusError>;
    /// Runs before each retry: a client that must drop its connections does it here.
    fn reset(&mut self);
}

/// Sends the records as one batch: Ok only if every record was acknowledged. A retry
/// re-sends only the records that were not acknowledged, so a partial failure does
/// not write the acknowledged records twice.
pub(crate) fn send_all<P: Attempts>(
    producer: &mut P,
    records: &[Record<'_>],
) -> Result<(), BusError> {
    let mut pending: Vec<Record<'_>> = records.to_vec();
    with_retries(producer, |p| p.try_send_all(&mut pending))
}

/// Runs `op` on `producer` until it succeeds, fails with a non-transient error, the
/// producer is shut down, or `max_retries` transient failures have passed (then
/// [`BusError::RetriesExhausted`]). Before each retry [`Attempts::reset`] runs and the
/// backoff delay is slept, cut short by the shutdown token.
pub(crate) fn with_retries<P: Attempts, T>(
    producer: &mut P,
    mut op: impl FnMut(&mut P) -> Result<T, BusError>,
) -> Result<T, BusError> {
    let mut backoff = RetryPolicy::DEFAULT.backoff();
    let max_retries = producer.config().max_retries;
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        match op(producer) {
            Ok(v) => return Ok(v),
            // Shutting down: the caller retries later, if at all.
            Err(e) if producer.shutdown().is_cancelled() => return Err(e),
            Err(e) if e.is_transient() && attempt <= max_retries => {
                let delay = backoff.next_delay();
                tracing::warn!(error = %ErrorChain(&e), attempt, ?delay, "{} produce failed; retrying", P::CLIENT);
                producer.reset();
                if stop::sleep(producer.shutdown(), delay) {
                    return Err(e);
                }
            }
            // Only a transient error ran out of retries; any other is returned as is.
            Err(e) if attempt > 1 && e.is_transient() => {
                return Err(BusError::RetriesExhausted {
                    attempts: attempt,
                    last: Box::new(e),
                });
            }
            Err(e) => return Err(e),
        }
    }
}
