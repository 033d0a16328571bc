//! The notifications worker: reads `PaymentStatus` events from `status-topic` and
//! stores each as the customer's notification in Redis, under the order id, with a TTL.
//!
//! How the parts fit:
//! - [`config`]: settings from defaults, an optional TOML file and the environment
//!   (the Go worker's `REDIS_*` and `KAFKA_*` names);
//! - [`sink`]: the Redis writer, `SET <order id> <Notification JSON> PX <ttl>`,
//!   idempotent by construction, reconnecting after any error;
//! - `handler`: the `bus::Handler`: decode and validate, poison messages logged and
//!   counted then committed, Redis failures returned as errors so the message is
//!   retried and its offset not committed;
//! - this module: [`start`] binds the operations port (`/healthz`, `/readyz` for
//!   Redis and the broker, `/metrics`), runs the `bus` consumer on its dedicated
//!   thread, and on shutdown lets it finish the message in hand and commit. A broker
//!   that does not serve the `kafka` client's protocol versions (Apache Kafka 4.x)
//!   stops the worker: [`StartError::Consumer`] with
//!   [`bus::ConsumerError::UnsupportedBroker`].
//!
//! The scaffolding is the `service_skeleton` crate's, shared by every service: the
//! [`Running`] handle, the readiness probes, and the start-up errors kept as the
//! causes (`source()`) of [`StartError`].
//!
//! Tests and the `stack` runner call [`start`] directly; `main.rs` only adds
//! configuration, logging and signals.

pub mod config;
mod handler;
pub mod sink;

use ops_http::OpsServer;
use service_skeleton::{BindError, OpsAddresses, Readiness, TaskError};
use tokio_util::sync::CancellationToken;

pub use config::{CONFIG_FILE_VAR, Config, DEFAULT_TOPIC, ENV_VARS, PartitionList};
pub use handler::{HandlerMetrics, StatusHandler};
pub use sink::{RedisSettings, RedisSink, RedisTls, SinkError};

/// The Kafka client id and the name in logs.
pub const CLIENT_ID: &str = "notifications";

/// Why the worker could not start, or stopped on its own.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("invalid configuration")]
    Config(#[from] settings::ConfigError),
    #[error(transparent)]
    Bind(#[from] BindError),
    #[error("redis client")]
    Redis(#[from] SinkError),
    /// The consumer did not start, failed, or found a broker it cannot use.
    #[error(transparent)]
    Consumer(#[from] bus::ConsumerError),
    /// The worker's task panicked.
    #[error(transparent)]
    Task(#[from] TaskError),
}

/// A running notifications worker: `health_addr`, and `wait()`, which resolves when
/// it stops (after `shutdown` is cancelled: the message in hand finished and
/// committed), or on a fatal error.
pub type Running = service_skeleton::Running<OpsAddresses, StartError>;

/// Binds the operations port and starts consuming in the background; see the crate docs.
pub async fn start(config: Config, shutdown: CancellationToken) -> Result<Running, StartError> {
    let config = config.check()?;
    let (host, port) = config.redis_host_port()?;
    let redis = RedisSettings {
        host,
        port,
        db: config.redis_db,
        user: Some(config.redis_user.clone()).filter(|user| !user.is_empty()),
        password: Some(config.redis_password.clone()).filter(|password| !password.is_empty()),
        ttl: config.ttl(),
        key_prefix: config.redis_key_prefix.clone(),
        tls: config.redis_tls_settings()?,
        connect_timeout: config.redis_dial_timeout(),
        io_timeout: config.redis_io_timeout(),
    };
    let sink = RedisSink::new(redis.clone())?;
    let mut probe_sink = RedisSink::new(redis)?;

    let ops = OpsServer::start(
        config.notifications_health_addr.get(),
        &["redis", "broker"],
        shutdown.clone(),
    )
    .await?;
    let addrs = OpsAddresses {
        health_addr: ops.addr,
    };
    let handler = StatusHandler::new(sink, HandlerMetrics::register(&ops.metrics));

    let subscription = bus::Subscription {
        topic: config.topic(),
        group: &config.kafka_consumer_group,
        partitions: &config.notifications_kafka_partitions,
        client_id: CLIENT_ID,
    };
    let consumer_config =
        bus::ConsumerConfig::for_service(&config.kafka, &subscription, &ops.metrics);
    // `/readyz`: Redis and the broker.
    let readiness = Readiness::new(ops.health.clone())
        .probe("redis", move || probe_sink.ping())
        .probe("broker", bus::readiness_probe(&config.kafka));
    let consumer = match bus::spawn_consumer(consumer_config, handler, shutdown.clone()) {
        Ok(consumer) => consumer,
        Err(err) => {
            shutdown.cancel();
            ops.stopped().await;
            return Err(err.into());
        }
    };
    tracing::info!(
        topic = config.topic(),
        group = %config.kafka_consumer_group,
        partitions = %config.notifications_kafka_partitions,
        redis = %config.redis_addr,
        "notifications consuming"
    );

    let stop = shutdown.clone();
    let work = async move {
        let readiness = readiness.spawn(stop.clone());
        let result = consumer.stopped().await.map_err(StartError::from);
        stop.cancel();
        let _ = readiness.await;
        result
    };
    Ok(Running::spawn(
        "notifications",
        addrs,
        Some(ops),
        shutdown,
        work,
    ))
}
