//! The orders service: takes orders over gRPC and records them, with their
//! `OrderCreated` event, in PostgreSQL.
//!
//! How the parts fit:
//! - [`config`]: settings from defaults, an optional TOML file and the environment;
//! - `validation`: a `CreateOrderRequest` becomes a `NewOrder` or INVALID_ARGUMENT
//!   naming the field (checked arithmetic for the total);
//! - `store`: reads; and (`store::write`) many orders, their items, outbox rows and
//!   idempotency keys in one statement, so one transaction;
//! - `batcher`: group commit: concurrent `CreateOrder` calls written together, up to
//!   `ORDERS_BATCH_MAX` orders per transaction, each caller answered on its own (its
//!   order, a replay under its key, or its key's conflict);
//! - `grpc`: `orders.v1.OrdersService` on top of the store, blocking calls moved to
//!   `spawn_blocking`, database outages answered with UNAVAILABLE, calls past
//!   `ORDERS_MAX_IN_FLIGHT` refused at once with UNAVAILABLE ("orders overloaded");
//! - the `outbox` crate's relay (its own thread) publishes the outbox rows to
//!   `KAFKA_TOPIC`, woken by NOTIFY;
//! - the `retention` crate's thread deletes sent outbox rows older than
//!   `OUTBOX_RETENTION`, and idempotency keys older than `ORDERS_IDEMPOTENCY_TTL`, in
//!   bounded batches;
//! - [`payment_results`]: the `PaymentStatus` consumer (the inbox's consume-once
//!   loop) that moves each order from `new` to `paid` or `payment_failed`;
//! - [`idempotency`]: `CreateOrder` under an `idempotency-key` (metadata) answers a
//!   retried request with the order it created, in the same statement as the order;
//! - this module: [`start`] binds the gRPC and operations ports and serves gRPC
//!   with reflection (v1 and v1alpha) and the standard health service at once
//!   (UNAVAILABLE and NOT_SERVING until the database is ready), in plaintext or,
//!   with `ORDERS_GRPC_TLS_CERT`/`ORDERS_GRPC_TLS_KEY`, over TLS (mutual TLS with
//!   `ORDERS_GRPC_CLIENT_CA`) from the `grpc_tls` crate's connection stream, its
//!   certificates reloaded when their files change or on SIGHUP; it prepares the
//!   database (create, migrate, or take over the Go orders service's database:
//!   [`takeover`]; retried while PostgreSQL is unreachable), then
//!   starts the relay and keeps readiness in step with the database. A broker that
//!   does not serve the `kafka` client's protocol versions (Apache Kafka 4.x) stops
//!   the relay and the service: [`outbox::WorkersError::UnsupportedBroker`].
//!
//! The scaffolding is the `service_skeleton` crate's, shared by every service: the
//! [`Running`] handle, the readiness probes, and the start-up errors kept as the
//! causes (`source()`) of [`StartError`].
//!
//! Tests and the `stack` runner call [`start`] directly; `main.rs` only adds
//! configuration, logging and signals.

mod batcher;
pub mod config;
mod grpc;
pub mod idempotency;
pub mod payment_results;
mod store;
pub mod takeover;
#[cfg(feature = "testing")]
pub mod testing;
mod validation;

use std::{net::SocketAddr, sync::Arc};

use ops_http::{Health, Metrics, OpsServer};
use proto::v1::orders_service_server::OrdersServiceServer;
use service_skeleton::{BindError, Readiness, TaskError};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;
use tonic_health::{ServingStatus, server::HealthReporter};

pub use config::Config;
pub use grpc::{OVERLOADED_PREFIX, OWNER_METADATA};
use payment_results::{PaymentResults, ResultMetrics};
pub use store::{Created, OrderStore, StoreError};
pub use validation::{MAX_ITEMS, NewOrder, ValidationError, validate};

mod embedded {
    refinery::embed_migrations!("../../../migrations/orders");
}

/// Checksums of orders' migrations before reviewed edits (see
/// [`pgsetup::Superseded`]): V1 and V2 before the outbox table moved to the outbox's
/// own migrations, V4 before its comments stopped citing the issue tracker.
const SUPERSEDED: &[pgsetup::Superseded] = &[
    pgsetup::Superseded::new(1, 5_246_704_316_077_698_593),
    pgsetup::Superseded::new(2, 8_679_723_856_987_840_998),
    pgsetup::Superseded::new(4, 2_309_476_027_315_397_730),
];

/// The database orders needs, applied by [`start`]: the outbox's and the inbox's
/// migrations, then its own from `migrations/orders` (exposed for tools such as the benchmark's
/// pgbench reference database).
pub fn schema() -> pgsetup::Schema {
    let own = pgsetup::MigrationSet::new(embedded::migrations::runner()).superseded(SUPERSEDED);
    pgsetup::Schema::of([outbox::migrations(), inbox::migrations(), own])
}

/// The gRPC service name health checks are reported under.
pub const SERVICE_NAME: &str = "orders.v1.OrdersService";

/// Why orders could not start, or stopped on its own.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Bind(#[from] BindError),
    #[error("cannot prepare the database named by ORDERS_PG_DSN")]
    Database(#[from] pgsetup::SetupError),
    #[error("gRPC server failed")]
    Serve(#[source] tonic::transport::Error),
    /// The gRPC TLS settings are inconsistent (only a test's hand-made `Config` gets
    /// here; `Config::from_env` refuses them first).
    #[error(transparent)]
    Config(settings::ConfigError),
    /// A gRPC TLS file cannot be used; the error names the variable and the file.
    #[error(transparent)]
    Tls(#[from] grpc_tls::TlsError),
    #[error("reflection service")]
    Reflection(#[source] tonic_reflection::server::Error),
    /// The outbox relay or retention did not start, or the relay found a broker it
    /// cannot use (Apache Kafka 4.x) and stopped the service.
    #[error(transparent)]
    Outbox(#[from] outbox::WorkersError),
    /// The payment-results consumer did not start, failed, or found a broker it
    /// cannot use.
    #[error(transparent)]
    Consumer(#[from] bus::ConsumerError),
    /// The service's task, or its gRPC server's, panicked.
    #[error(transparent)]
    Task(#[from] TaskError),
}

/// Where a running orders service listens (fields of [`Running`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Addresses {
    /// Where gRPC is served (the bound address, useful with port 0).
    pub grpc_addr: SocketAddr,
    /// Where `/healthz`, `/readyz` and `/metrics` are served.
    pub health_addr: SocketAddr,
}

/// A running orders service: `grpc_addr`, `health_addr`, and `wait()`, which
/// resolves when it stops (after `shutdown` is cancelled, or on a fatal error).
pub type Running = service_skeleton::Running<Addresses, StartError>;

/// Binds the ports and starts the service in the background; see the crate docs.
pub async fn start(config: Config, shutdown: CancellationToken) -> Result<Running, StartError> {
    let (grpc_listener, grpc_addr) = service_skeleton::bind(config.orders_grpc_addr.get()).await?;
    // Loaded before anything is served: a file that cannot be used stops the start.
    let grpc_tls = match config.grpc_tls().map_err(StartError::Config)? {
        Some(files) => Some(GrpcTls {
            mode: if files.mutual() { "mutual" } else { "on" },
            cert: files.cert.path.display().to_string(),
            client_ca: files
                .client_ca
                .as_ref()
                .map(|ca| ca.path.display().to_string()),
            config: files.reloading(
                "orders gRPC server",
                grpc_tls::ReloadOptions::default(),
                shutdown.clone(),
            )?,
        }),
        None => None,
    };
    let ops = OpsServer::start(
        config.orders_health_addr.get(),
        &["database"],
        shutdown.clone(),
    )
    .await?;
    let addrs = Addresses {
        grpc_addr,
        health_addr: ops.addr,
    };
    let work = serve(
        config,
        grpc_listener,
        grpc_tls,
        ops.health.clone(),
        ops.metrics.clone(),
        shutdown.clone(),
    );
    Ok(Running::spawn("orders", addrs, Some(ops), shutdown, work))
}

/// The gRPC port's TLS, when `ORDERS_GRPC_TLS_CERT` and `ORDERS_GRPC_TLS_KEY` are set.
struct GrpcTls {
    /// `on`, or `mutual` with `ORDERS_GRPC_CLIENT_CA`: for the start-up log.
    mode: &'static str,
    cert: String,
    client_ca: Option<String>,
    config: grpc_tls::ReloadingServerConfig,
}

async fn serve(
    config: Config,
    grpc_listener: TcpListener,
    grpc_tls: Option<GrpcTls>,
    health: Arc<Health>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> Result<(), StartError> {
    // Serve gRPC at once: until the database is ready, calls are UNAVAILABLE and
    // health says NOT_SERVING (a silent port would make clients time out instead).
    let (reporter, health_service) = tonic_health::server::health_reporter();
    report_serving(&reporter, false).await;
    let store_slot = grpc::StoreSlot::default();
    let router = grpc_server(&config, store_slot.clone(), &metrics)?.add_service(health_service);
    let stop = shutdown.clone().cancelled_owned();
    // The same services either way; only the connections differ.
    let server = match grpc_tls {
        Some(tls) => {
            // Paths only: never the key or its file's contents.
            tracing::info!(
                addr = %config.orders_grpc_addr,
                tls = tls.mode,
                cert = %tls.cert,
                client_ca = tls.client_ca.as_deref().unwrap_or("-"),
                "orders gRPC serving over TLS"
            );
            let incoming = grpc_tls::TlsIncoming::new(
                grpc_listener,
                tls.config,
                grpc_tls::DEFAULT_HANDSHAKE_TIMEOUT,
            );
            tokio::spawn(router.serve_with_incoming_shutdown(incoming, stop))
        }
        None => {
            tracing::info!(addr = %config.orders_grpc_addr, tls = "off", "orders gRPC serving");
            let incoming = TcpListenerStream::new(grpc_listener);
            tokio::spawn(router.serve_with_incoming_shutdown(incoming, stop))
        }
    };

    let pool = match prepare_database(&config, &shutdown).await {
        Ok(Some(pool)) => pool,
        // Shut down while waiting for PostgreSQL (Ok), or a fatal set-up error.
        outcome => {
            shutdown.cancel();
            let _ = server.await;
            return outcome.map(|_| ());
        }
    };
    let store = OrderStore::new(
        pool.clone(),
        config.topic().to_owned(),
        config.orders_idempotency_ttl.get(),
    );
    let _ = store_slot.set(store.clone());
    let background = Background::start(&config, pool, &metrics, &shutdown).await?;
    // `/readyz` and gRPC health follow the database.
    let readiness = Readiness::new(health)
        .probe("database", move || store.ping())
        .run(shutdown.clone(), move |ready| {
            let reporter = reporter.clone();
            async move { report_serving(&reporter, ready).await }
        });
    let readiness = tokio::spawn(readiness);

    let result = match server.await {
        Ok(served) => served.map_err(StartError::Serve),
        Err(source) => Err(TaskError {
            task: "gRPC server",
            source,
        }
        .into()),
    };
    shutdown.cancel();
    let _ = readiness.await;
    result.and(background.stopped().await)
}

/// The threads beside the gRPC server: the outbox relay, retention and, unless
/// `ORDERS_TRACK_PAYMENTS=false`, the payment-results consumer.
struct Background {
    outbox: outbox::OutboxWorkers,
    payment_results: Option<bus::ConsumerHandle>,
}

impl Background {
    async fn start(
        config: &Config,
        pool: pgsetup::Pool,
        metrics: &Metrics,
        shutdown: &CancellationToken,
    ) -> Result<Self, StartError> {
        let payment_results = if config.orders_track_payments {
            let handler = PaymentResults::new(pool.clone(), ResultMetrics::register(metrics));
            let subscription = bus::Subscription {
                topic: &config.kafka_topic_status,
                group: &config.orders_consumer_group,
                partitions: &config.orders_kafka_partitions,
                client_id: "orders-payment-results",
            };
            let consumer = bus::ConsumerConfig {
                fetch_min_bytes: payment_results::FETCH_MIN_BYTES,
                fetch_max_wait: payment_results::FETCH_MAX_WAIT,
                ..bus::ConsumerConfig::for_service(&config.kafka, &subscription, metrics)
            };
            let handle = bus::spawn_consumer(consumer, handler, shutdown.clone())?;
            tracing::info!(
                topic = %config.kafka_topic_status,
                group = %config.orders_consumer_group,
                partitions = %config.orders_kafka_partitions,
                "orders following payment results"
            );
            Some(handle)
        } else {
            None
        };
        let mut policies = vec![
            config.outbox().retention_policy(),
            idempotency::retention_policy(config.orders_idempotency_ttl.get()),
        ];
        if config.orders_track_payments {
            policies.extend(config.inbox().retention_policies());
        }
        let relay = config.outbox().relay_config(
            &config.orders_pg_dsn,
            &config.kafka,
            "orders-outbox-relay",
        );
        let retention = outbox::RetentionPlan {
            config: retention::RetentionConfig::new(
                config.retention_interval.get(),
                config.retention_batch,
            ),
            policies: &policies,
        };
        let outbox =
            outbox::OutboxWorkers::start(relay, retention, pool, metrics, shutdown).await?;
        Ok(Self {
            outbox,
            payment_results,
        })
    }

    /// Waits for every thread to stop (after `shutdown` was cancelled). The relay
    /// stops by itself (cancelling `shutdown`) only on a broker it cannot use.
    async fn stopped(self) -> Result<(), StartError> {
        let consumer_result = match self.payment_results {
            Some(consumer) => consumer.stopped().await.map_err(StartError::from),
            None => Ok(()),
        };
        let outbox_result = self.outbox.stopped().await.map_err(StartError::from);
        outbox_result.and(consumer_result)
    }
}

/// The gRPC services but health: orders.v1 on the store (once it is set) and
/// reflection, v1 and v1alpha (grpcurl 1.8 only speaks v1alpha).
fn grpc_server(
    config: &Config,
    store_slot: grpc::StoreSlot,
    metrics: &Metrics,
) -> Result<tonic::transport::server::Router, StartError> {
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(StartError::Reflection)?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .map_err(StartError::Reflection)?;
    Ok(tonic::transport::Server::builder()
        .add_service(OrdersServiceServer::new(grpc::OrdersApi::new(
            store_slot,
            metrics,
            config.orders_max_in_flight,
            grpc::BatchSettings {
                max: config.orders_batch_max,
                writers: batcher::writers_for_pool(config.orders_db_pool_size),
            },
        )))
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha))
}

/// gRPC health, for the service and the server as a whole (`""`).
async fn report_serving(reporter: &HealthReporter, serving: bool) {
    let status = if serving {
        ServingStatus::Serving
    } else {
        ServingStatus::NotServing
    };
    for name in [SERVICE_NAME, ""] {
        reporter.set_service_status(name, status).await;
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
    let topic = config.topic().to_owned();
    let schema = move || schema().taking_over(takeover::go_orders(&topic));
    Ok(pgsetup::prepare_until_ready(&config.orders_pg_dsn, schema, options, shutdown).await?)
}
