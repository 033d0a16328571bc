//! One `status-topic` message: decode the `PaymentStatus`, store its notification.
//!
//! - A poison message (not JSON, a missing or mistyped field, an unknown status, a
//!   non-positive id) is logged with topic, partition and offset, counted in
//!   `notifications_dead_letters_total`, and acknowledged (`Ok`), so the offset is
//!   committed and the partition moves on.
//! - Redis unreachable or failing: `Err`; the `bus` consumer retries the same message
//!   with backoff and commits nothing until it is stored.

use contracts::{Notification, PaymentStatus};
use ops_http::{Counter, Metrics};

use crate::sink::{RedisSink, SinkError};

/// The worker's counters.
#[derive(Debug, Clone)]
pub struct HandlerMetrics {
    pub stored: Counter,
    pub dead_letters: Counter,
    pub store_failures: Counter,
}

impl HandlerMetrics {
    pub fn register(metrics: &Metrics) -> Self {
        Self {
            stored: metrics.counter(
                "notifications_stored_total",
                "Notifications written to Redis (a redelivered message counts again).",
            ),
            dead_letters: metrics.counter(
                "notifications_dead_letters_total",
                "Poison messages logged and skipped.",
            ),
            store_failures: metrics.counter(
                "notifications_store_failures_total",
                "Failed Redis writes; each is retried.",
            ),
        }
    }
}

/// The `bus::Handler` of the worker.
#[derive(Debug)]
pub struct StatusHandler {
    sink: RedisSink,
    metrics: HandlerMetrics,
}

impl StatusHandler {
    pub fn new(sink: RedisSink, metrics: HandlerMetrics) -> Self {
        Self { sink, metrics }
    }
}

impl bus::Handler for StatusHandler {
    type Error = SinkError;

    fn handle(&mut self, message: &bus::Message<'_>) -> Result<(), SinkError> {
        let status = match contracts::decode::<PaymentStatus>(message.value) {
            Ok(status) => status,
            Err(reason) => {
                self.metrics.dead_letters.inc();
                message.log_dead_letter(
                    &reason,
                    "in this log and notifications_dead_letters_total only",
                );
                return Ok(());
            }
        };
        let notification = Notification {
            order_id: status.order_id,
            user_id: status.user_id,
            order_status: status.order_status,
        };
        if let Err(err) = self.sink.store(&notification) {
            self.metrics.store_failures.inc();
            return Err(err);
        }
        self.metrics.stored.inc();
        tracing::debug!(
            order_id = status.order_id,
            event_id = status.event_id,
            status = status.order_status.as_str(),
            partition = message.partition,
            offset = message.offset,
            "notification stored"
        );
        Ok(())
    }
}
