//! Who decides a payment: the [`PaymentProvider`] trait, the deterministic
//! [`SimulatedProvider`] the platform ships with (`PAYMENTS_PROVIDER=simulated`, the
//! default) and, in [`crate::stripe`], Stripe's PaymentIntents API
//! (`PAYMENTS_PROVIDER=stripe`).
//!
//! The simulated rule is the Go platform's, so Go and Rust payments workers in one
//! deployment agree on every order: **an even order id succeeds, an odd one fails**.
//! The amount and the user play no part.

use contracts::{OrderCreated, PaymentOutcome};

/// A provider's answer for one order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub outcome: PaymentOutcome,
    /// Why a failed payment failed, in the provider's words (a card decline's code
    /// and message); `None` when it succeeded or the simulated rule decided.
    pub reason: Option<String>,
    /// The provider's id of the payment (Stripe's PaymentIntent id), so an operator
    /// can find it in the provider's dashboard.
    pub reference: Option<String>,
}

impl From<PaymentOutcome> for Decision {
    fn from(outcome: PaymentOutcome) -> Self {
        Self {
            outcome,
            reason: None,
            reference: None,
        }
    }
}

/// Why a provider gave no decision.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// No answer now (network, timeout, 429, 5xx, the circuit open): the message is
    /// retried later and never recorded as failed.
    #[error("payment provider unavailable: {0}")]
    Unavailable(String),
    /// No usable answer after the bounded attempts, or an answer retrying cannot
    /// change (the provider refused the request itself): the message is kept in
    /// `dead_letters` with this reason, for `payments dead-letters replay`.
    #[error("payment provider gave up: {0}")]
    GaveUp(String),
}

/// Decides payments. Called from the consumer thread BEFORE the database transaction
/// that records them (so a slow provider holds no transaction open), once per
/// `OrderCreated` whose `event_id` was not processed yet (never for a known
/// duplicate). A batch that is retried asks again for the events it had not
/// recorded, so a provider must answer a repeated question without charging twice.
pub trait PaymentProvider: Send + 'static {
    fn decide(&mut self, order: &OrderCreated) -> Result<Decision, ProviderError>;

    /// One answer per order, in order: the orders of one poll. The default asks
    /// [`PaymentProvider::decide`] one after the other; a remote provider answers
    /// them concurrently.
    fn decide_all(&mut self, orders: &[&OrderCreated]) -> Vec<Result<Decision, ProviderError>> {
        orders.iter().map(|order| self.decide(order)).collect()
    }
}

impl PaymentProvider for Box<dyn PaymentProvider> {
    fn decide(&mut self, order: &OrderCreated) -> Result<Decision, ProviderError> {
        (**self).decide(order)
    }

    fn decide_all(&mut self, orders: &[&OrderCreated]) -> Vec<Result<Decision, ProviderError>> {
        (**self).decide_all(orders)
    }
}

/// The deterministic simulated provider: the Go platform's rule, even order id ->
/// succeeded, odd -> failed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SimulatedProvider;

impl SimulatedProvider {
    /// The outcome for an order, as a pure function of its id.
    pub fn outcome(order_id: i64) -> PaymentOutcome {
        if order_id % 2 == 0 {
            PaymentOutcome::Succeeded
        } else {
            PaymentOutcome::Failed
        }
    }
}

impl PaymentProvider for SimulatedProvider {
    fn decide(&mut self, order: &OrderCreated) -> Result<Decision, ProviderError> {
        Ok(Self::outcome(order.order_id).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule_is_the_go_platforms() {
        assert_eq!(SimulatedProvider::outcome(2), PaymentOutcome::Succeeded);
        assert_eq!(
            SimulatedProvider::outcome(1_000_000),
            PaymentOutcome::Succeeded
        );
        assert_eq!(SimulatedProvider::outcome(1), PaymentOutcome::Failed);
        assert_eq!(SimulatedProvider::outcome(7), PaymentOutcome::Failed);
        assert_eq!(SimulatedProvider::outcome(i64::MAX), PaymentOutcome::Failed);
    }
}
