//! The client-neutral consumer API: what a consumer reads ([`ConsumerConfig`]), what
//! it hands over ([`Message`]), who handles it ([`Handler`], [`BatchFailure`]) and who
//! is told its lag ([`LagObserver`], [`LAG_INTERVAL`]), and how one poll's messages
//! are handed over and retried ([`hand_over`]). Both consumer loops
//! (`crate::kafka_crate::consumer`, `crate::rd::consumer`) take these types; this file
//! imports neither.

use std::sync::Arc;
use std::time::Duration;

use backoff::{Backoff, RetryPolicy};
use lifecycle::{ErrorChain, stop};
use tokio_util::sync::CancellationToken;

use crate::{KafkaClient, KafkaConnection, KafkaSecurity, RdkafkaProperties};

/// How often a consumer with a [`LagObserver`] measures its lag (two small requests).
pub const LAG_INTERVAL: Duration = Duration::from_secs(2);

/// Longest time between offset commits while messages keep coming (both clients):
/// a commit per poll would be a broker request per poll. A crash redelivers at most
/// this much, which consumers deduplicate anyway.
pub(crate) const COMMIT_INTERVAL: Duration = Duration::from_millis(100);

/// Receives `(topic, partition, lag)`: messages in the partition after the group's
/// committed offset (log end offset minus committed offset, never negative).
#[derive(Clone)]
pub struct LagObserver(Arc<ObserveLag>);

type ObserveLag = dyn Fn(&str, i32, i64) + Send + Sync;

impl LagObserver {
    /// An observer calling `observe(topic, partition, lag)`.
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

    /// Tells the observer one partition's lag.
    pub(crate) fn observe(&self, topic: &str, partition: i32, lag: i64) {
        (self.0)(topic, partition, lag);
    }
}

impl std::fmt::Debug for LagObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LagObserver")
    }
}

/// What a consumer loop reads and how.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// Bootstrap brokers, `host:port`.
    pub brokers: Vec<String>,
    /// The one topic read.
    pub topic: String,
    /// Group under which offsets are committed; with `rdkafka` also the group the
    /// consumer joins (the `kafka` crate has no group membership: see docs/kafka.md).
    pub group: String,
    /// Partitions to read; `None` = all partitions of the topic. `kafka` client only:
    /// with `rdkafka` the group assigns them and `Some` is refused.
    pub partitions: Option<Vec<i32>>,
    /// How long the broker holds a poll open when there is nothing new. Also bounds how
    /// long shutdown waits for an idle consumer.
    pub fetch_max_wait: Duration,
    /// Bytes a poll waits for (up to `fetch_max_wait`) before the broker answers: 1
    /// (the default) answers as soon as anything is there, for latency; more gathers
    /// bigger polls, so fewer transactions, for a consumer whose latency matters less.
    pub fetch_min_bytes: u32,
    /// First delay before a failed handler or poll is retried; doubles up to
    /// `retry_backoff_max`. [`RetryPolicy::DEFAULT`]'s unless a test shortens it.
    pub retry_backoff_initial: Duration,
    /// Longest retry delay. [`RetryPolicy::DEFAULT`]'s unless a test shortens it.
    pub retry_backoff_max: Duration,
    /// The `client.id` the brokers see.
    pub client_id: String,
    /// Told each partition's lag every [`LAG_INTERVAL`]; `None`: not measured.
    pub lag_observer: Option<LagObserver>,
    /// The client library (`KAFKA_CLIENT`): the `kafka` crate or librdkafka.
    pub client: KafkaClient,
    /// TLS and SASL (`KAFKA_SECURITY_PROTOCOL`, ...): anything but plaintext needs
    /// [`KafkaClient::Rdkafka`] (the `kafka` side refuses it).
    pub security: KafkaSecurity,
    /// librdkafka properties set over the platform's
    /// (`KAFKA_RDKAFKA_CONSUMER_PROPERTIES`; rdkafka only).
    pub rdkafka_properties: RdkafkaProperties,
}

impl ConsumerConfig {
    /// A worker's usual settings: all partitions, a 1 s long poll (which also bounds
    /// how long an idle consumer takes to notice shutdown), retries backing off as
    /// the platform's [`RetryPolicy::DEFAULT`].
    pub fn new(brokers: Vec<String>, topic: &str, group: &str, client_id: &str) -> Self {
        Self {
            brokers,
            topic: topic.to_owned(),
            group: group.to_owned(),
            partitions: None,
            fetch_max_wait: Duration::from_secs(1),
            fetch_min_bytes: 1,
            retry_backoff_initial: RetryPolicy::DEFAULT.initial,
            retry_backoff_max: RetryPolicy::DEFAULT.max,
            client_id: client_id.to_owned(),
            lag_observer: None,
            client: KafkaClient::Kafka,
            security: KafkaSecurity::plaintext(),
            rdkafka_properties: RdkafkaProperties::none(),
        }
    }

    /// [`ConsumerConfig::new`] on a service's Kafka section: its brokers, its client
    /// (`KAFKA_CLIENT`), its TLS/SASL settings and its librdkafka properties.
    pub fn from_kafka(kafka: &KafkaConnection, topic: &str, group: &str, client_id: &str) -> Self {
        Self {
            client: kafka.client,
            security: kafka.security.clone(),
            rdkafka_properties: kafka.consumer_properties.clone(),
            ..Self::new(kafka.hosts(), topic, group, client_id)
        }
    }

    /// A service's consumer in one call: its Kafka section ([`Self::from_kafka`]), what
    /// it subscribes to, and its lag reported in `metrics` as `kafka_consumer_lag`.
    pub fn for_service(
        kafka: &KafkaConnection,
        subscription: &Subscription<'_>,
        metrics: &ops_http::Metrics,
    ) -> Self {
        Self {
            partitions: subscription.partitions.selected(),
            lag_observer: Some(LagObserver::metric(metrics)),
            ..Self::from_kafka(
                kafka,
                subscription.topic,
                subscription.group,
                subscription.client_id,
            )
        }
    }
}

/// What one service consumes: a topic, the group its offsets are committed under,
/// the partitions this instance reads (`<SERVICE>_KAFKA_PARTITIONS`; empty: all, or
/// the group's share with `rdkafka`), and the `client.id` the brokers see.
#[derive(Debug, Clone, Copy)]
pub struct Subscription<'a> {
    pub topic: &'a str,
    pub group: &'a str,
    pub partitions: &'a settings::PartitionList,
    pub client_id: &'a str,
}

/// One consumed message.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    /// The topic it was read from.
    pub topic: &'a str,
    /// Its partition.
    pub partition: i32,
    /// Its offset in the partition.
    pub offset: i64,
    /// Its key (empty if none).
    pub key: &'a [u8],
    /// Its value (empty if none).
    pub value: &'a [u8],
    /// Its headers (rdkafka only; always empty from the `kafka` crate).
    pub headers: &'a [(&'a str, &'a [u8])],
    /// With tracing on, the context of the `process` span the consumer opened for it
    /// (continuing the trace its headers carry): what a handler writes with the
    /// events it publishes in turn. `None` with tracing off.
    pub trace: Option<&'a telemetry::TraceHeaders>,
}

/// Longest part of a payload [`Message::payload_preview`] shows.
const PREVIEW_BYTES: usize = 1024;

impl<'a> Message<'a> {
    /// The value of its first header `name`, if any.
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        self.headers
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| *value)
    }

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

/// Processes messages. `Err` means "transient, try again later".
pub trait Handler: Send + 'static {
    /// Why a message could not be handled now (logged with its causes, then retried).
    type Error: std::error::Error + 'static;
    /// Handles one message; `Ok` lets its offset be committed.
    fn handle(&mut self, message: &Message<'_>) -> Result<(), Self::Error>;

    /// Handles the messages one poll returned, from all its partitions: grouped by
    /// partition, partitions in ascending order (so two consumers that overlap lock
    /// rows in the same order), each partition's in offset order. Override it to process them
    /// together (one database transaction for the lot, one commit to wait for per
    /// poll rather than per partition); the default hands them to [`Handler::handle`]
    /// one by one. On failure, [`BatchFailure::handled`] says how many leading
    /// messages are done: their offsets are committed and the rest is retried from
    /// the first one not done.
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
    /// How many leading messages of the batch were handled.
    pub handled: usize,
    /// Why the next one was not.
    pub error: E,
}

/// What [`hand_over`] tells the consumer loop about its progress.
pub(crate) enum Progress<'m, 'a> {
    /// Every message of this one's partition up to it is handled: its offset may be
    /// committed.
    Handled(&'m Message<'a>),
    /// The handler failed at a message and is about to be retried after a delay:
    /// save the progress made so far and report the lag while the partition is stuck.
    Stuck(&'m Message<'a>),
}

/// The `process` span of each message of a poll (none with tracing off), each
/// continuing the trace of its message's `traceparent` header, or starting one (the
/// `kafka` crate's messages have no headers) with the order id from the key.
struct ProcessSpans {
    spans: Vec<(tracing::Span, Option<telemetry::TraceHeaders>)>,
}

impl ProcessSpans {
    fn start(group: &str, messages: &[Message<'_>]) -> Self {
        if !telemetry::enabled() {
            return Self { spans: Vec::new() };
        }
        let spans = messages
            .iter()
            .map(|message| {
                let span = telemetry::spans::kafka_process(
                    message.topic,
                    group,
                    message.partition,
                    message.offset,
                    message.key,
                );
                let parent = telemetry::TraceHeaders::from_bytes(
                    message.header(telemetry::TRACEPARENT),
                    message.header(telemetry::TRACESTATE),
                );
                telemetry::continue_trace(&span, parent.as_ref());
                if let Some(order_id) = std::str::from_utf8(message.key)
                    .ok()
                    .and_then(|key| key.parse::<i64>().ok())
                {
                    telemetry::spans::record_order_id(&span, order_id);
                }
                let context = telemetry::TraceHeaders::of(&span);
                (span, context)
            })
            .collect();
        Self { spans }
    }

    /// The messages with their span's context, or `None` (use them as they are).
    fn messages<'m>(&'m self, messages: &[Message<'m>]) -> Option<Vec<Message<'m>>> {
        if self.spans.is_empty() {
            return None;
        }
        Some(
            messages
                .iter()
                .zip(&self.spans)
                .map(|(message, (_, trace))| Message {
                    trace: trace.as_ref(),
                    ..*message
                })
                .collect(),
        )
    }
}

/// Hands one poll's messages (grouped by partition, offset order within each) to
/// `handler`, retrying from the first message not handled, with backoff, until all
/// are handled. `progress` hears of every step (the client's way to mark offsets and
/// commit): the last handled message of each partition. Returns true if the shutdown
/// was requested while a message was still failing (the rest is left for the next
/// run to redeliver).
pub(crate) fn hand_over<H: Handler>(
    config: &ConsumerConfig,
    handler: &mut H,
    shutdown: &CancellationToken,
    messages: &[Message<'_>],
    mut progress: impl FnMut(Progress<'_, '_>),
) -> bool {
    let processing = ProcessSpans::start(&config.group, messages);
    let traced = processing.messages(messages);
    let messages = traced.as_deref().unwrap_or(messages);
    // A lone message's span is entered, so the handler's log lines and spans are in
    // its trace; a batch's messages each have theirs, but a thread is in one span.
    let _entered = match processing.spans.as_slice() {
        [(span, _)] => Some(span.enter()),
        _ => None,
    };
    let mut pending = messages;
    let mut backoff = Backoff::new(config.retry_backoff_initial, config.retry_backoff_max);
    while let Some(first) = pending.first().copied() {
        let result = handler.handle_batch(pending);
        let handled = match &result {
            Ok(()) => pending.len(),
            Err(failure) => failure.handled.min(pending.len()),
        };
        for done in last_of_each_partition(&pending[..handled]) {
            progress(Progress::Handled(done));
            backoff.reset();
        }
        pending = &pending[handled..];
        let Err(failure) = result else { break };
        // The message the handler is stuck at (after a partial success it may be in
        // another partition than the batch's first).
        let stuck = pending.first().copied().unwrap_or(first);
        let delay = backoff.next_delay();
        tracing::warn!(
            topic = stuck.topic,
            partition = stuck.partition,
            offset = stuck.offset,
            error = %ErrorChain(&failure.error),
            ?delay,
            "handler failed; retrying from the same message"
        );
        progress(Progress::Stuck(&stuck));
        if stop::sleep(shutdown, delay) {
            return true;
        }
    }
    false
}

/// The last message of each partition's run in `messages` (grouped by partition).
fn last_of_each_partition<'m, 'a>(
    messages: &'m [Message<'a>],
) -> impl Iterator<Item = &'m Message<'a>> {
    messages.iter().enumerate().filter_map(move |(i, message)| {
        let next = messages.get(i + 1);
        (next.is_none_or(|next| next.partition != message.partition)).then_some(message)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(partition: i32, offset: i64) -> Message<'static> {
        Message {
            topic: "t",
            partition,
            offset,
            key: b"",
            value: b"",
            headers: &[],
            trace: None,
        }
    }

    #[test]
    fn progress_names_the_last_handled_message_of_each_partition() {
        let poll = [
            message(2, 10),
            message(2, 11),
            message(0, 5),
            message(1, 7),
            message(1, 8),
        ];
        let last: Vec<(i32, i64)> = last_of_each_partition(&poll)
            .map(|m| (m.partition, m.offset))
            .collect();
        assert_eq!(last, [(2, 11), (0, 5), (1, 8)]);
        let prefix: Vec<(i32, i64)> = last_of_each_partition(&poll[..4])
            .map(|m| (m.partition, m.offset))
            .collect();
        assert_eq!(prefix, [(2, 11), (0, 5), (1, 7)]);
        assert_eq!(last_of_each_partition(&[]).count(), 0);
    }
}
