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
//!   stops the worker: [`StartError::UnsupportedBroker`].
//!
//! Tests and the `stack` runner call [`start`] directly; `main.rs` only adds
//! configuration, logging and signals.

pub mod config;
mod handler;
pub mod sink;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use ops_http::{Health, OpsServer};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use config::{CONFIG_FILE_VAR, Config, DEFAULT_TOPIC, ENV_VARS, PartitionList};
pub use handler::{HandlerMetrics, StatusHandler};
pub use sink::{RedisSettings, RedisSink, RedisTls, SinkError};

/// The Kafka client id and the name in logs.
pub const CLIENT_ID: &str = "notifications";
const READINESS_INTERVAL: Duration = Duration::from_secs(1);
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("invalid configuration: {0}")]
    Config(#[from] settings::ConfigError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("redis client: {0}")]
    Redis(#[from] SinkError),
    #[error("cannot start the consumer: {0}")]
    Consumer(std::io::Error),
    #[error("consumer failed: {0}")]
    ConsumerFailed(#[source] bus::BusError),
    /// The brokers answer but cannot serve the `kafka` client (Apache Kafka 4.x).
    #[error("KAFKA_BROKERS names a broker this service cannot use: {0}")]
    UnsupportedBroker(#[source] bus::BusError),
    #[error("worker task failed: {0}")]
    Task(String),
}

/// A running notifications worker.
pub struct Running {
    /// Where `/healthz`, `/readyz` and `/metrics` are served.
    pub health_addr: SocketAddr,
    task: JoinHandle<Result<(), StartError>>,
}

impl Running {
    /// Resolves when the worker stops: after `shutdown` is cancelled (the message in
    /// hand finished and committed), or on a fatal error.
    pub async fn wait(self) -> Result<(), StartError> {
        match self.task.await {
            Ok(result) => result,
            Err(err) => Err(StartError::Task(err.to_string())),
        }
    }
}

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
    };
    let sink = RedisSink::new(redis.clone())?;
    let probe_sink = RedisSink::new(redis)?;

    let ops = OpsServer::start(
        config.notifications_health_addr.get(),
        &["redis", "broker"],
        shutdown.clone(),
    )
    .await
    .map_err(|err| StartError::Bind {
        addr: err.addr,
        source: err.source,
    })?;
    let health_addr = ops.addr;
    let health = ops.health.clone();
    let handler = StatusHandler::new(sink, HandlerMetrics::register(&ops.metrics));

    let brokers = config.kafka_brokers.hosts().to_vec();
    let consumer_config = bus::ConsumerConfig {
        partitions: config.kafka_partitions.selected(),
        lag_observer: Some(bus::LagObserver::metric(&ops.metrics)),
        ..bus::ConsumerConfig::new(
            brokers.clone(),
            config.topic(),
            &config.kafka_consumer_group,
            CLIENT_ID,
        )
    };
    let bus_shutdown = bus::Shutdown::new();
    let consumer = match bus::spawn_consumer(consumer_config, handler, bus_shutdown.clone()) {
        Ok(consumer) => consumer,
        Err(err) => {
            shutdown.cancel();
            ops.stopped().await;
            return Err(StartError::Consumer(err));
        }
    };
    tracing::info!(
        topic = config.topic(),
        group = %config.kafka_consumer_group,
        partitions = %config.kafka_partitions,
        redis = %config.redis_addr,
        "notifications consuming"
    );

    let task = tokio::spawn(async move {
        let readiness = tokio::spawn(track_readiness(
            probe_sink,
            brokers,
            health,
            shutdown.clone(),
        ));
        let result = consumer
            .stop_when_cancelled(bus_shutdown, &shutdown)
            .await
            .map_err(|err| match err {
                bus::BusError::UnsupportedBroker { .. } => StartError::UnsupportedBroker(err),
                err => StartError::ConsumerFailed(err),
            });
        shutdown.cancel();
        let _ = readiness.await;
        ops.stopped().await;
        tracing::info!("notifications stopped");
        result
    });
    Ok(Running { health_addr, task })
}

/// Keeps `/readyz` in step with Redis and the broker.
async fn track_readiness(
    mut sink: RedisSink,
    brokers: Vec<String>,
    health: Arc<Health>,
    shutdown: CancellationToken,
) {
    loop {
        let redis_check = tokio::task::spawn_blocking(move || {
            let result = sink.ping().map_err(|err| err.to_string());
            (sink, result)
        });
        let probe_brokers = brokers.clone();
        let broker_check = tokio::task::spawn_blocking(move || {
            bus::probe(&probe_brokers, PROBE_TIMEOUT).map_err(|err| err.to_string())
        });
        let (redis_result, broker_result) = tokio::join!(redis_check, broker_check);
        match redis_result {
            Ok((returned, result)) => {
                sink = returned;
                health.set("redis", result);
            }
            Err(err) => {
                health.set("redis", Err(err.to_string()));
                return;
            }
        }
        health.set(
            "broker",
            broker_result.unwrap_or_else(|err| Err(err.to_string())),
        );
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(READINESS_INTERVAL) => {}
        }
    }
}
