//! Waiting on the stop signal from blocking threads. The one stop signal is a
//! [`CancellationToken`] (see [`crate::shutdown_on_signal`]); async code awaits
//! `token.cancelled()`, and threads that sleep between retries (the `bus` consumer and
//! producer, the outbox relay, retention) use [`sleep`], which wakes the moment the
//! token is cancelled instead of checking it every few hundred milliseconds.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

/// Sleeps up to `timeout` on the calling thread, returning early as soon as `token` is
/// cancelled. Returns whether the token is cancelled (`false`: the time ran out).
/// Needs no runtime: the cancellation unparks the thread.
pub fn sleep(token: &CancellationToken, timeout: Duration) -> bool {
    if token.is_cancelled() {
        return true;
    }
    // No deadline (sleep "forever") when `timeout` is too large for an `Instant`.
    let deadline = Instant::now().checked_add(timeout);
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut cx = Context::from_waker(&waker);
    // Polling registers the waker: `cancel()` then unparks this thread.
    let mut cancelled = pin!(token.cancelled());
    loop {
        if let Poll::Ready(()) = cancelled.as_mut().poll(&mut cx) {
            return true;
        }
        // Parking can end spuriously or on an unrelated unpark: re-check, sleep the rest.
        match deadline {
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return false;
                }
                thread::park_timeout(left);
            }
            None => thread::park(),
        }
    }
}

/// Wakes the sleeping thread.
struct Unpark(Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancel_wakes_a_sleeping_thread_early() {
        let token = CancellationToken::new();
        let sleeper = token.clone();
        let started = Instant::now();
        let thread = thread::spawn(move || sleep(&sleeper, Duration::from_secs(60)));
        // Let the thread reach its park (the test passes either way: a token cancelled
        // before the sleep starts returns at once too).
        thread::sleep(Duration::from_millis(50));
        token.cancel();
        assert!(thread.join().unwrap(), "a cancelled token returns true");
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn timeout_returns_false_when_not_cancelled() {
        let token = CancellationToken::new();
        let started = Instant::now();
        assert!(!sleep(&token, Duration::from_millis(50)));
        assert!(started.elapsed() >= Duration::from_millis(50));
        assert!(!token.is_cancelled());
    }

    #[test]
    fn an_already_cancelled_token_returns_at_once() {
        let token = CancellationToken::new();
        token.cancel();
        let started = Instant::now();
        assert!(sleep(&token, Duration::from_secs(60)));
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn a_child_token_wakes_when_its_parent_is_cancelled() {
        let parent = CancellationToken::new();
        let child = parent.child_token();
        let thread = thread::spawn(move || sleep(&child, Duration::from_secs(60)));
        thread::sleep(Duration::from_millis(50));
        parent.cancel();
        assert!(thread.join().unwrap());
    }
}
