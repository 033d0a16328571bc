//! The payments worker: reads `OrderCreated` events from `order-topic`, decides each
//! order's payment, and publishes the `PaymentStatus` to `status-topic` through its
//! own transactional outbox.
//!
//! How the parts fit:
//! - [`config`]: settings from defaults, an optional TOML file and the environment
//!   (the Go worker's `PAYMENTS_*` and `KAFKA_*` names);
//! - [`provider`]: the [`PaymentProvider`] trait and the deterministic
//!   [`SimulatedProvider`] (Go's rule: even order id succeeds, odd fails), the
//!   default; [`stripe`]: Stripe's PaymentIntents API (`PAYMENTS_PROVIDER=stripe`),
//!   idempotent per event, retried, behind a circuit breaker;
//! - [`store`]: one PostgreSQL transaction per event: `processed_events` (a duplicate
//!   `event_id` is skipped), the payment, its `PaymentStatus` outbox row; poison
//!   messages kept in `dead_letters`;
//! - `handler`: the `bus::Handler`: decode and validate, poison messages recorded
//!   then committed, database outages returned as errors so the message is retried
//!   and its offset not committed;
//! - the `outbox` relay (shared with orders) publishes the outbox rows;
//! - the `retention` crate's thread deletes sent outbox rows, `processed_events` and
//!   `dead_letters` older than their windows (`*_RETENTION`), in bounded batches;
//! - [`dead_letters`]: the operator's `payments dead-letters list|replay` commands,
//!   which re-publish kept messages through the normal idempotent path;
//! - this module: [`start`] binds the operations port (`/healthz`, `/readyz` for
//!   PostgreSQL, the broker and the provider's circuit, `/metrics`), prepares the database (create, migrate,
//!   or take over the Go payments service's database: [`takeover`]; retried while
//!   PostgreSQL is unreachable), then runs the relay and the `bus`
//!   consumer on their own threads; on shutdown the consumer finishes the message
//!   in hand and commits. A broker that does not serve the `kafka` client's protocol
//!   versions (Apache Kafka 4.x) stops the worker: [`outbox::WorkersError::UnsupportedBroker`]
//!   from the relay, [`bus::ConsumerError::UnsupportedBroker`] from the consumer.
//!
//! The scaffolding is the `service_skeleton` crate's, shared by every service: the
//! [`Running`] handle, the readiness probes, and the start-up errors kept as the
//! causes (`source()`) of [`StartError`].
//!
//! Tests and the `stack` runner call [`start`] directly; `main.rs` only adds
//! configuration, logging and signals.

pub mod config;
pub mod dead_letters;
mod handler;
pub mod provider;
pub mod store;
pub mod stripe;
pub mod takeover;

use std::sync::Arc;

use ops_http::{Health, Metrics, OpsServer};
use service_skeleton::{BindError, OpsAddresses, Readiness, TaskError};
use tokio_util::sync::CancellationToken;

pub use config::{CONFIG_FILE_VAR, Config, ENV_VARS, PartitionList, ProviderChoice};
pub use handler::{HandleError, HandlerMetrics, OrderHandler};
pub use provider::{Decision, PaymentProvider, ProviderError, SimulatedProvider};
pub use store::{PaymentStore, Processed, StoreError};
pub use stripe::{StripeProvider, StripeSettings};

mod embedded {
    refinery::embed_migrations!("../../../migrations/payments");
}

/// Checksums of payments' migrations before the outbox's table and then the inbox's
/// tables moved to their owners' migrations (see [`pgsetup::Superseded`]).
const SUPERSEDED: &[pgsetup::Superseded] = &[
    pgsetup::Superseded::new(1, 1_755_324_436_353_812_171),
    pgsetup::Superseded::new(2, 9_212_255_282_338_458_441),
    pgsetup::Superseded::new(1, 3_337_749_247_454_870_399),
    pgsetup::Superseded::new(2, 6_241_584_207_050_803_967),
];

/// The database payments needs, applied by [`start`]: the outbox's and the inbox's
/// migrations, then its own from `migrations/payments`.
pub fn schema() -> pgsetup::Schema {
    let own = pgsetup::MigrationSet::new(embedded::migrations::runner()).superseded(SUPERSEDED);
    pgsetup::Schema::of([outbox::migrations(), inbox::migrations(), own])
}

/// The Kafka client id of the consumer and the name in logs.
pub const CLIENT_ID: &str = "payments";

/// Why the worker could not start, or stopped on its own.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("invalid configuration")]
    Config(#[from] settings::ConfigError),
    #[error(transparent)]
    Bind(#[from] BindError),
    #[error("cannot prepare the database named by PAYMENTS_PG_DSN")]
    Database(#[from] pgsetup::SetupError),
    #[error("cannot set up the payment provider (PAYMENTS_PROVIDER)")]
    Provider(#[from] stripe::StripeSetupError),
    /// The outbox relay or retention did not start, or the relay found a broker it
    /// cannot use (Apache Kafka 4.x) and stopped the worker.
    #[error(transparent)]
    Outbox(#[from] outbox::WorkersError),
    /// The consumer did not start, failed, or found a broker it cannot use.
    #[error(transparent)]
    Consumer(#[from] bus::ConsumerError),
    /// The worker's task panicked.
    #[error(transparent)]
    Task(#[from] TaskError),
}

/// A running payments worker: `health_addr`, and `wait()`, which resolves when it
/// stops (after `shutdown` is cancelled: the message in hand finished and
/// committed, the relay stopped), or on a fatal error.
pub type Running = service_skeleton::Running<OpsAddresses, StartError>;

/// Binds the operations port and starts the worker in the background; see the crate docs.
pub async fn start(config: Config, shutdown: CancellationToken) -> Result<Running, StartError> {
    let config = config.check()?;
    let ops = OpsServer::start(
        config.payments_health_addr.get(),
        &["database", "broker", "provider"],
        shutdown.clone(),
    )
    .await?;
    let addrs = OpsAddresses {
        health_addr: ops.addr,
    };
    let handler_metrics = HandlerMetrics::register(&ops.metrics);
    let work = run(
        config,
        ops.health.clone(),
        ops.metrics.clone(),
        handler_metrics,
        shutdown.clone(),
    );
    Ok(Running::spawn("payments", addrs, Some(ops), shutdown, work))
}

async fn run(
    config: Config,
    health: Arc<Health>,
    metrics: Arc<Metrics>,
    handler_metrics: HandlerMetrics,
    shutdown: CancellationToken,
) -> Result<(), StartError> {
    let Some(pool) = prepare_database(&config, &shutdown).await? else {
        return Ok(()); // shut down while waiting for PostgreSQL
    };
    let store = PaymentStore::new(pool.clone(), config.kafka_topic_status.clone());
    let (provider, breaker) = provider(&config, &metrics, &shutdown)?;
    // `/readyz`: PostgreSQL, the broker, and the provider's circuit (closed).
    let probe_store = store.clone();
    let readiness = Readiness::new(health)
        .probe("database", move || probe_store.ping())
        .probe("broker", bus::readiness_probe(&config.kafka))
        .probe("provider", move || {
            breaker.as_ref().map_or(Ok(()), |breaker| breaker.check())
        })
        .spawn(shutdown.clone());

    let relay_config = config.outbox().relay_config(
        &config.payments_pg_dsn,
        &config.kafka,
        &format!("{CLIENT_ID}-relay"),
    );
    let retention = outbox::RetentionPlan {
        config: retention::RetentionConfig::new(
            config.retention_interval.get(),
            config.retention_batch,
        ),
        policies: &retention_policies(&config),
    };
    let outbox = match outbox::OutboxWorkers::start(
        relay_config,
        retention,
        pool,
        &metrics,
        &shutdown,
    )
    .await
    {
        Ok(outbox) => outbox,
        Err(err) => {
            shutdown.cancel();
            let _ = readiness.await;
            return Err(err.into());
        }
    };

    let subscription = bus::Subscription {
        topic: &config.kafka_topic_order,
        group: &config.kafka_consumer_group,
        partitions: &config.payments_kafka_partitions,
        client_id: CLIENT_ID,
    };
    let consumer_config = bus::ConsumerConfig::for_service(&config.kafka, &subscription, &metrics);
    let handler = OrderHandler::new(store, provider, handler_metrics);
    let result = match bus::spawn_consumer(consumer_config, handler, shutdown.clone()) {
        Ok(consumer) => {
            tracing::info!(
                topic = %config.kafka_topic_order,
                group = %config.kafka_consumer_group,
                partitions = %config.payments_kafka_partitions,
                status_topic = %config.kafka_topic_status,
                "payments consuming"
            );
            consumer.stopped().await.map_err(StartError::from)
        }
        Err(err) => Err(err.into()),
    };
    shutdown.cancel();
    let outbox_result = outbox.stopped().await.map_err(StartError::from);
    let _ = readiness.await;
    result.and(outbox_result)
}

/// The circuit breaker of a remote provider, shared with the readiness probe.
type ProviderBreaker = Arc<stripe::Breaker>;

/// The provider `PAYMENTS_PROVIDER` names and, for a remote one, its circuit breaker
/// (the `provider` readiness check).
fn provider(
    config: &Config,
    metrics: &Metrics,
    shutdown: &CancellationToken,
) -> Result<(Box<dyn PaymentProvider>, Option<ProviderBreaker>), StartError> {
    Ok(match config.provider()? {
        ProviderChoice::Simulated => (Box::new(SimulatedProvider), None),
        ProviderChoice::Stripe(settings) => {
            tracing::info!(
                api_base = %settings.api_base,
                currency = %settings.currency,
                concurrency = settings.concurrency,
                "payments decided by Stripe"
            );
            let stripe = StripeProvider::new(
                settings,
                stripe::ProviderMetrics::register(metrics),
                shutdown.clone(),
            )?;
            let breaker = stripe.breaker();
            (Box::new(stripe), Some(breaker))
        }
    })
}

/// What retention keeps bounded in payments' database, and for how long.
fn retention_policies(config: &Config) -> [retention::Policy; 3] {
    let [processed_events, dead_letters] = config.inbox().retention_policies();
    [
        config.outbox().retention_policy(),
        processed_events,
        dead_letters,
    ]
}

/// Creates and migrates the database, retrying while PostgreSQL is unreachable.
/// `None` when shutdown came first.
async fn prepare_database(
    config: &Config,
    shutdown: &CancellationToken,
) -> Result<Option<pgsetup::Pool>, StartError> {
    let options = pgsetup::PoolOptions {
        max_size: config.payments_db_pool_size,
        connect_timeout: config.payments_db_timeout.get(),
    };
    let (order_topic, status_topic) = (
        config.kafka_topic_order.clone(),
        config.kafka_topic_status.clone(),
    );
    let schema = move || schema().taking_over(takeover::go_payments(&order_topic, &status_topic));
    Ok(pgsetup::prepare_until_ready(&config.payments_pg_dsn, schema, options, shutdown).await?)
}
