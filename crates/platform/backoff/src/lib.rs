//! `backoff`: the delay between retries everywhere in the platform (the Kafka producer
//! and both consumers, librdkafka's reconnects, the outbox relay, database preparation
//! at start-up). A retry loop waits [`RetryPolicy::DEFAULT`]: **100 ms first, doubling
//! after each failure up to 5 s, back to 100 ms after a success**. The values live
//! here only ([`RetryPolicy::DEFAULT`]); every loop takes them from here, so every loop
//! behaves (and is tuned) the same way. A loop that lets its caller choose (the
//! consumers' `ConsumerConfig`, for tests) starts from this policy too.

use std::time::Duration;

/// Where a retry loop's delays start and how long they may grow ([`Backoff`] doubles
/// the delay after each failure, up to `max`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The first delay, and the delay again after a success.
    pub initial: Duration,
    /// The longest delay.
    pub max: Duration,
}

impl RetryPolicy {
    /// The platform's one retry policy (its values are stated in the crate
    /// documentation above, and pinned by a test).
    pub const DEFAULT: RetryPolicy = RetryPolicy {
        initial: Duration::from_millis(100),
        max: Duration::from_secs(5),
    };

    /// A fresh [`Backoff`] following this policy.
    pub fn backoff(self) -> Backoff {
        Backoff::new(self.initial, self.max)
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Exponential backoff between `initial` and `max`.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// Starts at `initial` (at least 1 ms), doubling up to `max` (at least `initial`).
    pub fn new(initial: Duration, max: Duration) -> Self {
        let initial = initial.max(Duration::from_millis(1));
        Self {
            initial,
            max: max.max(initial),
            next: initial,
        }
    }

    /// The delay to wait now; the next one is twice as long, up to the maximum.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(self.max);
        delay
    }

    /// After a success: the next delay is the first one again.
    pub fn reset(&mut self) {
        self.next = self.initial;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_platform_policy_is_100ms_doubling_to_5s() {
        assert_eq!(RetryPolicy::DEFAULT.initial, Duration::from_millis(100));
        assert_eq!(RetryPolicy::DEFAULT.max, Duration::from_secs(5));
        assert_eq!(RetryPolicy::default(), RetryPolicy::DEFAULT);
        let mut b = RetryPolicy::DEFAULT.backoff();
        let v: Vec<_> = (0..8).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(v, vec![100, 200, 400, 800, 1600, 3200, 5000, 5000]);
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_millis(100));
    }

    #[test]
    fn doubles_up_to_max_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(10), Duration::from_millis(35));
        let v: Vec<_> = (0..4).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(v, vec![10, 20, 35, 35]);
        b.reset();
        assert_eq!(b.next_delay().as_millis(), 10);
    }

    #[test]
    fn degenerate_bounds_are_made_usable() {
        let mut b = Backoff::new(Duration::ZERO, Duration::ZERO);
        assert_eq!(b.next_delay(), Duration::from_millis(1));
        assert_eq!(b.next_delay(), Duration::from_millis(1));
    }
}
