//! The `rdkafka` side of the bus (`KAFKA_CLIENT=rdkafka`): librdkafka, built from the
//! source bundled in `rdkafka-sys`, behind the same [`Producer`](crate::Producer) and
//! [`spawn_consumer`](crate::spawn_consumer) as the `kafka` crate.
//!
//! Only librdkafka's synchronous, poll-driven handles are used (`BaseProducer`,
//! `BaseConsumer`), each on the dedicated blocking thread of its caller (the outbox
//! relay, the consumer loop): nothing runs on the async runtime. librdkafka negotiates
//! protocol versions with each broker, so Apache Kafka 3.x and 4.x both work and there
//! is no legacy-protocol check. Its log lines and global errors go to `tracing`.

pub(crate) mod consumer;
pub(crate) mod producer;

use rdkafka::ClientConfig;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;

/// The settings every librdkafka handle of the platform shares.
pub(crate) fn base_config(brokers: &[String], client_id: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers.join(","))
        .set("client.id", client_id)
        // Java's partitioner (murmur2 of the key), as the `kafka` side uses: an order's
        // events land on the same partition whichever client published them.
        .set("partitioner", "murmur2_random")
        // No Nagle delay on small requests (librdkafka leaves it on): with delayed
        // ACKs it adds tens of milliseconds to a produce or a fetch answer.
        .set("socket.nagle.disable", "true")
        // Reconnects back off up to 5 s, like the `kafka` side's retries.
        .set("reconnect.backoff.max.ms", "5000")
        .set_log_level(RDKafkaLogLevel::Info);
    config
}

/// Forwards librdkafka's log lines and global errors to `tracing` (target
/// `librdkafka`), with the facility (`fac`) as a field. A failed connection (facility
/// `FAIL`, which librdkafka logs as an error) is a warning here, as the `kafka` side's
/// reconnects are: librdkafka retries it by itself.
pub(crate) fn forward_log(level: RDKafkaLogLevel, fac: &str, message: &str) {
    match level {
        RDKafkaLogLevel::Error if fac == "FAIL" => {
            tracing::warn!(target: "librdkafka", fac, "{message}")
        }
        RDKafkaLogLevel::Emerg
        | RDKafkaLogLevel::Alert
        | RDKafkaLogLevel::Critical
        | RDKafkaLogLevel::Error => tracing::error!(target: "librdkafka", fac, "{message}"),
        RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", fac, "{message}"),
        RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
            tracing::info!(target: "librdkafka", fac, "{message}")
        }
        RDKafkaLogLevel::Debug => tracing::debug!(target: "librdkafka", fac, "{message}"),
    }
}

/// A global librdkafka error (a broker down, all brokers down, ...): librdkafka keeps
/// reconnecting by itself, so these are warnings.
pub(crate) fn forward_error(error: &KafkaError, reason: &str) {
    tracing::warn!(target: "librdkafka", error = %error, "{reason}");
}
