//! Who decides a payment: the [`PaymentProvider`] trait and the deterministic
//! [`SimulatedProvider`] the platform ships with.
//!
//! The default rule is the Go platform's, so Go and Rust payments workers in one
//! deployment agree on every order: **an even order id succeeds, an odd one fails**.
//! The amount and the user play no part.

use contracts::{OrderCreated, PaymentOutcome};

/// The provider could not give an answer now; the message is retried.
#[derive(Debug, Clone, thiserror::Error)]
#[error("payment provider unavailable: {0}")]
pub struct ProviderError(pub String);

/// Decides a payment. Called from the consumer thread BEFORE the database transaction
/// that records the payment (so a slow provider holds no transaction open), once per
/// `OrderCreated` whose `event_id` was not processed yet (never for a known duplicate).
/// A batch that is retried asks again for the events it had not recorded.
pub trait PaymentProvider: Send + 'static {
    fn decide(&mut self, order: &OrderCreated) -> Result<PaymentOutcome, ProviderError>;
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
    fn decide(&mut self, order: &OrderCreated) -> Result<PaymentOutcome, ProviderError> {
        Ok(Self::outcome(order.order_id))
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
