//! The consumer loop on librdkafka (`KAFKA_CLIENT=rdkafka`): a `BaseConsumer` that
//! joins the consumer group, on the dedicated thread [`spawn_consumer`](crate::spawn_consumer)
//! starts. The [`Handler`] contract is the `kafka` side's:
//!
//! - `subscribe` with the group: the broker assigns and rebalances the partitions;
//!   scaling out is starting another instance.
//! - Auto-commit is off and offsets are stored by hand: a message's offset is stored,
//!   then committed, only after the handler returned `Ok` for it (as on the `kafka`
//!   side: one poll drains what is there and is handed over as one batch, grouped by
//!   partition). Commits go out at most every [`COMMIT_INTERVAL`] while messages keep
//!   coming and at once when a poll comes back empty, as on the `kafka` side.
//! - Handler `Err`: the same message is retried with backoff, nothing after it in the
//!   poll is handled, the progress before it is committed.
//! - Rebalance: the handler runs on the polling thread, so when librdkafka calls the
//!   rebalance callback (inside a poll) no message is in the handler; on revocation the
//!   callback commits the stored offsets before the partitions are given up, and
//!   messages already fetched for revoked partitions are dropped unhandled (their new
//!   owner reads them from the committed offset).
//! - Broker trouble: librdkafka reconnects by itself; poll errors are logged with
//!   backoff. Shutdown: finish the batch in hand, commit synchronously, leave the group.
//! - Lag: every [`LAG_INTERVAL`](crate::LAG_INTERVAL), for each assigned partition,
//!   the high watermark minus the offset after the last message handled (what the
//!   next commit stores; the group's committed offset for a partition not handled
//!   yet). Both come from what the client already knows (librdkafka's statistics,
//!   every `LAG_INTERVAL`, and this member's own progress), not from broker round trips
//!   on the consumer's thread, which stalled every message behind them; a watermark is
//!   asked for only before the first statistics.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use backoff::Backoff;
use lifecycle::stop;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer as _, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Message as _};
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use crate::consumer::api::{
    COMMIT_INTERVAL, ConsumerConfig, Handler, LAG_INTERVAL, LagObserver, Message, Progress,
    hand_over,
};
use crate::error::BusError;

/// Most messages one poll drains before they are handled.
const MAX_POLL_MESSAGES: usize = 500;
/// How long a lag measurement may wait for a broker's answer (before the first
/// statistics only).
const LAG_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the final commit (shutdown) may take.
const FINAL_COMMIT_TIMEOUT: Duration = Duration::from_secs(10);

/// The consumer's context: logs, the rebalance callback, the commit callback.
struct GroupContext {
    topic: String,
    group: String,
    /// Counts rebalances, so a poll that drained messages can tell whether its
    /// partitions may have changed meanwhile.
    rebalances: AtomicU64,
    /// Per partition of the topic, from librdkafka's last statistics: (high
    /// watermark, the group's committed offset or -1001 if none).
    offsets: Mutex<HashMap<i32, (i64, i64)>>,
}

fn partitions_of(list: &TopicPartitionList) -> Vec<i32> {
    let mut ps: Vec<i32> = list.elements().iter().map(|e| e.partition()).collect();
    ps.sort_unstable();
    ps
}

impl ClientContext for GroupContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        super::forward_log(level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        super::forward_error(&error, reason);
    }

    /// Keeps the topic's watermarks and committed offsets for the lag.
    fn stats(&self, statistics: Statistics) {
        let Some(topic) = statistics.topics.get(&self.topic) else {
            return;
        };
        let mut offsets = self.offsets.lock().unwrap_or_else(PoisonError::into_inner);
        for partition in topic.partitions.values() {
            // -1 is librdkafka's internal "unassigned" partition.
            if partition.partition >= 0 && partition.hi_offset >= 0 {
                offsets.insert(
                    partition.partition,
                    (partition.hi_offset, partition.committed_offset),
                );
            }
        }
    }
}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        self.rebalances.fetch_add(1, Ordering::SeqCst);
        match rebalance {
            Rebalance::Revoke(list) => {
                // The handler is never running here (it runs on this thread, between
                // polls): everything handled is stored; commit it before giving the
                // partitions up, so the next owner starts after it.
                self.warn_if_failed(
                    consumer.commit_consumer_state(CommitMode::Sync),
                    "commit before revocation failed; the next owner may redeliver",
                );
                tracing::info!(
                    topic = %self.topic,
                    group = %self.group,
                    partitions = ?partitions_of(list),
                    "partitions revoked"
                );
            }
            Rebalance::Assign(list) => tracing::info!(
                topic = %self.topic,
                group = %self.group,
                partitions = ?partitions_of(list),
                "partitions assigned"
            ),
            Rebalance::Error(e) => {
                tracing::warn!(topic = %self.topic, error = %e, "rebalance failed")
            }
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        self.warn_if_failed(
            result,
            "offset commit failed (uncommitted messages will be redelivered)",
        );
    }
}

impl GroupContext {
    /// Logs a failed commit as `failure`; nothing stored to commit is no failure.
    fn warn_if_failed(&self, commit: KafkaResult<()>, failure: &str) {
        match commit {
            Err(e) if !is_no_offset(&e) => {
                tracing::warn!(topic = %self.topic, error = %e, "{failure}")
            }
            _ => {}
        }
    }
}

/// Nothing stored to commit: not an error for this loop.
fn is_no_offset(e: &KafkaError) -> bool {
    matches!(e, KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset))
}

fn create(config: &ConsumerConfig) -> Result<BaseConsumer<GroupContext>, BusError> {
    let wait_ms = config.fetch_max_wait.as_millis().clamp(1, 60_000);
    let mut client_config =
        super::base_config(&config.brokers, &config.client_id, &config.security);
    client_config
        .set("group.id", &config.group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        // A new group starts at the beginning: nothing produced before its first
        // commit is skipped.
        .set("auto.offset.reset", "earliest")
        // A member that died is noticed within 10 s (the broker's minimum is 6 s).
        .set("session.timeout.ms", "10000")
        .set("heartbeat.interval.ms", "3000")
        .set("fetch.wait.max.ms", wait_ms.to_string())
        .set(
            "fetch.min.bytes",
            config.fetch_min_bytes.clamp(1, 100_000_000).to_string(),
        )
        // A topic created after the consumer starts is picked up within 5 s.
        .set("topic.metadata.refresh.interval.ms", "5000")
        // The watermarks the lag is measured with (served by the consumer's poll).
        .set(
            "statistics.interval.ms",
            if config.lag_observer.is_some() {
                LAG_INTERVAL.as_millis().to_string()
            } else {
                "0".to_owned()
            },
        );
    super::apply_properties(&mut client_config, &config.rdkafka_properties);
    client_config
        .create_with_context(GroupContext {
            topic: config.topic.clone(),
            group: config.group.clone(),
            rebalances: AtomicU64::new(0),
            offsets: Mutex::new(HashMap::new()),
        })
        .map_err(|e| {
            super::creation_failed(
                "consumer",
                &e,
                &config.rdkafka_properties,
                settings::RdkafkaRole::Consumer.var(),
            )
        })
}

/// Runs the loop until `shutdown` (then `Ok`) or a fatal librdkafka error.
pub(crate) fn run<H: Handler>(
    config: ConsumerConfig,
    mut handler: H,
    shutdown: CancellationToken,
) -> Result<(), BusError> {
    let topic = config.topic.as_str();
    let consumer = create(&config)?;
    consumer
        .subscribe(&[topic])
        .map_err(|e| BusError::Config(format!("cannot subscribe to {topic}: {e}")))?;
    tracing::info!(topic, group = %config.group, client = "rdkafka", "consumer started (group membership)");
    let mut backoff = Backoff::new(config.retry_backoff_initial, config.retry_backoff_max);
    let mut lag = config.lag_observer.clone().map(|o| LagMeter {
        observer: o,
        measured: None,
        handled: HashMap::new(),
    });
    let mut result = Ok(());
    let mut commits = Commits::new();
    while !shutdown.is_cancelled() {
        let first = match consumer.poll(config.fetch_max_wait) {
            None => {
                // Idle: what was handled is committed now.
                commits.commit(&consumer, topic);
                if let Some(meter) = lag.as_mut() {
                    meter.report_when_due(&consumer, topic);
                }
                continue;
            }
            Some(Err(KafkaError::MessageConsumptionFatal(code))) => {
                tracing::error!(topic, error = %code, "fatal consumer error; stopping");
                result = Err(BusError::Rdkafka(KafkaError::MessageConsumptionFatal(code)));
                break;
            }
            // A broker that cannot be reached (one of a cluster down, a leader gone):
            // librdkafka reports each failed connection attempt here and reconnects
            // by itself, and its own log line has already said so. Not a reason to
            // wait: while a broker stays down these events keep coming, and a
            // backoff per event (up to 5 s) would let them queue faster than they are
            // read, so the consumer would fall minutes behind, its group membership
            // lost meanwhile (seen with two of three brokers down).
            Some(Err(e)) if broker_unreachable(&e) => {
                tracing::debug!(topic, error = %e, "a broker is unreachable; librdkafka reconnects");
                continue;
            }
            Some(Err(e)) => {
                let delay = backoff.next_delay();
                tracing::warn!(topic, error = %e, ?delay, "poll failed; retrying");
                stop::sleep(&shutdown, delay);
                continue;
            }
            Some(Ok(m)) => m,
        };
        backoff.reset();
        let rebalances = consumer.context().rebalances.load(Ordering::SeqCst);
        let mut polled = vec![first];
        while polled.len() < MAX_POLL_MESSAGES {
            match consumer.poll(Duration::ZERO) {
                Some(Ok(m)) => polled.push(m),
                Some(Err(e)) => {
                    tracing::debug!(topic, error = %e, "poll while draining failed");
                    break;
                }
                None => break,
            }
        }
        if consumer.context().rebalances.load(Ordering::SeqCst) != rebalances {
            // Partitions may have been revoked while draining: handle only those
            // still ours; the others' new owners start from the committed offsets.
            let assigned = consumer
                .assignment()
                .map(|a| partitions_of(&a))
                .unwrap_or_default();
            polled.retain(|m| assigned.contains(&m.partition()));
        }
        let stopped = handle_polled(
            &config,
            &mut handler,
            &shutdown,
            &consumer,
            &polled,
            &mut lag,
        );
        drop(polled);
        commits.handled();
        if commits.due() {
            commits.commit(&consumer, topic);
        }
        if stopped {
            break;
        }
        if let Some(meter) = lag.as_mut() {
            meter.report_when_due(&consumer, topic);
        }
    }
    final_commit(&consumer, topic);
    consumer.unsubscribe();
    tracing::info!(topic, group = %config.group, "consumer stopped");
    // Dropping the consumer leaves the group (its close runs the revocation, which
    // commits once more: nothing new).
    drop(consumer);
    result
}

/// When the stored offsets are committed: at most every [`COMMIT_INTERVAL`] while
/// messages keep coming, at once when a poll comes back empty (and synchronously at
/// shutdown and before partitions are given up, see [`final_commit`] and the
/// rebalance callback).
struct Commits {
    at: Instant,
    pending: bool,
}

impl Commits {
    fn new() -> Self {
        Self {
            at: Instant::now(),
            pending: false,
        }
    }

    /// A poll's messages were handled (their offsets stored).
    fn handled(&mut self) {
        self.pending = true;
    }

    fn due(&self) -> bool {
        self.pending && self.at.elapsed() >= COMMIT_INTERVAL
    }

    /// Commits the stored offsets, without waiting for the answer, if any are new.
    fn commit(&mut self, consumer: &BaseConsumer<GroupContext>, topic: &str) {
        if !self.pending {
            return;
        }
        self.pending = false;
        self.at = Instant::now();
        if let Err(e) = consumer.commit_consumer_state(CommitMode::Async)
            && !is_no_offset(&e)
        {
            tracing::warn!(topic, error = %e, "offset commit failed (uncommitted messages will be redelivered)");
        }
    }
}

fn final_commit(consumer: &BaseConsumer<GroupContext>, topic: &str) {
    let started = Instant::now();
    match consumer.commit_consumer_state(CommitMode::Sync) {
        Ok(()) => {}
        Err(e) if is_no_offset(&e) => {}
        Err(e) => tracing::warn!(
            topic,
            error = %e,
            took = ?started.elapsed().min(FINAL_COMMIT_TIMEOUT),
            "final offset commit failed; uncommitted messages will be redelivered"
        ),
    }
}

/// Hands the polled messages to the handler in one batch, grouped by partition (one
/// handler call, so one transaction in the workers, per poll), and stores each
/// partition's offset after its messages are handled. Returns whether shutdown was
/// requested.
fn handle_polled<H: Handler>(
    config: &ConsumerConfig,
    handler: &mut H,
    shutdown: &CancellationToken,
    consumer: &BaseConsumer<GroupContext>,
    polled: &[BorrowedMessage<'_>],
    lag: &mut Option<LagMeter>,
) -> bool {
    // Group by partition, offsets in order; partitions in ascending order, as
    // `Handler::handle_batch` promises.
    let mut order: Vec<i32> = Vec::new();
    let mut by_partition: HashMap<i32, Vec<Message<'_>>> = HashMap::new();
    let headers: Vec<Vec<(&str, &[u8])>> = polled.iter().map(headers_of).collect();
    for (m, headers) in polled.iter().zip(&headers) {
        let partition = m.partition();
        by_partition
            .entry(partition)
            .or_insert_with(|| {
                order.push(partition);
                Vec::new()
            })
            .push(Message {
                topic: m.topic(),
                partition,
                offset: m.offset(),
                key: m.key().unwrap_or_default(),
                value: m.payload().unwrap_or_default(),
                headers,
                trace: None,
            });
    }
    order.sort_unstable();
    let batch: Vec<Message<'_>> = order
        .iter()
        .filter_map(|partition| by_partition.remove(partition))
        .flatten()
        .collect();
    let on_progress = |progress: Progress<'_, '_>| match progress {
        Progress::Handled(done) => {
            if let Some(meter) = lag.as_mut() {
                meter.handled.insert(done.partition, done.offset + 1);
            }
            // The next offset to read is stored: committed with the next commit.
            if let Err(e) = store_next(consumer, done) {
                tracing::warn!(
                    topic = done.topic,
                    partition = done.partition,
                    error = %e,
                    "cannot store the offset (partition revoked?); it may be redelivered"
                );
            }
        }
        Progress::Stuck(first) => {
            // Save the progress made before the failing message while it is stuck.
            if let Err(e) = consumer.commit_consumer_state(CommitMode::Async)
                && !is_no_offset(&e)
            {
                tracing::debug!(error = %e, "commit while retrying failed");
            }
            if let Some(meter) = lag.as_mut() {
                meter.report_when_due(consumer, first.topic);
            }
        }
    };
    hand_over(config, handler, shutdown, &batch, on_progress) || shutdown.is_cancelled()
}

/// Stores `done.offset + 1`, the next offset to read, for the next commit
/// (`rd_kafka_offsets_store` stores the offset as given; `store_offset` would add 1).
fn store_next(consumer: &BaseConsumer<GroupContext>, done: &Message<'_>) -> KafkaResult<()> {
    let mut list = TopicPartitionList::new();
    list.add_partition_offset(done.topic, done.partition, Offset::Offset(done.offset + 1))?;
    consumer.store_offsets(&list)
}

/// Measures the lag of the assigned partitions at most every [`LAG_INTERVAL`].
struct LagMeter {
    observer: LagObserver,
    measured: Option<Instant>,
    /// Per partition, the offset after the last message this member handled.
    handled: HashMap<i32, i64>,
}

impl LagMeter {
    fn report_when_due(&mut self, consumer: &BaseConsumer<GroupContext>, topic: &str) {
        if self.measured.is_some_and(|at| at.elapsed() < LAG_INTERVAL) {
            return;
        }
        self.measured = Some(Instant::now());
        if let Err(e) = report_lag(consumer, topic, &self.observer, &self.handled) {
            tracing::debug!(topic, error = %e, "cannot measure consumer lag");
        }
    }
}

/// High watermark minus the next offset to handle, for each partition assigned to
/// this member (see the module doc): the offset after the last message it handled,
/// else the group's committed offset, else the low watermark.
fn report_lag(
    consumer: &BaseConsumer<GroupContext>,
    topic: &str,
    observer: &LagObserver,
    handled: &HashMap<i32, i64>,
) -> Result<(), KafkaError> {
    let assignment = consumer.assignment()?;
    for element in assignment.elements_for_topic(topic) {
        let partition = element.partition();
        let known = consumer
            .context()
            .offsets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&partition)
            .copied();
        let (high, committed, low) = match known {
            Some((high, committed)) => (high, committed, 0),
            None => {
                let (low, high) = consumer.fetch_watermarks(topic, partition, LAG_TIMEOUT)?;
                (high, -1, low)
            }
        };
        let from = handled
            .get(&partition)
            .copied()
            .or((committed >= 0).then_some(committed))
            .unwrap_or(low);
        observer.observe(topic, partition, (high - from).max(0));
    }
    Ok(())
}

/// A consumer error that only says a broker (or every broker) could not be reached:
/// librdkafka keeps reconnecting on its own.
fn broker_unreachable(error: &KafkaError) -> bool {
    matches!(
        error,
        KafkaError::MessageConsumption(
            RDKafkaErrorCode::BrokerTransportFailure | RDKafkaErrorCode::AllBrokersDown
        )
    )
}

/// A message's headers; none (no allocation) for a message without any.
fn headers_of<'a>(message: &'a BorrowedMessage<'_>) -> Vec<(&'a str, &'a [u8])> {
    use rdkafka::message::Headers as _;
    message.headers().map_or_else(Vec::new, |headers| {
        headers
            .iter()
            .filter_map(|header| Some((header.key, header.value?)))
            .collect()
    })
}
