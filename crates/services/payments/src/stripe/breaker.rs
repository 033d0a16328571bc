//! The circuit breaker in front of the provider: consecutive calls without an answer
//! open it for a cooldown, during which no call is made and `/readyz` reports the
//! `provider` check failing; an answer closes it.

use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

/// The circuit breaker in front of the provider; shared with the readiness probe.
#[derive(Debug)]
pub struct Breaker {
    threshold: u32,
    cooldown: Duration,
    state: Mutex<BreakerState>,
}

#[derive(Debug, Default)]
struct BreakerState {
    consecutive_failures: u32,
    open_until: Option<Instant>,
    last_failure: String,
}

/// The circuit is open: no call is made until `for_another` has passed.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "circuit open for another {for_another:?} after {failures} consecutive calls without an answer; last: {last_failure}"
)]
pub struct CircuitOpen {
    pub for_another: Duration,
    pub failures: u32,
    pub last_failure: String,
}

impl Breaker {
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            cooldown,
            state: Mutex::default(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, BreakerState> {
        // The state stays consistent whatever panicked while holding it.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// `Ok` when a call may be made: the circuit is closed, or its cooldown is over
    /// (a trial call). Also the `provider` readiness check.
    pub fn check(&self) -> Result<(), CircuitOpen> {
        let state = self.state();
        match state.open_until {
            Some(until) if until > Instant::now() => Err(CircuitOpen {
                for_another: until.saturating_duration_since(Instant::now()),
                failures: state.consecutive_failures,
                last_failure: state.last_failure.clone(),
            }),
            _ => Ok(()),
        }
    }

    /// The provider answered: the circuit closes.
    pub(super) fn answered(&self) {
        let mut state = self.state();
        if state.open_until.is_some() {
            tracing::info!("payment provider answers again: circuit closed");
        }
        *state = BreakerState::default();
    }

    /// A call without an answer; at the threshold (and after each failed trial) the
    /// circuit opens for the cooldown.
    pub(super) fn failed(&self, reason: &str) {
        let mut state = self.state();
        state.consecutive_failures = state.consecutive_failures.saturating_add(1);
        state.last_failure = reason.to_owned();
        if state.consecutive_failures >= self.threshold {
            if state.open_until.is_none_or(|until| until <= Instant::now()) {
                tracing::warn!(
                    failures = state.consecutive_failures,
                    cooldown = ?self.cooldown,
                    last = reason,
                    "payment provider keeps failing: circuit open"
                );
            }
            state.open_until = Some(Instant::now() + self.cooldown);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_breaker_opens_at_the_threshold_and_an_answer_closes_it() {
        let breaker = Breaker::new(2, Duration::from_secs(60));
        breaker.failed("HTTP 500");
        assert!(breaker.check().is_ok());
        breaker.failed("HTTP 503");
        let open = breaker.check().unwrap_err().to_string();
        assert!(
            open.contains("2 consecutive") && open.contains("HTTP 503"),
            "{open}"
        );
        breaker.answered();
        assert!(breaker.check().is_ok());
    }
}
