//! Support for the platform's tests, which run against real servers in parallel.
//!
//! - [`TestDatabase`]: a uniquely named database on the local PostgreSQL
//!   (`TEST_PG_URL`, default `postgres://postgres:postgres@127.0.0.1:5432`), dropped when the
//!   test ends. The services create it themselves at start-up, as in production.
//! - [`redis_url`] and [`unique_name`]: the local Redis (`TEST_REDIS_URL`) and names
//!   that do not collide between tests.
//! - [`TcpProxy`]: a loopback proxy in front of a real server that a test can cut and
//!   restore, to see a service live through an outage without stopping the shared server.
//! - [`ServiceProcess`]: a workspace binary run as a real process (kill -9, SIGTERM,
//!   restart), its output kept in a log file and shown when the test fails.
//! - [`run_to_exit`]: run a binary with a given environment to its exit (code, stderr),
//!   and [`assert_setting_refused`] / [`assert_settings_refused`] on top of it
//!   ([`ServiceBinary`] bundles a service's binary with the variables it reads,
//!   [`service_binary!`] writes it for a service crate's own tests);
//!   [`KillOnDrop`]: a plain child process that a failing test does not leave behind.
//! - [`with_db`] and [`row_counts`]: look into a database from async test code.
//! - [`service_config_tests!`], [`config_refusal`], [`OUTBOX_AND_INBOX_BAD_SETTINGS`]
//!   and [`go_env`]: the services' configuration tests (bad values refused by the
//!   binary, naming the variable) and the Go env files they read.
//! - [`TestDatabase::create_as_go`], [`insert_go_order`], [`insert_go_payment`] and
//!   [`snapshot`]: the Go platform's databases as its goose migrations leave them,
//!   filled as the Go services write, for the take-over tests.
//! - [`metric`] and [`wait_for_metric`]: read a counter from a service's `/metrics`.
//! - [`assert_mentions`] and [`assert_hides`]: what an error message must and must not say.
//! - [`wait_until`]: poll a condition up to a deadline (a deadline, not a timing assert).
//! - [`runtime`]: a two-thread Tokio runtime for a test whose own code is synchronous.
//! - [`TestBroker`]: a Kafka broker for one test, devbroker or Apache Kafka
//!   ([`BrokerKind`]); [`on_each_broker!`] writes one test per kind from one test
//!   function, so behaviour tests are parameterized, not copied. A [`Setup`] pairs a
//!   broker kind with a Kafka client ([`KafkaClient`], `KAFKA_CLIENT`);
//!   [`on_each_client!`] runs a test on every supported pair, [`on_rdkafka!`] on
//!   librdkafka's (Apache Kafka 3.9 and 4.x); all three are lists for [`on_setups!`].
//! - [`TlsPostgres`], [`TlsRedis`] and [`TestCerts`]: a private PostgreSQL or Redis
//!   speaking TLS with a certificate made in the test (a test CA signing it).
//! - [`TestCa`]: test CAs issuing server and client certificates, for TLS and mutual
//!   TLS tests (the gRPC hop between the gateway and orders).
//! - [`KafkaBroker`]: Apache Kafka 3.9 or 4.x ([`KafkaLine`]) in single-node KRaft
//!   mode from the jars `scripts/fetch-kafka.sh` fetches: SIGKILL, restart on its log
//!   directory, topic creation.
//! - [`KafkaCluster`]: a 3-node Apache Kafka cluster (KRaft, 3 controller voters,
//!   replication factor 3, `min.insync.replicas=2`): SIGKILL and restart of one node,
//!   which node leads which partition, waits for a new leader and for replicas back in
//!   sync. [`TestBroker::start_cluster`] runs the e2e platform on it.
//! - [`OtlpReceiver`]: a real OTLP trace receiver (gRPC or HTTP/protobuf) on a free
//!   port, to check the spans a service exports ([`ReceivedSpan`]).
//! - `worker` (feature `worker`): a worker service (payments, notifications) on its
//!   own runtime against an in-process devbroker, with a producer to feed it.
#![allow(clippy::unwrap_used)]

mod broker;
mod config_tests;
mod database;
mod go_platform;
mod kafka;
mod kafka_admin;
mod kafka_cluster;
mod otlp;
mod pki;
mod process;
mod proxy;
mod tls_servers;
#[cfg(feature = "worker")]
pub mod worker;

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

pub use broker::{BrokerKind, Setup, TestBroker};
pub use config_tests::{OUTBOX_AND_INBOX_BAD_SETTINGS, config_refusal, go_env};
pub use database::{HeldLock, TestDatabase, pg_base_url, row_counts, with_db};
pub use go_platform::{GoOrder, GoService, insert_go_order, insert_go_payment, snapshot};
pub use kafka::{KafkaBroker, KafkaLine, SASL_PASSWORD, SASL_USER};
pub use kafka_admin::PartitionState;
pub use kafka_cluster::{CLUSTER_NODES, KafkaCluster};
pub use otlp::{OtlpReceiver, ReceivedSpan};
pub use pki::{CertFiles, Issued, TestCa};
pub use process::{
    KillOnDrop, ServiceBinary, ServiceProcess, assert_kafka_security_refused,
    assert_setting_refused, assert_settings_refused, binary, free_port, http_get_status,
    http_request, http_request_with, metric, run_to_exit, service_vars, wait_for_metric,
    wait_http_ok,
};
pub use proxy::TcpProxy;
/// `KAFKA_CLIENT`: the client a [`Setup`] runs the code under test on.
pub use settings::KafkaClient;
pub use tls_servers::{TestCerts, TlsPostgres, TlsRedis};

/// `(api_key, min_version, max_version)` for every API the broker at `addr` serves
/// (ApiVersions v0).
pub fn broker_api_versions(addr: &str) -> std::io::Result<Vec<(i16, i16, i16)>> {
    kafka_admin::api_versions(addr)
}

/// `redis://127.0.0.1:6379` unless `TEST_REDIS_URL` says otherwise.
pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A name unique to this test run: `{prefix}_{pid}_{counter}_{random}`, lowercase.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    format!(
        "{prefix}_{}_{}_{:06x}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        rand::random::<u32>() & 0xff_ffff
    )
}

/// Asserts that `text` (an error message, a binary's stderr) contains each of `parts`.
#[track_caller]
pub fn assert_mentions(text: &str, parts: &[&str]) {
    for part in parts {
        assert!(text.contains(part), "no {part:?} in: {text}");
    }
}

/// Asserts that `text` does not show `secret` (e.g. the password of a DSN).
#[track_caller]
pub fn assert_hides(text: &str, secret: &str) {
    assert!(!text.contains(secret), "{secret:?} shown: {text}");
}

/// A multi-threaded runtime (two workers) for one test: the test's own code stays
/// synchronous where it talks to PostgreSQL through the blocking `postgres` client,
/// and its [`TestDatabase`] is dropped outside any runtime.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Calls `check` every 20 ms until it returns `Some`, or panics after `deadline`
/// with `what` in the message.
pub fn wait_until<T>(deadline: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(value) = check() {
            return value;
        }
        if start.elapsed() > deadline {
            panic!("timed out after {deadline:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Async twin of [`wait_until`].
pub async fn wait_until_async<T, F, Fut>(deadline: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if start.elapsed() > deadline {
            panic!("timed out after {deadline:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
