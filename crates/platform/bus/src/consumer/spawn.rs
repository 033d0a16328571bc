//! Starting a consumer: [`spawn_consumer`] checks the [`ConsumerConfig`], starts the
//! dedicated thread and runs on it the loop of the client [`ConsumerConfig::client`]
//! names (`crate::kafka_crate::consumer` or `crate::rd::consumer`); the
//! [`ConsumerHandle`] waits for that thread.

use std::io;
use std::thread;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::KafkaClient;
use crate::consumer::api::{ConsumerConfig, Handler};
use crate::error::{BusError, ConsumerError};
use crate::kafka_crate;
use crate::rd;

/// Longest accepted `fetch_max_wait`: the `kafka` crate's socket timeout is 120 s and a
/// long poll must end well before it.
const MAX_FETCH_WAIT: Duration = Duration::from_secs(60);

/// The running consumer thread.
#[derive(Debug)]
pub struct ConsumerHandle {
    thread: thread::JoinHandle<Result<(), BusError>>,
    shutdown: CancellationToken,
}

impl ConsumerHandle {
    /// Waits for the thread (cancel its token first).
    pub fn join(self) -> Result<(), BusError> {
        self.thread.join().map_err(|_| BusError::ConsumerPanicked)?
    }

    /// Whether the thread has ended.
    pub fn is_finished(&self) -> bool {
        self.thread.is_finished()
    }

    /// For async services: waits, off the runtime, for the thread to end. After its
    /// token is cancelled that is `Ok` (message in hand finished, offsets committed);
    /// a consumer that ends by itself before that is an error.
    pub async fn stopped(self) -> Result<(), ConsumerError> {
        let shutdown = self.shutdown.clone();
        match tokio::task::spawn_blocking(move || self.join()).await {
            Ok(Ok(())) if shutdown.is_cancelled() => Ok(()),
            Ok(Ok(())) => Err(BusError::ConsumerStopped.into()),
            Ok(Err(err)) => Err(err.into()),
            Err(_) => Err(BusError::ConsumerPanicked.into()),
        }
    }
}

/// Starts the consumer loop on a new thread named after the topic, on the client
/// [`ConsumerConfig::client`] names; cancelling `shutdown` stops it. Fails only if the
/// configuration is unusable (`InvalidInput`) or the thread cannot be spawned
/// ([`ConsumerError::Spawn`]). Unless shut down, the thread ends only with
/// [`BusError::UnsupportedBroker`] (`kafka`), a fatal librdkafka error or a
/// configuration librdkafka refuses (`rdkafka`), or a panic.
pub fn spawn_consumer<H: Handler>(
    config: ConsumerConfig,
    handler: H,
    shutdown: CancellationToken,
) -> Result<ConsumerHandle, ConsumerError> {
    validate(&config)
        .map_err(|e| ConsumerError::Spawn(io::Error::new(io::ErrorKind::InvalidInput, e)))?;
    // Linux keeps 15 bytes of a thread name.
    let name: String = format!("bus-{}", config.topic).chars().take(15).collect();
    let stop = shutdown.clone();
    let thread = thread::Builder::new()
        .name(name)
        .spawn(move || match config.client {
            KafkaClient::Kafka => kafka_crate::consumer::run(config, handler, stop),
            KafkaClient::Rdkafka => rd::consumer::run(config, handler, stop),
        })
        .map_err(ConsumerError::Spawn)?;
    Ok(ConsumerHandle { thread, shutdown })
}

fn validate(c: &ConsumerConfig) -> Result<(), String> {
    if c.brokers.is_empty() {
        return Err("no brokers given".into());
    }
    if c.topic.is_empty() {
        return Err("no topic given".into());
    }
    if c.group.is_empty() {
        return Err("no consumer group given (offsets are committed under it)".into());
    }
    if c.fetch_max_wait > MAX_FETCH_WAIT {
        return Err(format!("fetch_max_wait must be at most {MAX_FETCH_WAIT:?}"));
    }
    if matches!(&c.partitions, Some(p) if p.is_empty()) {
        return Err("an empty partition list reads nothing; use None for all".into());
    }
    if c.client == KafkaClient::Rdkafka && c.partitions.is_some() {
        return Err(settings::KafkaClient::PARTITIONS_WITH_RDKAFKA.into());
    }
    crate::rd::check_security(c.client, &c.security)?;
    crate::rd::check_properties(
        c.client,
        &c.rdkafka_properties,
        settings::RdkafkaRole::Consumer,
    )
}
