//! The background threads a service with an outbox runs beside its own work: the
//! relay and retention, started together and waited for together.

use ops_http::Metrics;
use pgsetup::Pool;
use tokio_util::sync::CancellationToken;

use crate::{RelayConfig, RelayHandle, spawn_relay};

/// Why the outbox's threads could not start, or stopped on their own.
#[derive(Debug, thiserror::Error)]
pub enum WorkersError {
    #[error("cannot start the outbox relay")]
    Relay(#[source] std::io::Error),
    #[error("cannot start retention")]
    Retention(#[source] std::io::Error),
    /// The brokers answer but cannot serve the `kafka` client (Apache Kafka 4.x): the
    /// relay stopped, and cancelled the service's shutdown token.
    #[error("KAFKA_BROKERS names a broker this service cannot use")]
    UnsupportedBroker(#[source] bus::BusError),
}

/// What retention keeps bounded in the service's database, and how often it runs.
pub struct RetentionPlan<'a> {
    pub config: retention::RetentionConfig,
    pub policies: &'a [retention::Policy],
}

/// The relay and retention threads of one service's database.
pub struct OutboxWorkers {
    relay: RelayHandle,
    retention: retention::RetentionHandle,
}

impl OutboxWorkers {
    /// Starts the relay (`relay`) and retention (`plan`) on `pool`. If retention cannot
    /// start, `shutdown` is cancelled and the relay already started is waited for, so
    /// no thread outlives the error.
    pub async fn start(
        relay: RelayConfig,
        plan: RetentionPlan<'_>,
        pool: Pool,
        metrics: &Metrics,
        shutdown: &CancellationToken,
    ) -> Result<Self, WorkersError> {
        let relay = spawn_relay(relay, pool.clone(), metrics, shutdown.clone())
            .map_err(WorkersError::Relay)?;
        let retention =
            retention::Retention::new(pool, plan.config, plan.policies, metrics, shutdown.clone())
                .spawn();
        match retention {
            Ok(retention) => Ok(Self { relay, retention }),
            Err(err) => {
                shutdown.cancel();
                if let Err(join) = tokio::task::spawn_blocking(move || relay.join()).await {
                    tracing::error!(%join, "waiting for the outbox relay failed");
                }
                Err(WorkersError::Retention(err))
            }
        }
    }

    /// Waits for both threads to stop (after `shutdown` was cancelled). The relay stops
    /// by itself (cancelling `shutdown`) only on a broker it cannot use: that is the
    /// error.
    pub async fn stopped(self) -> Result<(), WorkersError> {
        let relay = self.relay;
        let relayed = match tokio::task::spawn_blocking(move || relay.join()).await {
            Ok(relayed) => relayed.map_err(WorkersError::UnsupportedBroker),
            Err(err) => {
                tracing::error!(%err, "waiting for the outbox relay failed");
                Ok(())
            }
        };
        let retention = self.retention;
        if let Err(err) = tokio::task::spawn_blocking(move || retention.join()).await {
            tracing::error!(%err, "waiting for retention failed");
        }
        relayed
    }
}
