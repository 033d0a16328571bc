//! `bus`: the platform's Kafka adapter on the synchronous `kafka` crate.
//!
//! - [`Producer`]: blocking, acks from all in-sync replicas, a broker ack timeout,
//!   transient errors retried with backoff; keyed records (the key picks the partition).
//! - [`spawn_consumer`]: a consumer loop on a dedicated OS thread; a message's offset is
//!   committed only after the [`Handler`] returned `Ok` for it (a handler may take a
//!   partition's poll as one batch, e.g. one transaction); cancelling its
//!   `CancellationToken` (the platform's one stop signal, see `lifecycle::stop`) stops
//!   it cleanly with offsets committed. A service waits for it with
//!   [`ConsumerHandle::stopped`] and reports a [`ConsumerError`].
//! - [`probe`]: a metadata round trip for readiness checks.
//! - [`check_broker_versions`]: whether the brokers still serve the protocol versions the
//!   `kafka` crate sends; the producer and the consumer check it whenever they connect,
//!   and a broker that does not is [`BusError::UnsupportedBroker`], never retried.
//!
//! The `kafka` crate speaks only the pre-0.11 protocol: production needs Apache Kafka 3.x
//! (4.0 removed those versions), tests and local runs use `devbroker`. It has no group
//! membership: a consumer reads every partition it is given and uses the group only to
//! store offsets.

mod compat;
mod consumer;
mod error;
mod partitioner;
mod probe;
mod producer;
mod versions;
mod wire;

pub use compat::check_broker_versions;
pub use consumer::{
    BatchFailure, ConsumerConfig, ConsumerHandle, Handler, LAG_INTERVAL, LagObserver, Message,
    spawn_consumer,
};
pub use error::{BusError, ConsumerError};
pub use probe::probe;
pub use producer::{Producer, ProducerConfig, Record};
pub use versions::{MissingVersion, VersionRange};
