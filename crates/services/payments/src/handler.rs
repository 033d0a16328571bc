//! `order-topic` messages: decode each `OrderCreated` and process it in the store;
//! a poll's messages for one partition go through ONE transaction (`handle_batch`),
//! so a burst costs one commit, not one per order.
//!
//! - A poison message (not JSON, a missing or mistyped field, a non-positive id or
//!   a negative amount, or data the database refuses) is logged with topic,
//!   partition and offset, kept in `dead_letters` byte for byte, and acknowledged
//!   (`Ok`): its offset is committed and the partition moves on.
//! - The database unreachable (or any other database failure) or the provider
//!   unavailable: `Err`; the `bus` consumer retries the same message with backoff
//!   and commits nothing until it is processed.

use contracts::{OrderCreated, PaymentOutcome};
use ops_http::{Counter, Metrics};

use crate::{
    provider::PaymentProvider,
    store::{BatchItem, Origin, PaymentStore, ProcessError, Processed, StoreError},
};

/// The worker's counters.
#[derive(Debug, Clone)]
pub struct HandlerMetrics {
    pub processed: Counter,
    pub duplicates: Counter,
    pub dead_letters: Counter,
    pub succeeded: Counter,
    pub failed: Counter,
    pub retries: Counter,
}

impl HandlerMetrics {
    pub fn register(metrics: &Metrics) -> Self {
        Self {
            processed: metrics.counter(
                "payments_messages_processed_total",
                "order-topic messages handled and acknowledged (any outcome).",
            ),
            duplicates: metrics.counter(
                "payments_duplicates_skipped_total",
                "OrderCreated events skipped because their event_id (or their order) was already processed.",
            ),
            dead_letters: metrics.counter(
                "payments_dead_letters_total",
                "Poison messages stored in dead_letters and skipped.",
            ),
            succeeded: metrics.counter("payments_succeeded_total", "Payments decided: succeeded."),
            failed: metrics.counter("payments_failed_total", "Payments decided: failed."),
            retries: metrics.counter(
                "payments_transient_failures_total",
                "Handling attempts that failed transiently (database or provider); each is retried.",
            ),
        }
    }
}

/// Why a message must be retried.
#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    #[error(transparent)]
    Process(#[from] ProcessError),
    #[error("cannot store the dead letter: {0}")]
    DeadLetter(StoreError),
}

/// The `bus::Handler` of the worker.
pub struct OrderHandler<P> {
    store: PaymentStore,
    provider: P,
    metrics: HandlerMetrics,
}

/// Where a poison OrderCreated is kept, for its log line.
const DEAD_LETTERS_KEPT: &str = "in the dead_letters table";

impl<P: PaymentProvider> OrderHandler<P> {
    pub fn new(store: PaymentStore, provider: P, metrics: HandlerMetrics) -> Self {
        Self {
            store,
            provider,
            metrics,
        }
    }

    fn dead_letter(&self, message: &bus::Message<'_>, reason: &str) -> Result<(), HandleError> {
        message.log_dead_letter(&reason, DEAD_LETTERS_KEPT);
        self.store
            .dead_letter(origin(message), message.key, message.value, reason)
            .map_err(|err| {
                self.metrics.retries.inc();
                HandleError::DeadLetter(err)
            })?;
        self.metrics.dead_letters.inc();
        self.metrics.processed.inc();
        Ok(())
    }

    fn record(&self, order: &OrderCreated, message: &bus::Message<'_>, processed: Processed) {
        self.metrics.processed.inc();
        match processed {
            Processed::Decided(outcome) => {
                match outcome {
                    PaymentOutcome::Succeeded => self.metrics.succeeded.inc(),
                    PaymentOutcome::Failed => self.metrics.failed.inc(),
                }
                tracing::debug!(
                    order_id = order.order_id,
                    event_id = order.event_id,
                    status = outcome.as_str(),
                    partition = message.partition,
                    offset = message.offset,
                    "payment decided"
                );
            }
            Processed::Duplicate => {
                self.metrics.duplicates.inc();
                tracing::info!(
                    order_id = order.order_id,
                    event_id = order.event_id,
                    partition = message.partition,
                    offset = message.offset,
                    "duplicate OrderCreated skipped"
                );
            }
            Processed::DeadLettered => {}
            Processed::AlreadyPaid => {
                self.metrics.duplicates.inc();
                tracing::warn!(
                    order_id = order.order_id,
                    event_id = order.event_id,
                    partition = message.partition,
                    offset = message.offset,
                    "OrderCreated with a new event_id for an order already paid: first decision kept"
                );
            }
        }
    }
}

impl<P: PaymentProvider> bus::Handler for OrderHandler<P> {
    type Error = HandleError;

    fn handle(&mut self, message: &bus::Message<'_>) -> Result<(), HandleError> {
        let order = match contracts::decode::<OrderCreated>(message.value) {
            Ok(order) => order,
            Err(reason) => return self.dead_letter(message, &reason.to_string()),
        };
        match self
            .store
            .process(&order, origin(message), &mut self.provider)
        {
            Ok(processed) => {
                self.record(&order, message, processed);
                Ok(())
            }
            Err(ProcessError::Store(StoreError::Rejected(reason))) => {
                self.dead_letter(message, &reason)
            }
            Err(err) => {
                self.metrics.retries.inc();
                Err(err.into())
            }
        }
    }

    fn handle_batch(
        &mut self,
        messages: &[bus::Message<'_>],
    ) -> Result<(), bus::BatchFailure<HandleError>> {
        let result = match messages {
            [] => Ok(()),
            [message] => self.handle(message),
            _ => self.handle_together(messages),
        };
        // All or nothing: on failure none of the batch is taken as done.
        result.map_err(|error| bus::BatchFailure { handled: 0, error })
    }
}

impl<P: PaymentProvider> OrderHandler<P> {
    /// One transaction for all the messages of a poll, in order; poison ones are
    /// kept in `dead_letters` in the same transaction. If the database refuses one
    /// event's data, the lot is rolled back and redone message by message so only
    /// that one is dead-lettered.
    fn handle_together(&mut self, messages: &[bus::Message<'_>]) -> Result<(), HandleError> {
        let items: Vec<BatchItem<'_>> = messages
            .iter()
            .map(
                |message| match contracts::decode::<OrderCreated>(message.value) {
                    Ok(order) => BatchItem::Order(order, origin(message)),
                    Err(reason) => BatchItem::Poison {
                        origin: origin(message),
                        key: message.key,
                        payload: message.value,
                        reason: reason.to_string(),
                    },
                },
            )
            .collect();
        match self.store.process_batch(&items, &mut self.provider) {
            Ok(results) => {
                for ((item, message), processed) in items.iter().zip(messages).zip(results) {
                    match item {
                        BatchItem::Order(order, _) => self.record(order, message, processed),
                        BatchItem::Poison { reason, .. } => {
                            message.log_dead_letter(&reason, DEAD_LETTERS_KEPT);
                            self.metrics.dead_letters.inc();
                            self.metrics.processed.inc();
                        }
                    }
                }
                Ok(())
            }
            Err(ProcessError::Store(StoreError::Rejected(_))) => messages
                .iter()
                .try_for_each(|message| bus::Handler::handle(self, message)),
            Err(err) => {
                self.metrics.retries.inc();
                Err(err.into())
            }
        }
    }
}

fn origin<'a>(message: &bus::Message<'a>) -> Origin<'a> {
    Origin {
        topic: message.topic,
        partition: message.partition,
        offset: message.offset,
    }
}
