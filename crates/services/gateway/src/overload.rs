//! The bound on requests in flight (`GATEWAY_MAX_IN_FLIGHT`).
//!
//! Each `/orders` request takes a permit before anything else (before its body is
//! read) and holds it until its answer is ready. When none is left the request is
//! answered at once with 503 `Unavailable` and `Retry-After: 1` ([`crate::errors`]
//! adds the header to every 503), instead of queueing behind the others until the
//! deadline to orders passes and it gets 504 anyway. `/healthz`, `/readyz`,
//! `/metrics` and the documentation routes take no permit: an overloaded gateway
//! still answers its probes.
//!
//! Metrics: `gateway_requests_shed_total` (answered 503 by this bound) and
//! `gateway_requests_in_flight` (permits held, as of the last change).

use std::sync::Arc;

use ops_http::{Counter, Gauge, Metrics};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::Code;

use crate::errors::ApiError;

/// The bound, shared by every request.
#[derive(Clone)]
pub struct InFlight {
    inner: Arc<Inner>,
}

struct Inner {
    permits: Arc<Semaphore>,
    max: usize,
    shed: Counter,
    in_flight: Gauge,
}

/// A request's permit: released (and the gauge updated) when dropped.
pub struct Admitted {
    _permit: OwnedSemaphorePermit,
    inner: Arc<Inner>,
}

impl InFlight {
    /// At most `max` requests at once (at least 1; larger than tokio's semaphore
    /// maximum is capped to it).
    pub fn new(max: u32, metrics: &Metrics) -> Self {
        let max = usize::try_from(max)
            .unwrap_or(Semaphore::MAX_PERMITS)
            .clamp(1, Semaphore::MAX_PERMITS);
        Self {
            inner: Arc::new(Inner {
                permits: Arc::new(Semaphore::new(max)),
                max,
                shed: metrics.counter(
                    "gateway_requests_shed_total",
                    "Requests answered 503 at once because GATEWAY_MAX_IN_FLIGHT requests were in flight.",
                ),
                in_flight: metrics.gauge(
                    "gateway_requests_in_flight",
                    "Requests under /orders being handled (at most GATEWAY_MAX_IN_FLIGHT).",
                ),
            }),
        }
    }

    /// A permit, or the 503 the request is answered with.
    pub fn try_admit(&self) -> Result<Admitted, ApiError> {
        match self.inner.permits.clone().try_acquire_owned() {
            Ok(permit) => {
                self.inner.update_gauge();
                Ok(Admitted {
                    _permit: permit,
                    inner: self.inner.clone(),
                })
            }
            Err(_) => {
                self.inner.shed.inc();
                Err(ApiError::new(
                    Code::Unavailable,
                    format!(
                        "gateway overloaded: {} requests in flight, retry later",
                        self.inner.max
                    ),
                ))
            }
        }
    }
}

impl Inner {
    fn update_gauge(&self) {
        let held = self.max.saturating_sub(self.permits.available_permits());
        self.in_flight.set(i64::try_from(held).unwrap_or(i64::MAX));
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        // The permit field is dropped after this body: count it as released already.
        let held = self
            .inner
            .max
            .saturating_sub(self.inner.permits.available_permits())
            .saturating_sub(1);
        self.inner
            .in_flight
            .set(i64::try_from(held).unwrap_or(i64::MAX));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sheds_past_the_bound_and_admits_again_once_a_permit_is_back() {
        let metrics = Metrics::new();
        let bound = InFlight::new(2, &metrics);
        let first = bound.try_admit().ok();
        let second = bound.try_admit().ok();
        assert!(first.is_some() && second.is_some());
        let shed = bound.try_admit().err();
        assert_eq!(
            shed.as_ref().map(|err| (err.status.as_u16(), err.code)),
            Some((503, Code::Unavailable))
        );
        assert_eq!(bound.inner.shed.get(), 1);
        assert_eq!(bound.inner.in_flight.get(), 2);
        drop(first);
        assert_eq!(bound.inner.in_flight.get(), 1);
        assert!(bound.try_admit().is_ok());
        assert_eq!(bound.inner.shed.get(), 1);
    }
}
