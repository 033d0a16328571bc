//! `PAYMENTS_PROVIDER=stripe`: payments decided by Stripe's PaymentIntents API.
//!
//! One confirmed PaymentIntent per `OrderCreated`: `POST /v1/payment_intents`,
//! form-encoded, with the order's total in minor units, `PAYMENTS_CURRENCY`,
//! `confirm=true`, the payment method `PAYMENTS_STRIPE_PAYMENT_METHOD` (card
//! payments without redirects), and `metadata[order_id]`, `metadata[event_id]`. The
//! event id is the request's `Idempotency-Key` (`order-platform-<event_id>`), so a
//! redelivered event, a retry after a lost answer, a crash between the charge and the
//! database commit, a second payments instance or a dead-letter replay all get
//! Stripe's first answer back instead of a second charge (Stripe keeps a key 24
//! hours).
//!
//! What each answer means:
//! - `status: succeeded` -> paid;
//! - HTTP 402 (`card_error`: `card_declined`, a `decline_code`), or `status:
//!   requires_payment_method`, `canceled` or `requires_action` (a card needing its
//!   holder, who is not there) -> failed, with the provider's reason kept;
//! - a network error, a timeout, 401/403, 409 (the key in use), 429 and 5xx -> tried
//!   again after the platform's backoff ([`backoff::RetryPolicy::DEFAULT`]), waiting
//!   at least what `Retry-After` asks, up to `PAYMENTS_PROVIDER_MAX_ATTEMPTS` in all;
//!   then [`ProviderError::GaveUp`] (the message goes to `dead_letters`), or, when
//!   those failures opened the circuit (the provider as a whole is down), the
//!   message waits like in a database outage; never "failed";
//! - any other 4xx (the request itself refused) or a PaymentIntent still
//!   `processing` -> [`ProviderError::GaveUp`] at once: asking again changes nothing.
//!
//! A [`Breaker`] counts consecutive calls without an answer; at
//! `PAYMENTS_PROVIDER_BREAKER_THRESHOLD` it opens for
//! `PAYMENTS_PROVIDER_BREAKER_COOLDOWN`: no call is made (the messages wait, as in a
//! database outage: [`ProviderError::Unavailable`]) and `/readyz` reports the
//! `provider` check failing. After the cooldown the next call is a trial: an answer
//! closes the circuit, another failure opens it again.
//!
//! The calls of one poll run concurrently, at most `PAYMENTS_PROVIDER_CONCURRENCY`
//! at once, on a small runtime of the provider's own: the consumer thread is blocking
//! and waits for the lot, so a provider taking 100 ms per charge does not cap the
//! worker at 10 payments a second.
//!
//! The parts: this module (settings, the provider and its charges), [`answer`] (what
//! an HTTP answer means), [`breaker`] (the circuit breaker).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use backoff::RetryPolicy;
use contracts::{OrderCreated, PaymentOutcome};
use ops_http::{CounterFamily, HistogramFamily, LATENCY_BUCKETS, Metrics};
use settings::Secret;
use tokio_util::sync::CancellationToken;

use crate::provider::{Decision, PaymentProvider, ProviderError};

mod answer;
mod breaker;

use answer::{Answer, classify, retry_after, transport_error};
pub use breaker::{Breaker, CircuitOpen};

/// The longest `Retry-After` honoured: a longer one is cut to this, so a message
/// is never held for minutes inside one attempt (it is retried again later anyway).
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

/// Most give-ups kept for a redo ([`StripeProvider`]'s `gave_up`).
const GAVE_UP_REMEMBERED: usize = 4096;

/// The prefix of every idempotency key this platform sends, so its keys cannot
/// collide with another application's on the same Stripe account.
pub const IDEMPOTENCY_KEY_PREFIX: &str = "order-platform-";

/// The `Idempotency-Key` of the charge for the `OrderCreated` with `event_id`.
pub fn idempotency_key(event_id: i64) -> String {
    format!("{IDEMPOTENCY_KEY_PREFIX}{event_id}")
}

/// How to reach Stripe and how hard to try.
#[derive(Clone)]
pub struct StripeSettings {
    /// `https://api.stripe.com`, or stripe-mock / a test server.
    pub api_base: String,
    pub secret_key: Secret,
    /// ISO currency code, lowercase (`usd`).
    pub currency: String,
    /// `pm_card_visa` in test mode.
    pub payment_method: String,
    /// Per call: connect, send and read the answer.
    pub timeout: Duration,
    /// Calls per charge before it gives up (at least 1).
    pub max_attempts: u32,
    /// Charges in flight at once (at least 1).
    pub concurrency: usize,
    /// Consecutive calls without an answer that open the circuit (at least 1).
    pub breaker_threshold: u32,
    /// How long an open circuit makes no call.
    pub breaker_cooldown: Duration,
    /// The delays between attempts (the platform's, [`RetryPolicy::DEFAULT`]; tests
    /// shorten it).
    pub retry: RetryPolicy,
}

impl std::fmt::Debug for StripeSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeSettings")
            .field("api_base", &self.api_base)
            .field("secret_key", &self.secret_key)
            .field("currency", &self.currency)
            .field("payment_method", &self.payment_method)
            .field("timeout", &self.timeout)
            .field("max_attempts", &self.max_attempts)
            .field("concurrency", &self.concurrency)
            .finish_non_exhaustive()
    }
}

/// Why the provider could not be built.
#[derive(Debug, thiserror::Error)]
pub enum StripeSetupError {
    #[error("cannot build the HTTP client for PAYMENTS_STRIPE_API_BASE")]
    Client(#[source] reqwest::Error),
    #[error("cannot start the provider's runtime")]
    Runtime(#[source] std::io::Error),
}

/// The provider's metrics: calls by outcome and their latency.
#[derive(Clone)]
pub struct ProviderMetrics {
    calls: CounterFamily<1>,
    seconds: HistogramFamily<1>,
}

impl ProviderMetrics {
    pub fn register(metrics: &Metrics) -> Self {
        Self {
            calls: metrics.counter_family(
                "payments_provider_calls_total",
                "Calls to the payment provider by outcome: succeeded, declined, refused, retryable, timeout, network.",
                ["outcome"],
            ),
            seconds: metrics.histogram_family(
                "payments_provider_call_seconds",
                "Latency of calls to the payment provider, by outcome.",
                ["outcome"],
                &LATENCY_BUCKETS,
            ),
        }
    }

    fn observe(&self, outcome: &str, elapsed: Duration) {
        self.calls.with_labels([outcome]).inc();
        self.seconds.with_labels([outcome]).observe(elapsed);
    }
}

/// Stripe's PaymentIntents API as a [`PaymentProvider`]; see the module docs.
pub struct StripeProvider {
    /// `None` only while dropping.
    runtime: Option<tokio::runtime::Runtime>,
    charger: Arc<Charger>,
    /// Orders of a poll of several whose charge gave up: the handler redoes such a
    /// poll message by message (so only that one is dead-lettered), and the redo
    /// gets the same answer without another round of attempts. Each entry is used
    /// once; a message handled alone is never remembered, so a later replay is
    /// charged afresh.
    gave_up: HashMap<i64, String>,
}

/// What every charge of a poll shares.
struct Charger {
    client: reqwest::Client,
    url: String,
    settings: StripeSettings,
    breaker: Arc<Breaker>,
    metrics: ProviderMetrics,
    /// The worker's shutdown: a charge waiting for an answer or a retry stops at
    /// once (its message is not committed and is charged again, under the same
    /// idempotency key, after the restart).
    shutdown: CancellationToken,
}

impl StripeProvider {
    /// `shutdown` cuts short the calls and retry delays in flight.
    pub fn new(
        settings: StripeSettings,
        metrics: ProviderMetrics,
        shutdown: CancellationToken,
    ) -> Result<Self, StripeSetupError> {
        let client = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            .build()
            .map_err(StripeSetupError::Client)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(StripeSetupError::Runtime)?;
        let breaker = Arc::new(Breaker::new(
            settings.breaker_threshold,
            settings.breaker_cooldown,
        ));
        let url = format!(
            "{}/v1/payment_intents",
            settings.api_base.trim_end_matches('/')
        );
        Ok(Self {
            runtime: Some(runtime),
            charger: Arc::new(Charger {
                client,
                url,
                settings,
                breaker,
                metrics,
                shutdown,
            }),
            gave_up: HashMap::new(),
        })
    }

    /// The circuit breaker, for the `provider` readiness check.
    pub fn breaker(&self) -> Arc<Breaker> {
        self.charger.breaker.clone()
    }
}

impl Drop for StripeProvider {
    fn drop(&mut self) {
        // Dropped from async code when the worker fails to start: a runtime may
        // not be dropped there, shut down in the background instead.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl PaymentProvider for StripeProvider {
    fn decide(&mut self, order: &OrderCreated) -> Result<Decision, ProviderError> {
        self.decide_all(&[order])
            .pop()
            .unwrap_or_else(|| Err(ProviderError::Unavailable("no answer".into())))
    }

    fn decide_all(&mut self, orders: &[&OrderCreated]) -> Vec<Result<Decision, ProviderError>> {
        let Some(runtime) = &self.runtime else {
            return orders
                .iter()
                .map(|_| Err(ProviderError::Unavailable("provider stopped".into())))
                .collect();
        };
        let mut answers: Vec<Option<Result<Decision, ProviderError>>> =
            orders.iter().map(|_| None).collect();
        let mut to_charge = Vec::with_capacity(orders.len());
        for (index, order) in orders.iter().enumerate() {
            match self.gave_up.remove(&order.event_id) {
                Some(reason) => answers[index] = Some(Err(ProviderError::GaveUp(reason))),
                None => to_charge.push((index, (*order).clone())),
            }
        }
        // Bounded: entries a redo never asked for (the poll was retried whole).
        if self.gave_up.len() > GAVE_UP_REMEMBERED {
            self.gave_up.clear();
        }
        let remember = orders.len() > 1;
        let charger = &self.charger;
        let charged = runtime.block_on(async {
            let permits = Arc::new(tokio::sync::Semaphore::new(
                charger.settings.concurrency.max(1),
            ));
            let mut running = tokio::task::JoinSet::new();
            for (index, order) in to_charge {
                let (charger, permits) = (charger.clone(), permits.clone());
                running.spawn(async move {
                    // Never closed: acquiring only waits for a free slot.
                    let _permit = permits.acquire_owned().await;
                    (index, order.event_id, charger.charge(&order).await)
                });
            }
            let mut charged = Vec::new();
            while let Some(joined) = running.join_next().await {
                if let Ok(answer) = joined {
                    charged.push(answer);
                }
            }
            charged
        });
        for (index, event_id, answer) in charged {
            if let (true, Err(ProviderError::GaveUp(reason))) = (remember, &answer) {
                self.gave_up.insert(event_id, reason.clone());
            }
            if let Some(slot) = answers.get_mut(index) {
                *slot = Some(answer);
            }
        }
        answers
            .into_iter()
            .map(|answer| {
                answer
                    .unwrap_or_else(|| Err(ProviderError::Unavailable("charge task failed".into())))
            })
            .collect()
    }
}

impl Charger {
    /// Charges `order`: up to `max_attempts` calls, each with the same idempotency
    /// key; see the module docs.
    async fn charge(&self, order: &OrderCreated) -> Result<Decision, ProviderError> {
        // Nothing to charge; Stripe refuses amounts below its minimum anyway.
        if order.total_amount == 0 {
            return Ok(PaymentOutcome::Succeeded.into());
        }
        let max_attempts = self.settings.max_attempts.max(1);
        let mut backoff = self.settings.retry.backoff();
        let mut last = String::new();
        for attempt in 1..=max_attempts {
            self.breaker
                .check()
                .map_err(|open| ProviderError::Unavailable(open.to_string()))?;
            let started = Instant::now();
            let (answer, outcome) = tokio::select! {
                answered = self.call(order) => answered,
                () = self.shutdown.cancelled() => return Err(stopping()),
            };
            self.metrics.observe(outcome, started.elapsed());
            match answer {
                Answer::Decided(decision) => {
                    self.breaker.answered();
                    return Ok(decision);
                }
                Answer::Refused(reason) => {
                    self.breaker.answered();
                    return Err(ProviderError::GaveUp(reason));
                }
                Answer::Retry {
                    reason,
                    retry_after,
                } => {
                    self.breaker.failed(&reason);
                    tracing::warn!(
                        order_id = order.order_id,
                        event_id = order.event_id,
                        attempt,
                        max_attempts,
                        %reason,
                        "payment provider gave no answer"
                    );
                    last = reason;
                    if attempt < max_attempts {
                        let delay = backoff
                            .next_delay()
                            .max(retry_after.unwrap_or_default().min(MAX_RETRY_AFTER));
                        tokio::select! {
                            () = tokio::time::sleep(delay) => {}
                            () = self.shutdown.cancelled() => return Err(stopping()),
                        }
                    }
                }
            }
        }
        // A provider-wide outage (the circuit open) holds the message like a database
        // outage does; only an order that keeps failing while the provider answers
        // others goes to dead letters.
        if let Err(open) = self.breaker.check() {
            return Err(ProviderError::Unavailable(open.to_string()));
        }
        Err(ProviderError::GaveUp(format!(
            "no answer from the payment provider after {max_attempts} attempts; last: {last}"
        )))
    }

    /// One `POST /v1/payment_intents`, and its outcome label for the metrics.
    async fn call(&self, order: &OrderCreated) -> (Answer, &'static str) {
        let form = [
            ("amount", order.total_amount.to_string()),
            ("currency", self.settings.currency.clone()),
            ("confirm", "true".to_owned()),
            ("payment_method", self.settings.payment_method.clone()),
            ("automatic_payment_methods[enabled]", "true".to_owned()),
            // Confirmed now, with no customer to follow a redirect.
            (
                "automatic_payment_methods[allow_redirects]",
                "never".to_owned(),
            ),
            ("metadata[order_id]", order.order_id.to_string()),
            ("metadata[event_id]", order.event_id.to_string()),
            ("metadata[user_id]", order.user_id.to_string()),
        ];
        let sent = self
            .client
            .post(&self.url)
            .bearer_auth(self.settings.secret_key.expose())
            .header("Idempotency-Key", idempotency_key(order.event_id))
            .form(&form)
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(err) => return transport_error(&err),
        };
        let status = response.status();
        let retry_after = retry_after(response.headers());
        let body = match response.bytes().await {
            Ok(body) => body,
            Err(err) => return transport_error(&err),
        };
        classify(status.as_u16(), retry_after, &body)
    }
}

/// The worker is stopping: the message is left uncommitted.
fn stopping() -> ProviderError {
    ProviderError::Unavailable("the worker is shutting down".into())
}
