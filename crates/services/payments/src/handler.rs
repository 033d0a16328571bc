//! `order-topic` messages: decode each `OrderCreated` and process it in the store;
//! a poll's messages (all its partitions) go through ONE transaction (`handle_batch`),
//! so a burst costs one commit, not one per order.
//!
//! - A poison message (not JSON, a missing or mistyped field, a non-positive id or
//!   a negative amount, or data the database refuses) is logged with topic,
//!   partition and offset, kept in `dead_letters` byte for byte, and acknowledged
//!   (`Ok`): its offset is committed and the partition moves on.
//! - The database unreachable (or any other database failure) or the provider
//!   unavailable: `Err`; the `bus` consumer retries the same message with backoff
//!   and commits nothing until it is processed.
//! - The provider gave up on an order (no answer after `PAYMENTS_PROVIDER_MAX_ATTEMPTS`,
//!   or a request it refuses): that message is kept in `dead_letters` with the
//!   reason, as a poison one, and `payments dead-letters replay` charges it later
//!   (with the same idempotency key, so never twice).

use contracts::{OrderCreated, PaymentOutcome};
use ops_http::{Counter, Metrics};
use service_skeleton::ErrorChain;

use inbox::Consumed;

use crate::{
    provider::{PaymentProvider, ProviderError},
    store::{DeadLetter, PaymentStore, PollOutcome, ProcessError, Processed, StoreError},
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

/// Why a message must be retried: what the `bus` consumer logs, with its causes
/// ([`ErrorChain`]).
#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    #[error(transparent)]
    Process(ProcessError),
    #[error("cannot store the dead letter")]
    DeadLetter(#[source] StoreError),
}

impl From<ProcessError> for HandleError {
    fn from(err: ProcessError) -> Self {
        HandleError::Process(err)
    }
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
            .dead_letter(&DeadLetter::of(message, reason.to_owned()))
            .map_err(|err| {
                self.metrics.retries.inc();
                HandleError::DeadLetter(err)
            })?;
        self.metrics.dead_letters.inc();
        self.metrics.processed.inc();
        Ok(())
    }

    fn record(&self, order: &OrderCreated, message: &bus::Message<'_>, processed: Processed) {
        // Every line names the order, the event and where it came from (fields, not a
        // span: a span's fields are lost under RUST_LOG=warn and move in JSON logs).
        macro_rules! log {
            ($level:ident, $($field:ident = $value:expr,)* $text:literal) => {
                tracing::$level!(
                    order_id = order.order_id,
                    event_id = order.event_id,
                    partition = message.partition,
                    offset = message.offset,
                    $($field = $value,)*
                    $text
                )
            };
        }
        self.metrics.processed.inc();
        match processed {
            Processed::Decided(outcome) => {
                match outcome {
                    PaymentOutcome::Succeeded => self.metrics.succeeded.inc(),
                    PaymentOutcome::Failed => self.metrics.failed.inc(),
                }
                log!(debug, status = outcome.as_str(), "payment decided");
            }
            Processed::Duplicate => {
                self.metrics.duplicates.inc();
                log!(info, "duplicate OrderCreated skipped");
            }
            Processed::AlreadyPaid => {
                self.metrics.duplicates.inc();
                log!(
                    warn,
                    "OrderCreated with a new event_id for an order already paid: first decision kept"
                );
            }
        }
    }
}

impl<P: PaymentProvider> bus::Handler for OrderHandler<P> {
    type Error = HandleError;

    fn handle(&mut self, message: &bus::Message<'_>) -> Result<(), HandleError> {
        match self
            .store
            .process_batch(std::slice::from_ref(message), &mut self.provider)
        {
            Ok(outcome) => {
                self.report(&outcome, std::slice::from_ref(message));
                Ok(())
            }
            // The driver's message, as PostgreSQL gave it, is the reason kept (the
            // driver's own `Display` is only "db error": the server's message is its
            // source).
            Err(ProcessError::Store(StoreError::Rejected(cause))) => {
                self.dead_letter(message, &ErrorChain(&cause).to_string())
            }
            Err(ProcessError::Provider(gave_up @ ProviderError::GaveUp(_))) => {
                self.dead_letter(message, &gave_up.to_string())
            }
            Err(err) => {
                self.metrics.retries.inc();
                Err(err.into())
            }
        }
    }

    /// One commit for all the messages of a poll, in order (one statement for events
    /// of distinct orders, else one transaction); poison ones are kept in
    /// `dead_letters` in the same transaction. If the database refuses one event's
    /// data, the lot is rolled back and redone message by message so only that one is
    /// dead-lettered.
    ///
    /// On failure, [`bus::BatchFailure::handled`] is the number of leading messages
    /// known committed: 0 when the batch failed, or as many as the message-by-message
    /// redo committed before the one that failed. A batch that failed after its
    /// commit (the answer lost) is redone as duplicates: nothing is written twice.
    fn handle_batch(
        &mut self,
        messages: &[bus::Message<'_>],
    ) -> Result<(), bus::BatchFailure<HandleError>> {
        if messages.len() <= 1 {
            return match messages {
                [message] => self
                    .handle(message)
                    .map_err(|error| bus::BatchFailure { handled: 0, error }),
                _ => Ok(()),
            };
        }
        match self.store.process_batch(messages, &mut self.provider) {
            Ok(outcome) => {
                self.report(&outcome, messages);
                Ok(())
            }
            // Only that order's message is dead-lettered: the others are redone one
            // by one (the provider answers them again without charging twice).
            Err(
                ProcessError::Store(StoreError::Rejected(_))
                | ProcessError::Provider(ProviderError::GaveUp(_)),
            ) => self.handle_one_by_one(messages),
            Err(err) => {
                self.metrics.retries.inc();
                Err(bus::BatchFailure {
                    handled: 0,
                    error: err.into(),
                })
            }
        }
    }
}

impl<P: PaymentProvider> OrderHandler<P> {
    /// Logs and counts what a committed poll did, message by message.
    fn report(&self, outcome: &PollOutcome, messages: &[bus::Message<'_>]) {
        for (consumed, message) in outcome.iter().zip(messages) {
            match consumed {
                Consumed::Applied { event, outcome } => self.record(event, message, *outcome),
                Consumed::DeadLettered { reason } => {
                    message.log_dead_letter(reason, DEAD_LETTERS_KEPT);
                    self.metrics.dead_letters.inc();
                    self.metrics.processed.inc();
                }
            }
        }
    }

    /// Each message in its own transaction, in order, stopping at the first failure;
    /// the failure says how many were committed before it.
    fn handle_one_by_one(
        &mut self,
        messages: &[bus::Message<'_>],
    ) -> Result<(), bus::BatchFailure<HandleError>> {
        for (handled, message) in messages.iter().enumerate() {
            bus::Handler::handle(self, message)
                .map_err(|error| bus::BatchFailure { handled, error })?;
        }
        Ok(())
    }
}
