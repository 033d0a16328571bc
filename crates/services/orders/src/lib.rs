//! The orders service: takes orders over gRPC and records them, with their
//! `OrderCreated` event, in PostgreSQL.
//!
//! How the parts fit:
//! - [`config`]: settings from defaults, an optional TOML file and the environment;
//! - `validation`: a `CreateOrderRequest` becomes a `NewOrder` or INVALID_ARGUMENT
//!   naming the field (checked arithmetic for the total);
//! - `store`: the order, its items and the outbox row in one transaction; reads;
//! - `grpc`: `orders.v1.OrdersService` on top of the store, blocking calls moved to
//!   `spawn_blocking`, database outages answered with UNAVAILABLE, calls past
//!   `ORDERS_MAX_IN_FLIGHT` refused at once with UNAVAILABLE ("orders overloaded");
//! - the `outbox` crate's relay (its own thread) publishes the outbox rows to
//!   `KAFKA_TOPIC`, woken by NOTIFY;
//! - the `retention` crate's thread deletes sent outbox rows older than
//!   `OUTBOX_RETENTION`, in bounded batches;
//! - this module: [`start`] binds the gRPC and operations ports and serves gRPC
//!   with reflection (v1 and v1alpha) and the standard health service at once
//!   (UNAVAILABLE and NOT_SERVING until the database is ready), prepares the
//!   database (create, migrate; retried while PostgreSQL is unreachable), then
//!   starts the relay and keeps readiness in step with the database. A broker that
//!   does not serve the `kafka` client's protocol versions (Apache Kafka 4.x) stops
//!   the relay and the service: [`StartError::UnsupportedBroker`].
//!
//! Tests and the `stack` runner call [`start`] directly; `main.rs` only adds
//! configuration, logging and signals.

pub mod config;
mod grpc;
mod store;
mod validation;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use ops_http::{Health, Metrics, OpsServer};
use proto::v1::orders_service_server::OrdersServiceServer;
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;
use tonic_health::{ServingStatus, server::HealthReporter};

pub use config::Config;
pub use grpc::OVERLOADED_PREFIX;
pub use store::{OrderStore, StoreError};
pub use validation::{MAX_ITEMS, NewOrder, ValidationError, validate};

mod embedded {
    refinery::embed_migrations!("../../../migrations/orders");
}

/// The schema migrations embedded from `migrations/orders` (applied by [`start`];
/// exposed for tools such as the benchmark's pgbench reference database).
pub fn migrations() -> refinery::Runner {
    embedded::migrations::runner()
}

/// The gRPC service name health checks are reported under.
pub const SERVICE_NAME: &str = "orders.v1.OrdersService";
const READINESS_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot prepare the database named by ORDERS_PG_DSN: {0}")]
    Database(#[from] pgsetup::SetupError),
    #[error("gRPC server failed: {0}")]
    Serve(String),
    #[error("reflection service: {0}")]
    Reflection(String),
    /// The brokers answer but cannot serve the `kafka` client (Apache Kafka 4.x): the
    /// outbox relay stopped, and the service with it.
    #[error("KAFKA_BROKERS names a broker this service cannot use: {0}")]
    UnsupportedBroker(#[source] bus::BusError),
}

/// A running orders service.
pub struct Running {
    /// Where gRPC is served (the bound address, useful with port 0).
    pub grpc_addr: SocketAddr,
    /// Where `/healthz`, `/readyz` and `/metrics` are served.
    pub health_addr: SocketAddr,
    task: JoinHandle<Result<(), StartError>>,
}

impl Running {
    /// Resolves when the service stops: after `shutdown` is cancelled, or on a fatal error.
    pub async fn wait(self) -> Result<(), StartError> {
        match self.task.await {
            Ok(result) => result,
            Err(err) => Err(StartError::Serve(format!("service task failed: {err}"))),
        }
    }
}

/// Binds the ports and starts the service in the background; see the crate docs.
pub async fn start(config: Config, shutdown: CancellationToken) -> Result<Running, StartError> {
    let grpc_listener = bind(config.orders_grpc_addr.get()).await?;
    let grpc_addr = local_addr(&grpc_listener, config.orders_grpc_addr.get())?;

    let ops = OpsServer::start(
        config.orders_health_addr.get(),
        &["database"],
        shutdown.clone(),
    )
    .await
    .map_err(|err| StartError::Bind {
        addr: err.addr,
        source: err.source,
    })?;
    let health_addr = ops.addr;
    let (health, metrics) = (ops.health.clone(), ops.metrics.clone());
    let task = tokio::spawn(async move {
        let result = serve(config, grpc_listener, health, metrics, shutdown.clone()).await;
        shutdown.cancel();
        ops.stopped().await;
        result
    });
    Ok(Running {
        grpc_addr,
        health_addr,
        task,
    })
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { addr, source })
}

fn local_addr(listener: &TcpListener, addr: SocketAddr) -> Result<SocketAddr, StartError> {
    listener
        .local_addr()
        .map_err(|source| StartError::Bind { addr, source })
}

async fn serve(
    config: Config,
    grpc_listener: TcpListener,
    health: Arc<Health>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> Result<(), StartError> {
    // Serve gRPC at once: until the database is ready, calls are UNAVAILABLE and
    // health says NOT_SERVING (a silent port would make clients time out instead).
    let (reporter, health_service) = tonic_health::server::health_reporter();
    for name in [SERVICE_NAME, ""] {
        reporter
            .set_service_status(name, ServingStatus::NotServing)
            .await;
    }
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|err| StartError::Reflection(err.to_string()))?;
    // grpcurl 1.8 only speaks v1alpha.
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .map_err(|err| StartError::Reflection(err.to_string()))?;
    let store_slot = grpc::StoreSlot::default();
    let server = tonic::transport::Server::builder()
        .add_service(OrdersServiceServer::new(grpc::OrdersApi::new(
            store_slot.clone(),
            &metrics,
            config.orders_max_in_flight,
        )))
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .serve_with_incoming_shutdown(
            TcpListenerStream::new(grpc_listener),
            shutdown.clone().cancelled_owned(),
        );
    let server = tokio::spawn(server);
    tracing::info!(addr = %config.orders_grpc_addr, "orders gRPC serving");

    let pool = match prepare_database(&config, &shutdown).await {
        Ok(Some(pool)) => pool,
        // Shut down while waiting for PostgreSQL (Ok), or a fatal set-up error.
        outcome => {
            shutdown.cancel();
            let _ = server.await;
            return outcome.map(|_| ());
        }
    };
    let store = OrderStore::new(pool.clone(), config.topic().to_owned());
    let _ = store_slot.set(store.clone());
    let relay = outbox::spawn_relay(
        relay_config(&config),
        pool.clone(),
        &metrics,
        shutdown.clone(),
    )
    .map_err(|err| StartError::Serve(format!("cannot start the outbox relay: {err}")))?;
    let retention = retention::Retention::new(
        pool,
        retention::RetentionConfig::new(config.retention_interval.get(), config.retention_batch),
        &[retention::Policy::new(
            outbox::RETENTION_TABLE,
            config.outbox_retention.get(),
        )],
        &metrics,
        shutdown.clone(),
    )
    .spawn()
    .map_err(|err| StartError::Serve(format!("cannot start retention: {err}")))?;
    let readiness = tokio::spawn(track_readiness(store, health, reporter, shutdown.clone()));

    let result = match server.await {
        Ok(served) => served.map_err(|err| StartError::Serve(err.to_string())),
        Err(err) => Err(StartError::Serve(format!("gRPC server task failed: {err}"))),
    };
    shutdown.cancel();
    let _ = readiness.await;
    // The relay stops by itself (cancelling `shutdown`) only on a broker it cannot use.
    let relay_result = match tokio::task::spawn_blocking(move || relay.join()).await {
        Ok(relayed) => relayed.map_err(StartError::UnsupportedBroker),
        Err(_) => Ok(()),
    };
    let _ = tokio::task::spawn_blocking(move || retention.join()).await;
    tracing::info!("orders stopped");
    result.and(relay_result)
}

fn relay_config(config: &Config) -> outbox::RelayConfig {
    outbox::RelayConfig {
        dsn: config.orders_pg_dsn.clone(),
        brokers: config.kafka_brokers.hosts().to_vec(),
        batch_size: config.outbox_batch_size,
        lease: config.outbox_lease.get(),
        poll_interval: config.kafka_sender_period.get(),
        ack_timeout: Duration::from_secs(5),
        client_id: "orders-outbox-relay".to_owned(),
    }
}

/// Creates and migrates the database, retrying while PostgreSQL is unreachable.
/// `None` when shutdown came first.
async fn prepare_database(
    config: &Config,
    shutdown: &CancellationToken,
) -> Result<Option<pgsetup::Pool>, StartError> {
    let options = pgsetup::PoolOptions {
        max_size: config.orders_db_pool_size,
        connect_timeout: config.orders_db_timeout.get(),
    };
    Ok(pgsetup::prepare_until_ready(&config.orders_pg_dsn, migrations, options, shutdown).await?)
}

/// Keeps `/readyz` and gRPC health in step with the database.
async fn track_readiness(
    store: OrderStore,
    health: Arc<Health>,
    reporter: HealthReporter,
    shutdown: CancellationToken,
) {
    loop {
        let probe = store.clone();
        let result = match tokio::task::spawn_blocking(move || probe.ping()).await {
            Ok(result) => result.map_err(|err| err.to_string()),
            Err(err) => Err(err.to_string()),
        };
        let status = if result.is_ok() {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        health.set("database", result);
        reporter.set_service_status(SERVICE_NAME, status).await;
        reporter.set_service_status("", status).await;
        tokio::select! {
            _ = shutdown.cancelled() => {
                reporter.set_service_status(SERVICE_NAME, ServingStatus::NotServing).await;
                reporter.set_service_status("", ServingStatus::NotServing).await;
                return;
            }
            _ = tokio::time::sleep(READINESS_INTERVAL) => {}
        }
    }
}
