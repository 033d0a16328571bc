//! The librdkafka producer behind [`Producer`](crate::Producer) with
//! `KAFKA_CLIENT=rdkafka`: a `ThreadedProducer`, whose own thread serves librdkafka's
//! events; the caller's (blocking) thread enqueues a batch and sleeps until the batch's
//! delivery reports are in (a condition variable the report callback signals), instead
//! of polling in short slices.
//!
//! acks=all with idempotence on (librdkafka retries within a batch without writing a
//! record twice or reordering a partition); a batch is Ok only once every record's
//! delivery report says acknowledged. Records whose report is a failure are re-sent,
//! with backoff, up to `max_retries` times; the stop signal cuts the waits short.

use std::sync::{Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{
    BaseRecord, DeliveryResult, Producer as _, ProducerContext, ThreadedProducer,
};
use tokio_util::sync::CancellationToken;

use crate::error::BusError;
use crate::producer::api::{self, ProducerConfig, Record};

/// How long a delivery may still be waited for once the stop signal is given.
const STOP_GRACE: Duration = Duration::from_secs(1);
/// The longest sleep between two checks of the stop signal while reports are awaited
/// (a report wakes the sleeper at once).
const WAIT_SLICE: Duration = Duration::from_millis(50);
/// How long an enqueue refused for a full queue waits for reports to free room.
const QUEUE_FULL_WAIT: Duration = Duration::from_millis(10);

/// One delivery report: (batch number, index in the batch, outcome).
type Report = (u64, usize, Result<(), KafkaError>);

/// Collects the delivery reports the producer's polling thread hands over, and wakes
/// the sender waiting for them.
struct DeliveryContext {
    reports: Mutex<Vec<Report>>,
    arrived: Condvar,
    /// The last global error (authentication, TLS, ...), to explain a failed connect.
    last_error: super::LastError,
}

impl ClientContext for DeliveryContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        super::forward_log(level, fac, message);
        self.last_error.remember_log(fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        super::forward_error(&error, reason);
        self.last_error.remember(&error, reason);
    }
}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = Box<(u64, usize)>;

    fn delivery(&self, result: &DeliveryResult<'_>, opaque: Self::DeliveryOpaque) {
        let (batch, index) = *opaque;
        let outcome = match result {
            Ok(_) => Ok(()),
            Err((error, _)) => Err(error.clone()),
        };
        // A poisoned lock only means another report panicked mid-push: keep going.
        let mut reports = self.reports.lock().unwrap_or_else(PoisonError::into_inner);
        reports.push((batch, index, outcome));
        self.arrived.notify_all();
    }
}

impl DeliveryContext {
    /// Sleeps until a report arrives or `timeout` passes, then takes the reports.
    fn wait_for_reports(&self, timeout: Duration) -> Vec<Report> {
        let reports = self.reports.lock().unwrap_or_else(PoisonError::into_inner);
        let mut reports = if reports.is_empty() {
            self.arrived
                .wait_timeout(reports, timeout)
                .map_or_else(|poisoned| poisoned.into_inner().0, |(reports, _)| reports)
        } else {
            reports
        };
        std::mem::take(&mut *reports)
    }
}

/// The librdkafka producer of one [`Producer`](crate::Producer).
pub(crate) struct RdProducer {
    config: ProducerConfig,
    shutdown: CancellationToken,
    producer: ThreadedProducer<DeliveryContext>,
    /// Numbers each `send_all`, so a late report of an abandoned batch is not
    /// taken for one of the current batch.
    batch: u64,
}

impl std::fmt::Debug for RdProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RdProducer")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn ack_timeout_ms(config: &ProducerConfig) -> Result<u64, BusError> {
    let ms = u64::try_from(config.ack_timeout.as_millis())
        .ok()
        .filter(|ms| (1..=i32::MAX as u64 / 2).contains(ms))
        .ok_or_else(|| BusError::Config("ack_timeout must be between 1 ms and 12 days".into()))?;
    Ok(ms)
}

impl RdProducer {
    /// Creates the producer and waits (with retries) until a broker answers a
    /// metadata request: as the `kafka` side, an unreachable cluster is an error here,
    /// not at the first send.
    pub(crate) fn connect(
        config: ProducerConfig,
        shutdown: CancellationToken,
    ) -> Result<RdProducer, BusError> {
        let ack_ms = ack_timeout_ms(&config)?;
        let mut client_config =
            super::base_config(&config.brokers, &config.client_id, &config.security);
        client_config
            .set("acks", "all")
            .set("enable.idempotence", "true")
            // The broker's ack timeout, and the whole life of a record in
            // librdkafka (its own retries included) before it is reported failed.
            .set("request.timeout.ms", ack_ms.to_string())
            .set("message.timeout.ms", (ack_ms * 2).max(1000).to_string())
            // Latency over batching, as the relay sends what it claimed at once.
            .set("linger.ms", "1");
        super::apply_properties(&mut client_config, &config.rdkafka_properties);
        let producer: ThreadedProducer<DeliveryContext> = client_config
            .create_with_context(DeliveryContext {
                reports: Mutex::new(Vec::new()),
                arrived: Condvar::new(),
                last_error: super::LastError::default(),
            })
            .map_err(|e| {
                super::creation_failed(
                    "producer",
                    &e,
                    &config.rdkafka_properties,
                    settings::RdkafkaRole::Producer.var(),
                )
            })?;
        let mut p = RdProducer {
            config,
            shutdown,
            producer,
            batch: 0,
        };
        api::with_retries(&mut p, |p| p.check_reachable())?;
        Ok(p)
    }

    /// One metadata round trip (all topics).
    fn check_reachable(&mut self) -> Result<(), BusError> {
        super::fetch_metadata(
            self.producer.client(),
            // The producer's own thread serves the events.
            || {},
            &self.producer.context().last_error,
            self.config.ack_timeout,
        )
        .map_err(|e| BusError::Unreachable {
            brokers: self.config.brokers.clone(),
            last: self.producer.context().last_error.explain(&e),
        })
    }
}

impl api::Attempts for RdProducer {
    const CLIENT: &'static str = "rdkafka";

    fn config(&self) -> &ProducerConfig {
        &self.config
    }

    fn shutdown(&self) -> &CancellationToken {
        &self.shutdown
    }

    /// librdkafka reconnects by itself: nothing to reset between attempts.
    fn reset(&mut self) {}

    /// Enqueues `pending`, waits for its delivery reports and keeps in `pending` only
    /// the records that were not acknowledged.
    fn try_send_all(&mut self, pending: &mut Vec<Record<'_>>) -> Result<(), BusError> {
        if pending.is_empty() {
            return Ok(());
        }
        self.batch = self.batch.wrapping_add(1);
        let batch = self.batch;
        let started = Instant::now();
        // librdkafka reports every enqueued record within message.timeout.ms; a little
        // more covers the report's own way back.
        let deadline = started + self.config.ack_timeout * 2 + Duration::from_secs(2);
        let mut enqueued = 0usize;
        let mut enqueue_error = None;
        let mut early_reports: Vec<Report> = Vec::new();
        for (index, r) in pending.iter().enumerate() {
            let mut record =
                BaseRecord::with_opaque_to(r.topic, Box::new((batch, index))).payload(r.value);
            if !r.key.is_empty() {
                record = record.key(r.key);
            }
            if !r.headers.is_empty() {
                let headers = r.headers.iter().fold(
                    OwnedHeaders::new_with_capacity(r.headers.len()),
                    |headers, &(key, value)| {
                        headers.insert(Header {
                            key,
                            value: Some(value),
                        })
                    },
                );
                record = record.headers(headers);
            }
            loop {
                match self.producer.send(record) {
                    Ok(()) => {
                        enqueued += 1;
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back))
                        if Instant::now() < deadline =>
                    {
                        record = back;
                        // Reports free room in the queue; keep them for the wait below.
                        let early = self.producer.context().wait_for_reports(QUEUE_FULL_WAIT);
                        early_reports.extend(early);
                    }
                    Err((e, _)) => {
                        enqueue_error = Some(e);
                        break;
                    }
                }
            }
            if enqueue_error.is_some() {
                break;
            }
        }
        // Wait for the reports of what was enqueued.
        let mut acked = vec![false; pending.len()];
        let mut failure: Option<KafkaError> = enqueue_error;
        let mut reported = 0usize;
        let mut stop_deadline: Option<Instant> = None;
        let mut reports = early_reports;
        loop {
            for (b, index, outcome) in reports {
                if b != batch || index >= acked.len() {
                    continue;
                }
                reported += 1;
                match outcome {
                    Ok(()) => acked[index] = true,
                    Err(e) => {
                        failure.get_or_insert(e);
                    }
                }
            }
            if reported >= enqueued {
                break;
            }
            let now = Instant::now();
            if self.shutdown.is_cancelled() {
                let until = *stop_deadline.get_or_insert(now + STOP_GRACE);
                if now >= until {
                    break;
                }
            }
            if now >= deadline {
                break;
            }
            reports = self
                .producer
                .context()
                .wait_for_reports(deadline.saturating_duration_since(now).min(WAIT_SLICE));
        }
        let total = pending.len();
        let mut index = 0;
        pending.retain(|_| {
            let keep = !acked[index];
            index += 1;
            keep
        });
        if pending.is_empty() {
            return Ok(());
        }
        Err(BusError::Undelivered {
            undelivered: pending.len(),
            total,
            last: failure.unwrap_or(KafkaError::MessageProduction(
                RDKafkaErrorCode::MessageTimedOut,
            )),
        })
    }
}
