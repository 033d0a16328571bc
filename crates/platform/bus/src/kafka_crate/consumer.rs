//! The consumer loop on the `kafka` crate (`KAFKA_CLIENT=kafka`), on the dedicated
//! thread [`spawn_consumer`](crate::spawn_consumer) starts. No group membership: it
//! reads the partitions it is given and uses the group only to store offsets.
//!
//! - Broker trouble (unreachable at start, gone mid-run, errors on poll or commit): log,
//!   drop the client, reconnect with backoff. The loop never exits on a transient error;
//!   it resumes from the last committed offset (at-least-once).
//! - A broker that answers without the protocol versions the client uses (Apache Kafka
//!   4.x; checked at every connect) ends the loop with [`BusError::UnsupportedBroker`].
//! - Lag: every [`LAG_INTERVAL`], each partition's log end offset minus the group's
//!   committed offset.
//! - Offsets of handled messages are committed at most every [`COMMIT_INTERVAL`], after
//!   a poll that brought nothing (so an idle consumer has committed everything), and at
//!   shutdown. The kafka crate commits synchronously: one broker round trip (and the
//!   broker's write) per poll otherwise held up every message behind it. Handlers are
//!   idempotent (at-least-once), so a crash or a reconnect that loses up to an
//!   interval of commits only redelivers messages they skip. A failed poll first tries
//!   to commit what was handled, then reconnects.

use std::collections::HashMap;
use std::time::Instant;

use backoff::Backoff;
use kafka::client::{FetchOffset, GroupOffsetStorage, KafkaClient as CrateClient};
use kafka::consumer::Consumer;
use lifecycle::{ErrorChain, stop};
use tokio_util::sync::CancellationToken;

use super::guarded;
use crate::compat;
use crate::consumer::api::{
    COMMIT_INTERVAL, ConsumerConfig, Handler, LAG_INTERVAL, LagObserver, Message, Progress,
    hand_over,
};
use crate::error::BusError;

fn connect(config: &ConsumerConfig) -> Result<Consumer, BusError> {
    compat::check_broker_versions(&config.brokers, compat::CHECK_TIMEOUT)?;
    guarded(|| {
        let mut client = CrateClient::new(config.brokers.clone());
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
            .with_fetch_min_bytes(i32::try_from(config.fetch_min_bytes.max(1)).unwrap_or(i32::MAX))
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

/// Runs the loop until `shutdown` (then `Ok`) or an unsupported broker.
pub(crate) fn run<H: Handler>(
    config: ConsumerConfig,
    mut handler: H,
    shutdown: CancellationToken,
) -> Result<(), BusError> {
    let topic = config.topic.as_str();
    let mut backoff = Backoff::new(config.retry_backoff_initial, config.retry_backoff_max);
    let mut consumer: Option<Consumer> = None;
    let mut lag = config.lag_observer.clone().map(LagMeter::new);
    let mut committed_at = Instant::now();
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
                    tracing::warn!(topic, error = %ErrorChain(&e), ?delay, "consumer cannot connect; retrying");
                    stop::sleep(&shutdown, delay);
                    continue;
                }
            },
        };
        let sets = match guarded(|| Ok(c.poll()?)) {
            Ok(s) => s,
            Err(e) => {
                let delay = backoff.next_delay();
                tracing::warn!(topic, error = %ErrorChain(&e), ?delay, "poll failed; reconnecting");
                // Best effort: the handled messages' offsets may not be committed yet.
                if let Err(e) = commit(c) {
                    tracing::debug!(topic, error = %ErrorChain(&e), "commit before reconnecting failed");
                }
                consumer = None;
                stop::sleep(&shutdown, delay);
                continue;
            }
        };
        backoff.reset();
        let outcome = handle_batch(&config, &mut handler, &shutdown, c, &sets, &mut lag);
        let commit_due = sets.is_empty()
            || matches!(outcome, Batch::ShutdownRequested)
            || committed_at.elapsed() >= COMMIT_INTERVAL;
        if !commit_due {
            continue;
        }
        committed_at = Instant::now();
        if let Err(e) = commit(c) {
            let delay = backoff.next_delay();
            tracing::warn!(topic, error = %ErrorChain(&e), ?delay, "offset commit failed; reconnecting (uncommitted messages will be redelivered)");
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
        tracing::warn!(topic, error = %ErrorChain(&e), "final offset commit failed; uncommitted messages will be redelivered");
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
            tracing::debug!(topic = %config.topic, error = %ErrorChain(&e), "cannot measure consumer lag");
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
            observer.observe(topic, end.partition, (end.offset - from).max(0));
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
    // The whole poll at once, grouped by partition: one handler call (one
    // transaction in the workers) per poll, not one per partition. Partitions in
    // ascending order, as `Handler::handle_batch` promises.
    let mut sets: Vec<_> = sets.iter().collect();
    sets.sort_by_key(|set| set.partition());
    let batch: Vec<Message<'_>> = sets
        .into_iter()
        .flat_map(|set| {
            set.messages().iter().map(move |m| Message {
                topic: set.topic(),
                partition: set.partition(),
                offset: m.offset,
                key: m.key,
                value: m.value,
                headers: &[],
                trace: None,
            })
        })
        .collect();
    let on_progress = |progress: Progress<'_, '_>| match progress {
        Progress::Handled(done) => {
            if let Err(e) = consumer.consume_message(done.topic, done.partition, done.offset) {
                tracing::warn!(error = %ErrorChain(&e), "cannot mark messages consumed");
            }
        }
        Progress::Stuck(_) => {
            // Save the progress made before the failing message while it is stuck.
            if let Err(e) = commit(consumer) {
                tracing::debug!(error = %ErrorChain(&e), "commit while retrying failed");
            }
            if let Some(meter) = lag.as_mut() {
                meter.report_when_due(config, consumer);
            }
        }
    };
    if hand_over(config, handler, shutdown, &batch, on_progress) || shutdown.is_cancelled() {
        return Batch::ShutdownRequested;
    }
    Batch::Done
}
