//! `bus`: the platform's Kafka adapter, on one of two clients chosen per service by
//! `KAFKA_CLIENT` ([`KafkaClient`], carried in [`ProducerConfig::client`] and
//! [`ConsumerConfig::client`]): the synchronous `kafka` crate (the default) or
//! librdkafka (`rdkafka`, built from its bundled source). Both run on dedicated
//! blocking threads, never on the async runtime; the services cannot tell them apart.
//! TLS and SASL ([`KafkaSecurity`], in [`ProducerConfig::security`] and
//! [`ConsumerConfig::security`], and for [`probe_secured`]) are librdkafka's only: the
//! `kafka` side refuses anything but plaintext.
//!
//! - [`Producer`]: blocking, acks from all in-sync replicas, a broker ack timeout,
//!   transient errors retried with backoff; keyed records (the key picks the partition).
//! - [`spawn_consumer`]: a consumer loop on a dedicated OS thread; a message's offset is
//!   committed only after the [`Handler`] returned `Ok` for it (a handler may take a
//!   whole poll, all its partitions, as one batch, e.g. one transaction); cancelling its
//!   `CancellationToken` (the platform's one stop signal, see `lifecycle::stop`) stops
//!   it cleanly with offsets committed. A service waits for it with
//!   [`ConsumerHandle::stopped`] and reports a [`ConsumerError`].
//! - [`probe()`]: a metadata round trip for readiness checks; [`readiness_probe`] is
//!   a service's `/readyz` check of its brokers, built from its [`KafkaConnection`].
//! - [`check_broker_versions`]: whether the brokers still serve the protocol versions the
//!   `kafka` crate sends; the producer and the consumer check it whenever they connect,
//!   and a broker that does not is [`BusError::UnsupportedBroker`], never retried.
//!
//! The `kafka` crate speaks only the pre-0.11 protocol: production needs Apache Kafka 3.x
//! (4.0 removed those versions), tests and local runs use `devbroker`. It has no group
//! membership: a consumer reads every partition it is given and uses the group only to
//! store offsets. librdkafka speaks to Apache Kafka 3.x and 4.x and joins the group:
//! the broker assigns and rebalances the partitions (see `rd::consumer`).
//!
//! How the files fit (imports only run downwards, from the dispatch to the clients to
//! the client-neutral types):
//!
//! - `consumer::api`, `producer::api`: the client-neutral types ([`ConsumerConfig`],
//!   [`Message`], [`Handler`], [`LagObserver`]; [`ProducerConfig`], [`Record`], the
//!   producer's retry backoff). They import no client.
//! - `kafka_crate` (`consumer`, `producer`, and the `guarded` call wrapper in its
//!   `mod.rs`) and `rd` (`consumer`, `producer`, the shared librdkafka settings in its
//!   `mod.rs`): one consumer loop and one producer per client, each built on the `api`
//!   types.
//! - `consumer::spawn` ([`spawn_consumer`], [`ConsumerHandle`]) and
//!   `producer::dispatch` ([`Producer`]): the public entry points, which pick the
//!   client's loop or producer from [`KafkaClient`].
//! - `compat`, `versions`, `wire`, `probe`: the protocol-version check and the readiness
//!   probe (hand-written requests, no client); `error`: [`BusError`], [`ConsumerError`];
//!   `partitioner`: the `kafka` crate side's murmur2 partitioner.

mod compat;
mod consumer;
mod error;
mod kafka_crate;
mod partitioner;
mod probe;
mod producer;
mod rd;
mod versions;
mod wire;

pub use compat::{check_broker_versions, check_broker_versions_for};
pub use consumer::api::{
    BatchFailure, ConsumerConfig, Handler, LAG_INTERVAL, LagObserver, Message, Subscription,
};
pub use consumer::spawn::{ConsumerHandle, spawn_consumer};
pub use error::{BusError, ConsumerError};
pub use probe::{READINESS_PROBE_TIMEOUT, probe, probe_for, probe_secured, readiness_probe};
pub use producer::api::{ProducerConfig, Record};
pub use producer::dispatch::Producer;
/// `KAFKA_CLIENT`: which client library the producer and the consumer run on.
pub use settings::KafkaClient;
/// A service's Kafka section: brokers, client and TLS/SASL together
/// ([`ConsumerConfig::for_service`], [`readiness_probe`]).
pub use settings::KafkaConnection;
/// `KAFKA_SECURITY_PROTOCOL`, `KAFKA_SSL_CA_LOCATION`, `KAFKA_SASL_*`: TLS and SASL
/// (librdkafka only).
pub use settings::{
    KafkaSecurity, RdkafkaProperties, SaslCredentials, SaslMechanism, Secret, SecurityProtocol,
};
pub use versions::{MissingVersion, VersionRange};
