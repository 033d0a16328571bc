//! The consumer loop: a dedicated OS thread that polls, hands each partition's new messages to a
//! [`Handler`] (one by one unless it batches), and commits offsets only after the handler succeeded.
//!
//! - Handler `Err` = transient: the same message is retried with backoff, nothing after
//!   it is handled and its offset is not committed, until `Ok` or shutdown.
//! - Poison messages are the handler's business: it records them and returns `Ok`.
//! - Broker trouble (unreachable at start, gone mid-run, errors on poll or commit): log,
//!   drop the client, reconnect with backoff. The loop never exits on a transient error;
//!   it resumes from the last committed offset (at-least-once).
//! - A broker that answers without the protocol versions the client uses (Apache Kafka
//!   4.x; checked at every connect) ends the loop with [`BusError::UnsupportedBroker`].
//! - Shutdown (the `CancellationToken` cancelled): finish the message in hand, commit,
//!   return. Backoff sleeps wake at once ([`lifecycle::stop::sleep`]).
//! - Lag: with a [`LagObserver`], every [`LAG_INTERVAL`] each partition's log end
//!   offset minus the group's committed offset is reported (for a metric).

use std::collections::HashMap;
use std::io;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use kafka::client::{FetchOffset, GroupOffsetStorage, KafkaClient};
use kafka::consumer::Consumer;
use lifecycle::stop;
use tokio_util::sync::CancellationToken;

use crate::compat;
use crate::error::{BusError, ConsumerError};
use crate::producer::guarded;
use backoff::Backoff;

/// Longest accepted `fetch_max_wait`: the `kafka` crate's socket timeout is 120 s and a
/// long poll must end well before it.
const MAX_FETCH_WAIT: Duration = Duration::from_secs(60);

/// How often a consumer with a [`LagObserver`] measures its lag (two small requests).
pub const LAG_INTERVAL: Duration = Duration::from_secs(2);

/// Receives `(topic, partition, lag)`: messages in the partition after the group's
/// committed offset (log end offset minus committed offset, never negative).
#[derive(Clone)]
pub struct LagObserver(Arc<ObserveLag>);

type ObserveLag = dyn Fn(&str, i32, i64) + Send + Sync;

impl LagObserver {
    pub fn new(observe: impl Fn(&str, i32, i64) + Send + Sync + 'static) -> Self {
        Self(Arc::new(observe))
    }

    /// Sets the gauge `kafka_consumer_lag{topic,partition}` registered in `metrics`
    /// (one series per partition the consumer reads).
    pub fn metric(metrics: &ops_http::Metrics) -> Self {
        let lag = metrics.gauge_family(
            "kafka_consumer_lag",
            "Messages in the partition after this consumer group's committed offset (log end offset minus committed offset), measured every 2 s.",
            ["topic", "partition"],
        );
        Self::new(move |topic, partition, value| {
            lag.with_labels([topic, &partition.to_string()]).set(value);
        })
    }
}

impl std::fmt::Debug for LagObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LagObserver")
    }
}

#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    pub brokers: Vec<String>,
    pub topic: String,
    /// Group under which offsets are committed (no group membership: see DESIGN.md).
    pub group: String,
    /// Partitions to read; `None` = all partitions of the topic.
    pub partitions: Option<Vec<i32>>,
    /// How long the broker holds a poll open when there is nothing new. Also bounds how
    /// long shutdown waits for an idle consumer.
    pub fetch_max_wait: Duration,
    pub retry_backoff_initial: Duration,
    pub retry_backoff_max: Duration,
    pub client_id: String,
    /// Told each partition's lag every [`LAG_INTERVAL`]; `None`: not measured.
    pub lag_observer: Option<LagObserver>,
}

impl ConsumerConfig {
    /// A worker's usual settings: all partitions, a 1 s long poll (which also bounds
    /// how long an idle consumer takes to notice shutdown), retries backing off from
    /// 100 ms to 5 s.
    pub fn new(brokers: Vec<String>, topic: &str, group: &str, client_id: &str) -> Self {
        Self {
            brokers,
            topic: topic.to_owned(),
            group: group.to_owned(),
            partitions: None,
            fetch_max_wait: Duration::from_secs(1),
            retry_backoff_initial: Duration::from_millis(100),
            retry_backoff_max: Duration::from_secs(5),
            client_id: client_id.to_owned(),
            lag_observer: None,
        }
    }
}

/// One consumed message.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub key: &'a [u8],
    pub value: &'a [u8],
}

/// Processes messages. `Err` means "transient, try again later".
/// Longest part of a payload [`Message::payload_preview`] shows.
const PREVIEW_BYTES: usize = 1024;

impl Message<'_> {
    /// The start of the value as text, for logging a message that cannot be handled.
    pub fn payload_preview(&self) -> String {
        let shown = &self.value[..self.value.len().min(PREVIEW_BYTES)];
        let mut text = String::from_utf8_lossy(shown).into_owned();
        if self.value.len() > PREVIEW_BYTES {
            text.push_str("...");
        }
        text
    }

    /// Logs a poison message that is about to be skipped, with what an operator needs
    /// to find it again: topic, partition, offset, key, the start of the payload, why
    /// it was refused and where it is `kept`.
    pub fn log_dead_letter(&self, reason: &dyn std::fmt::Display, kept: &'static str) {
        tracing::error!(
            topic = self.topic,
            partition = self.partition,
            offset = self.offset,
            key = %String::from_utf8_lossy(self.key),
            payload = %self.payload_preview(),
            %reason,
            kept,
            "dead letter: poison message skipped"
        );
    }
}

pub trait Handler: Send + 'static {
    type Error: std::fmt::Display;
    fn handle(&mut self, message: &Message<'_>) -> Result<(), Self::Error>;

    /// Handles the messages one poll returned for one partition, in offset order.
    /// Override it to process them together (one database transaction for the
    /// lot); the default hands them to [`Handler::handle`] one by one. On failure,
    /// [`BatchFailure::handled`] says how many leading messages are done: their
    /// offsets are committed and the rest is retried from the first one not done.
    fn handle_batch(&mut self, messages: &[Message<'_>]) -> Result<(), BatchFailure<Self::Error>> {
        for (handled, message) in messages.iter().enumerate() {
            self.handle(message)
                .map_err(|error| BatchFailure { handled, error })?;
        }
        Ok(())
    }
}

/// A batch that failed part-way: the first `handled` messages succeeded.
#[derive(Debug)]
pub struct BatchFailure<E> {
    pub handled: usize,
    pub error: E,
}

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

/// Starts the consumer loop on a new thread named after the topic; cancelling
/// `shutdown` stops it. Fails only if the configuration is unusable (`InvalidInput`)
/// or the thread cannot be spawned ([`ConsumerError::Spawn`]). Unless shut down, the
/// thread ends only with [`BusError::UnsupportedBroker`] (or a panic).
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
        .spawn(move || run(config, handler, stop))
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
    Ok(())
}

fn connect(config: &ConsumerConfig) -> Result<Consumer, BusError> {
    compat::check_broker_versions(&config.brokers, compat::CHECK_TIMEOUT)?;
    guarded(|| {
        let mut client = KafkaClient::new(config.brokers.clone());
        client.set_client_id(config.client_id.clone());
        // Naming the topic makes brokers with auto-create (devbroker, Kafka's default)
        // create it, so a consumer may start before the first produce.
        client
            .load_metadata(&[&config.topic])
            .map_err(|e| match e {
                kafka::Error::NoHostReachable => BusError::Unreachable {
                    brokers: config.brokers.clone(),
                    last: e.to_string(),
                },
                e => BusError::Kafka(e),
            })?;
        let has_partitions = client
            .topics()
            .partitions(&config.topic)
            .is_some_and(|p| !p.is_empty());
        if !has_partitions {
            return Err(BusError::NoPartitions(config.topic.clone()));
        }
        let builder = Consumer::from_client(client)
            .with_group(config.group.clone())
            .with_offset_storage(Some(GroupOffsetStorage::Kafka))
            // A new group starts at the beginning: nothing produced before its first
            // commit is skipped.
            .with_fallback_offset(FetchOffset::Earliest)
            .with_fetch_max_wait_time(config.fetch_max_wait)
            // Return as soon as one message is there: latency over batching.
            .with_fetch_min_bytes(1)
            .with_client_id(config.client_id.clone());
        let builder = match &config.partitions {
            None => builder.with_topic(config.topic.clone()),
            Some(ps) => builder.with_topic_partitions(config.topic.clone(), ps),
        };
        Ok(builder.create()?)
    })
}

fn commit(consumer: &mut Consumer) -> Result<(), BusError> {
    guarded(|| Ok(consumer.commit_consumed()?))
}

/// What handling one poll's messages ended with.
enum Batch {
    Done,
    ShutdownRequested,
}

fn run<H: Handler>(
    config: ConsumerConfig,
    mut handler: H,
    shutdown: CancellationToken,
) -> Result<(), BusError> {
    let topic = config.topic.as_str();
    let mut backoff = Backoff::new(config.retry_backoff_initial, config.retry_backoff_max);
    let mut consumer: Option<Consumer> = None;
    let mut lag = config.lag_observer.clone().map(LagMeter::new);
    tracing::info!(topic, group = %config.group, partitions = ?config.partitions, "consumer started");
    while !shutdown.is_cancelled() {
        let c = match consumer.as_mut() {
            Some(c) => c,
            None => match connect(&config) {
                Ok(c) => {
                    tracing::info!(topic, group = %config.group, "consumer connected");
                    backoff.reset();
                    consumer.insert(c)
                }
                Err(e @ BusError::UnsupportedBroker { .. }) => {
                    // No retry can help: stop, and let the service report the error.
                    tracing::info!(topic, group = %config.group, "consumer stopped: the broker does not serve the kafka client's protocol versions");
                    return Err(e);
                }
                Err(e) => {
                    let delay = backoff.next_delay();
                    tracing::warn!(topic, error = %e, ?delay, "consumer cannot connect; retrying");
                    stop::sleep(&shutdown, delay);
                    continue;
                }
            },
        };
        let sets = match guarded(|| Ok(c.poll()?)) {
            Ok(s) => s,
            Err(e) => {
                let delay = backoff.next_delay();
                tracing::warn!(topic, error = %e, ?delay, "poll failed; reconnecting");
                consumer = None;
                stop::sleep(&shutdown, delay);
                continue;
            }
        };
        backoff.reset();
        let outcome = handle_batch(&config, &mut handler, &shutdown, c, &sets, &mut lag);
        if let Err(e) = commit(c) {
            let delay = backoff.next_delay();
            tracing::warn!(topic, error = %e, ?delay, "offset commit failed; reconnecting (uncommitted messages will be redelivered)");
            consumer = None;
            if matches!(outcome, Batch::ShutdownRequested) {
                break;
            }
            stop::sleep(&shutdown, delay);
            continue;
        }
        if matches!(outcome, Batch::ShutdownRequested) {
            break;
        }
        if let Some(meter) = lag.as_mut() {
            meter.report_when_due(&config, c);
        }
    }
    if let Some(c) = consumer.as_mut()
        && let Err(e) = commit(c)
    {
        tracing::warn!(topic, error = %e, "final offset commit failed; uncommitted messages will be redelivered");
    }
    tracing::info!(topic, group = %config.group, "consumer stopped");
    Ok(())
}

/// Measures the lag at most every [`LAG_INTERVAL`]: between polls, and also while a
/// failing message is retried (when the lag grows and matters most).
struct LagMeter {
    observer: LagObserver,
    measured: Option<Instant>,
}

impl LagMeter {
    fn new(observer: LagObserver) -> Self {
        Self {
            observer,
            measured: None,
        }
    }

    fn report_when_due(&mut self, config: &ConsumerConfig, consumer: &mut Consumer) {
        if self.measured.is_some_and(|at| at.elapsed() < LAG_INTERVAL) {
            return;
        }
        self.measured = Some(Instant::now());
        if let Err(e) = report_lag(config, consumer, &self.observer) {
            tracing::debug!(topic = %config.topic, error = %e, "cannot measure consumer lag");
        }
    }
}

/// Log end offsets and the group's committed offsets of the consumer's partitions,
/// their difference told to `observer`. A partition without a committed offset is
/// measured from its first offset (where a new group starts).
fn report_lag(
    config: &ConsumerConfig,
    consumer: &mut Consumer,
    observer: &LagObserver,
) -> Result<(), BusError> {
    let group = consumer.group().to_owned();
    let client = consumer.client_mut();
    let topic = config.topic.as_str();
    guarded(|| {
        let latest = client.fetch_topic_offsets(topic, FetchOffset::Latest)?;
        let committed: HashMap<i32, i64> = client
            .fetch_group_topic_offset(&group, topic)?
            .into_iter()
            .map(|o| (o.partition, o.offset))
            .collect();
        let mut earliest: Option<HashMap<i32, i64>> = None;
        for end in latest {
            if matches!(&config.partitions, Some(mine) if !mine.contains(&end.partition)) {
                continue;
            }
            let from = match committed.get(&end.partition) {
                Some(&offset) if offset >= 0 => offset,
                _ => {
                    if earliest.is_none() {
                        earliest = Some(
                            client
                                .fetch_topic_offsets(topic, FetchOffset::Earliest)?
                                .into_iter()
                                .map(|o| (o.partition, o.offset))
                                .collect(),
                        );
                    }
                    earliest
                        .as_ref()
                        .and_then(|e| e.get(&end.partition).copied())
                        .unwrap_or(0)
                }
            };
            (observer.0)(topic, end.partition, (end.offset - from).max(0));
        }
        Ok(())
    })
}

fn handle_batch<H: Handler>(
    config: &ConsumerConfig,
    handler: &mut H,
    shutdown: &CancellationToken,
    consumer: &mut Consumer,
    sets: &kafka::consumer::MessageSets,
    lag: &mut Option<LagMeter>,
) -> Batch {
    for set in sets.iter() {
        let batch: Vec<Message<'_>> = set
            .messages()
            .iter()
            .map(|m| Message {
                topic: set.topic(),
                partition: set.partition(),
                offset: m.offset,
                key: m.key,
                value: m.value,
            })
            .collect();
        let mut pending: &[Message<'_>] = &batch;
        let mut backoff = Backoff::new(config.retry_backoff_initial, config.retry_backoff_max);
        while let Some(first) = pending.first().copied() {
            let result = handler.handle_batch(pending);
            let handled = match &result {
                Ok(()) => pending.len(),
                Err(failure) => failure.handled.min(pending.len()),
            };
            if let Some(done) = handled.checked_sub(1).map(|last| pending[last]) {
                if let Err(e) = consumer.consume_message(done.topic, done.partition, done.offset) {
                    tracing::warn!(error = %e, "cannot mark messages consumed");
                }
                backoff.reset();
            }
            pending = &pending[handled..];
            let Err(failure) = result else { break };
            let delay = backoff.next_delay();
            tracing::warn!(
                topic = first.topic,
                partition = first.partition,
                offset = pending.first().map_or(first.offset, |m| m.offset),
                error = %failure.error,
                ?delay,
                "handler failed; retrying from the same message"
            );
            // Save the progress made before the failing message while it is stuck.
            if let Err(e) = commit(consumer) {
                tracing::debug!(error = %e, "commit while retrying failed");
            }
            if let Some(meter) = lag.as_mut() {
                meter.report_when_due(config, consumer);
            }
            if stop::sleep(shutdown, delay) {
                return Batch::ShutdownRequested;
            }
        }
        if shutdown.is_cancelled() {
            return Batch::ShutdownRequested;
        }
    }
    Batch::Done
}
