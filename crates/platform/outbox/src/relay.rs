//! The relay loop on its dedicated thread.

use backoff::RetryPolicy;
use lifecycle::ErrorChain;
use std::{
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use lifecycle::stop;
use ops_http::{Counter, Gauge, Histogram, Metrics};
use pgsetup::Pool;
use postgres::{Client, fallible_iterator::FallibleIterator};
use tokio_util::sync::CancellationToken;

use crate::{CHANNEL, ClaimedEvent, OutboxTable, RelayError};

/// How the relay publishes and how often it looks without being told.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// DSN for the dedicated LISTEN connection (the pool serves the rest).
    pub dsn: String,
    pub brokers: Vec<String>,
    pub batch_size: u32,
    /// How long a claim lasts: longer than a batch takes to publish and be marked
    /// sent (by the next claim, or retried with backoff while the database is down);
    /// a claim that runs out first is published again (consumers skip it).
    pub lease: Duration,
    /// Fallback poll when no NOTIFY arrives (`KAFKA_PERIOD`/`KAFKA_SENDER_PERIOD`).
    pub poll_interval: Duration,
    /// Broker acknowledgement timeout per batch.
    pub ack_timeout: Duration,
    /// The `client.id` the brokers see.
    pub client_id: String,
    /// The Kafka client library (`KAFKA_CLIENT`).
    pub kafka_client: bus::KafkaClient,
    /// Kafka TLS and SASL (`KAFKA_SECURITY_PROTOCOL`, ...; rdkafka only).
    pub kafka_security: bus::KafkaSecurity,
    /// librdkafka properties over the platform's
    /// (`KAFKA_RDKAFKA_PRODUCER_PROPERTIES`; rdkafka only).
    pub kafka_properties: bus::RdkafkaProperties,
}

/// The relay's thread.
pub struct RelayHandle {
    thread: JoinHandle<Result<(), bus::BusError>>,
}

impl RelayHandle {
    /// Waits for the relay to stop: `Ok` after the shutdown token is cancelled, or the
    /// error that stopped it ([`bus::BusError::UnsupportedBroker`]: see [`spawn_relay`]).
    pub fn join(self) -> Result<(), bus::BusError> {
        match self.thread.join() {
            Ok(result) => result,
            Err(_) => {
                tracing::error!("outbox relay thread panicked");
                Ok(())
            }
        }
    }

    pub fn is_finished(&self) -> bool {
        self.thread.is_finished()
    }
}

/// Starts the relay on its own OS thread: the `kafka` and `postgres` clients
/// block, so they stay off the async runtime.
///
/// With the `kafka` client it first checks that the brokers serve the protocol versions
/// that client uses (see [`bus::check_broker_versions`]; every producer connect checks it
/// again; `rdkafka` negotiates versions and has no such check). A
/// broker that does not stops the relay: it cancels `shutdown`, so the service stops
/// too, and [`RelayHandle::join`] returns the error. Every other failure is retried.
pub fn spawn_relay(
    config: RelayConfig,
    pool: Pool,
    metrics: &Metrics,
    shutdown: CancellationToken,
) -> std::io::Result<RelayHandle> {
    let relay = Relay {
        table: OutboxTable::new(pool),
        published: metrics.counter(
            "outbox_published_total",
            "Outbox events published to Kafka.",
        ),
        failures: metrics.counter(
            "outbox_publish_failures_total",
            "Failed relay attempts (database or broker); each is retried.",
        ),
        backlog: metrics.gauge("outbox_backlog", "Outbox events not yet published."),
        publish_delay: metrics.histogram(
            "outbox_publish_delay_seconds",
            "Time from an event's insert to its publish being acknowledged by Kafka.",
        ),
        config,
        shutdown,
        producer: None,
        listener: None,
        unmarked: Acknowledged(Vec::new()),
        backlog_counted_at: None,
    };
    let thread = thread::Builder::new()
        .name("outbox-relay".to_owned())
        .spawn(move || relay.run())?;
    Ok(RelayHandle { thread })
}

struct Relay {
    config: RelayConfig,
    table: OutboxTable,
    shutdown: CancellationToken,
    producer: Option<bus::Producer>,
    listener: Option<Client>,
    /// The last batch: acknowledged by the broker, marked sent by the next claim.
    unmarked: Acknowledged,
    published: Counter,
    failures: Counter,
    backlog: Gauge,
    publish_delay: Histogram,
    backlog_counted_at: Option<Instant>,
}

/// The backlog gauge is refreshed at most this often: under steady load the relay
/// goes idle after nearly every batch, and a count per wake-up would double its queries.
const BACKLOG_REFRESH: Duration = Duration::from_secs(1);

/// How long each broker gets to answer the start-up protocol-version check.
const VERSION_CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// The ids of rows the broker acknowledged. Only [`Relay::publish`] makes one, after
/// every record of the batch was acknowledged, and rows are marked sent only through
/// one: a batch that was not acknowledged (no producer, connect failed, send failed)
/// cannot be marked. The relay marks a batch in the statement that claims the next
/// (one round trip per cycle), or on its own when it stops.
struct Acknowledged(Vec<i64>);

/// Longest single wait for a NOTIFY: a blocking socket read cannot be woken by the
/// shutdown token, so shutdown is noticed within this.
const SLICE: Duration = Duration::from_millis(200);

impl Relay {
    fn run(mut self) -> Result<(), bus::BusError> {
        tracing::info!(brokers = ?self.config.brokers, kafka_client = %self.config.kafka_client, "outbox relay started");
        match bus::check_broker_versions_for(
            self.config.kafka_client,
            &self.config.brokers,
            VERSION_CHECK_TIMEOUT,
        ) {
            Err(err @ bus::BusError::UnsupportedBroker { .. }) => return self.stop_on(err),
            // Unreachable for now: publishing retries, and its connect checks again.
            Err(err) => {
                tracing::debug!(error = %ErrorChain(&err), "broker version check inconclusive")
            }
            Ok(()) => {}
        }
        // Retry delays after a failed attempt: the platform's one retry policy.
        let mut backoff = RetryPolicy::DEFAULT.backoff();
        // Whether the last attempt failed: then the database may be gone, and the
        // final mark below is not tried (it would wait out the pool's timeout).
        let mut last_failed = false;
        while !self.shutdown.is_cancelled() {
            // LISTEN before claiming, so a commit between the claim and the wait
            // still wakes us.
            self.ensure_listening();
            let step = self.relay_batch();
            last_failed = step.is_err();
            match step {
                Ok(0) => {
                    backoff.reset();
                    self.update_backlog();
                    self.wait_for_notify();
                }
                Ok(_) => backoff.reset(),
                Err(RelayError::Broker(err @ bus::BusError::UnsupportedBroker { .. })) => {
                    return self.stop_on(err);
                }
                Err(err) => {
                    self.failures.inc();
                    let delay = backoff.next_delay();
                    tracing::warn!(
                        error = %ErrorChain(&err),
                        retry_in = ?delay,
                        "outbox relay attempt failed"
                    );
                    stop::sleep(&self.shutdown, delay);
                }
            }
        }
        if !last_failed {
            self.mark_unmarked_on_stop();
        } else if !self.unmarked.0.is_empty() {
            tracing::warn!(
                count = self.unmarked.0.len(),
                "outbox relay stopped with published events it could not mark sent; they will be published again (consumers skip them)"
            );
        }
        tracing::info!("outbox relay stopped");
        Ok(())
    }

    /// Marks the last acknowledged batch before the relay exits, so a restart does not
    /// publish it again (if this fails, it is published again: consumers skip it).
    fn mark_unmarked_on_stop(&mut self) {
        if self.unmarked.0.is_empty() {
            return;
        }
        match self.table.mark_sent(&self.unmarked.0) {
            Ok(waited) => self.count_published(&waited),
            Err(err) => tracing::warn!(
                error = %ErrorChain(&err),
                count = self.unmarked.0.len(),
                "could not mark the last published events sent; they will be published again (consumers skip them)"
            ),
        }
    }

    /// Stops the relay and the service on an error no retry can fix.
    fn stop_on(&self, err: bus::BusError) -> Result<(), bus::BusError> {
        tracing::info!(
            "outbox relay stopped: the broker does not serve the kafka client's protocol versions"
        );
        self.shutdown.cancel();
        Err(err)
    }

    /// Marks the previous batch sent, claims and publishes the next; returns how many
    /// rows it claimed (0: nothing was waiting, and nothing is left unmarked).
    fn relay_batch(&mut self) -> Result<usize, RelayError> {
        let step = self.table.mark_sent_and_claim(
            &self.unmarked.0,
            self.config.batch_size,
            self.config.lease,
        )?;
        self.unmarked.0.clear();
        self.count_published(&step.waited);
        let batch = step.claimed;
        if batch.is_empty() {
            return Ok(0);
        }
        match self.publish(&batch) {
            Ok(acknowledged) => {
                self.unmarked = acknowledged;
                Ok(batch.len())
            }
            Err(err) => {
                // Drop the producer so the next attempt reconnects (broker restarts
                // change leaders and connections).
                self.producer = None;
                let ids: Vec<i64> = batch.iter().map(|event| event.event_id).collect();
                if let Err(release_err) = self.table.release(&ids) {
                    tracing::debug!(
                        error = %ErrorChain(&release_err),
                        "could not release claim; lease will expire"
                    );
                }
                Err(err)
            }
        }
    }

    /// Sends the batch and waits for the broker's acknowledgement of every row: the
    /// only way to get the [`Acknowledged`] that marking needs.
    fn publish(&mut self, batch: &[ClaimedEvent]) -> Result<Acknowledged, RelayError> {
        // With tracing on, one `send` span per row, continuing the trace the row was
        // written in; its context goes out in the record's headers.
        let sends: Vec<(tracing::Span, Option<telemetry::TraceHeaders>)> = if telemetry::enabled() {
            batch.iter().map(send_span).collect()
        } else {
            Vec::new()
        };
        let headers: Vec<Vec<(&str, &[u8])>> = sends
            .iter()
            .map(|(_, trace)| {
                trace
                    .iter()
                    .flat_map(|trace| trace.pairs())
                    .map(|(key, value)| (key, value.as_bytes()))
                    .collect()
            })
            .collect();
        let records: Vec<bus::Record<'_>> = batch
            .iter()
            .enumerate()
            .map(|(index, event)| bus::Record {
                topic: &event.topic,
                key: event.message_key.as_bytes(),
                value: event.payload.as_bytes(),
                headers: headers.get(index).map_or(&[], Vec::as_slice),
            })
            .collect();
        let sent = self
            .producer()
            .and_then(|producer| Ok(producer.send_all(&records)?));
        if let Err(err) = &sent {
            for (span, _) in &sends {
                telemetry::spans::record_error(span, &ErrorChain(err));
            }
        }
        sent?;
        Ok(Acknowledged(
            batch.iter().map(|event| event.event_id).collect(),
        ))
    }

    /// The connected producer, connecting first if there is none: an error, never a
    /// missing producer, when the broker cannot be reached.
    fn producer(&mut self) -> Result<&mut bus::Producer, RelayError> {
        let producer = match self.producer.take() {
            Some(producer) => producer,
            None => bus::Producer::connect_with_shutdown(
                bus::ProducerConfig {
                    brokers: self.config.brokers.clone(),
                    ack_timeout: self.config.ack_timeout,
                    max_retries: 2,
                    client_id: self.config.client_id.clone(),
                    client: self.config.kafka_client,
                    security: self.config.kafka_security.clone(),
                    rdkafka_properties: self.config.kafka_properties.clone(),
                },
                self.shutdown.clone(),
            )?,
        };
        Ok(self.producer.insert(producer))
    }

    /// Counts rows just marked sent, with how long each waited from insert to mark.
    fn count_published(&self, waited: &[Duration]) {
        if waited.is_empty() {
            return;
        }
        for delay in waited {
            self.publish_delay.observe(*delay);
        }
        self.published.add(waited.len() as u64);
        tracing::debug!(count = waited.len(), "published outbox events");
    }

    fn ensure_listening(&mut self) {
        if self
            .listener
            .as_ref()
            .is_some_and(|client| !client.is_closed())
        {
            return;
        }
        // Same TLS settings (sslmode, sslrootcert) as the pool.
        self.listener = match pgsetup::connect(&self.config.dsn).and_then(|mut client| {
            client
                .batch_execute(&format!("LISTEN {CHANNEL}"))
                .map_err(pgsetup::SetupError::Connect)?;
            Ok(client)
        }) {
            Ok(client) => Some(client),
            Err(err) => {
                tracing::debug!(error = %ErrorChain(&err), "LISTEN connection unavailable; polling instead");
                None
            }
        };
    }

    /// Sleeps until a NOTIFY, the poll interval, or shutdown, whichever is first.
    fn wait_for_notify(&mut self) {
        let deadline = Instant::now() + self.config.poll_interval;
        while !self.shutdown.is_cancelled() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            let Some(listener) = self.listener.as_mut() else {
                stop::sleep(&self.shutdown, left);
                return;
            };
            let woken = {
                let mut notifications = listener.notifications();
                let first = notifications.timeout_iter(left.min(SLICE)).next();
                if let Ok(Some(_)) = first {
                    // Drain the rest: one claim serves them all.
                    while let Ok(Some(_)) = notifications.iter().next() {}
                }
                first
            };
            match woken {
                Ok(Some(_)) => return,
                Ok(None) => {}
                Err(err) => {
                    tracing::debug!(error = %ErrorChain(&err), "LISTEN connection lost");
                    self.listener = None;
                }
            }
        }
    }

    fn update_backlog(&mut self) {
        if self
            .backlog_counted_at
            .is_some_and(|at| at.elapsed() < BACKLOG_REFRESH)
        {
            return;
        }
        self.backlog_counted_at = Some(Instant::now());
        if let Ok(count) = self.table.backlog() {
            self.backlog.set(count);
        }
    }
}

/// The `send` span of one row and the context it passes on.
fn send_span(event: &ClaimedEvent) -> (tracing::Span, Option<telemetry::TraceHeaders>) {
    let span = telemetry::spans::kafka_send(&event.topic, &event.message_key, event.event_id);
    let written_in = event
        .trace_context
        .as_deref()
        .and_then(telemetry::TraceHeaders::from_stored);
    telemetry::continue_trace(&span, written_in.as_ref());
    if let Ok(order_id) = event.message_key.parse::<i64>() {
        telemetry::spans::record_order_id(&span, order_id);
    }
    let context = telemetry::TraceHeaders::of(&span);
    (span, context)
}
