//! The `kafka` crate side of the bus (`KAFKA_CLIENT=kafka`, the default): the
//! synchronous `kafka` crate, behind the same [`Producer`](crate::Producer) and
//! [`spawn_consumer`](crate::spawn_consumer) as librdkafka (`crate::rd`).
//!
//! It speaks only the pre-0.11 protocol (Apache Kafka 3.x, `devbroker`), so both the
//! producer and the consumer check the brokers' protocol versions
//! ([`check_broker_versions`](crate::check_broker_versions)) whenever they connect.
//! Every call into the crate goes through [`guarded`].

pub(crate) mod consumer;
pub(crate) mod producer;

use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::error::BusError;

/// Runs a `kafka` crate call, turning a panic inside it (it has `expect`s on network
/// input) into a transient error instead of taking the caller down.
pub(crate) fn guarded<T>(f: impl FnOnce() -> Result<T, BusError>) -> Result<T, BusError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(panic) => {
            let msg = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_owned());
            Err(BusError::ClientPanicked(msg))
        }
    }
}
