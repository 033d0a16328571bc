//! The whole platform in one process: the four services started through their
//! libraries, beside an embedded `devbroker` or against external brokers.
//!
//! - [`PlatformConfig`]: the four services' settings, read from the environment
//!   ([`PlatformConfig::from_env`], what the `stack` binary does) or made for this
//!   machine on loopback port 0 ([`PlatformConfig::local`], what the bench and the
//!   in-process tests do); the topics are wired from one place so the flow connects.
//! - [`start_devbroker`]: the embedded broker with the platform's two topics.
//! - [`Platform`]: the started services; [`Platform::wait_ready`] polls their
//!   `/readyz`, [`Platform::wait`] resolves when all have stopped, the first to stop
//!   stopping the rest.
//!
//! The `stack` binary (`main.rs`) is a thin wrapper: flags, the broker, then these.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::Context;
use tokio_util::sync::CancellationToken;

/// The settings of the four services started together.
#[derive(Debug, Clone)]
pub struct PlatformConfig {
    pub orders: orders::Config,
    pub payments: payments::Config,
    pub notifications: notifications::Config,
    /// `orders_grpc_addr` is replaced by where the orders started here listen.
    pub gateway: gateway::Config,
}

impl PlatformConfig {
    /// Each service's settings from the environment, as its own binary reads them,
    /// with the topics wired together (see [`PlatformConfig::wire_topics`]).
    pub fn from_env() -> anyhow::Result<Self> {
        let mut config = PlatformConfig {
            orders: orders::Config::from_env().context("orders configuration")?,
            payments: payments::Config::from_env().context("payments configuration")?,
            notifications: notifications::Config::from_env()
                .context("notifications configuration")?,
            gateway: gateway::Config::from_env().context("gateway configuration")?,
        };
        config.wire_topics();
        Ok(config)
    }

    /// Every service on loopback port 0, on the given databases and brokers, the
    /// notifications under `redis_key_prefix` (kept 10 minutes): the platform as the
    /// bench and the in-process tests run it.
    pub fn local(
        orders_pg_dsn: String,
        payments_pg_dsn: String,
        kafka: settings::KafkaConnection,
        redis_key_prefix: String,
    ) -> Self {
        let any_port = settings::ListenAddr::loopback(0);
        PlatformConfig {
            orders: orders::Config {
                orders_pg_dsn,
                orders_grpc_addr: any_port,
                orders_health_addr: any_port,
                kafka: kafka.clone(),
                ..Default::default()
            },
            payments: payments::Config {
                payments_pg_dsn,
                payments_health_addr: any_port,
                kafka: kafka.clone(),
                ..Default::default()
            },
            notifications: notifications::Config {
                notifications_health_addr: any_port,
                kafka,
                redis_key_prefix,
                redis_ttl: settings::GoDuration::from_secs(600),
                ..Default::default()
            },
            gateway: gateway::Config {
                gateway_http_addr: any_port,
                ..Default::default()
            },
        }
    }

    /// One environment serves four services: the order topic is orders'
    /// (`KAFKA_TOPIC` or `KAFKA_TOPIC_ORDER`), the status topic payments'
    /// (`KAFKA_TOPIC_STATUS`), so the flow always connects.
    pub fn wire_topics(&mut self) {
        self.payments.kafka_topic_order = self.orders.topic().to_owned();
        self.notifications.kafka_topic_status = self.payments.kafka_topic_status.clone();
    }

    /// The topics the services use: orders' and the status topic.
    pub fn topics(&self) -> [String; 2] {
        [
            self.orders.topic().to_owned(),
            self.notifications.topic().to_owned(),
        ]
    }

    /// Points every Kafka-using service at `brokers`.
    pub fn use_brokers(&mut self, brokers: settings::BrokerList) {
        self.orders.kafka.brokers = brokers.clone();
        self.payments.kafka.brokers = brokers.clone();
        self.notifications.kafka.brokers = brokers;
    }
}

/// Where the embedded broker listens and keeps its data.
#[derive(Debug, Clone)]
pub struct DevbrokerOptions {
    pub listen: SocketAddr,
    /// `None`: in memory only.
    pub data_dir: Option<PathBuf>,
    /// Partitions of the platform's topics and of auto-created ones.
    pub partitions: i32,
}

impl Default for DevbrokerOptions {
    fn default() -> Self {
        DevbrokerOptions {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: None,
            partitions: 3,
        }
    }
}

/// Starts devbroker with `config`'s topics and points the services at it. The
/// `kafka` client only: devbroker serves the legacy protocol versions, which
/// librdkafka does not use.
pub async fn start_devbroker(
    config: &mut PlatformConfig,
    options: DevbrokerOptions,
) -> anyhow::Result<devbroker::RunningBroker> {
    anyhow::ensure!(
        config.orders.kafka.client != settings::KafkaClient::Rdkafka,
        "KAFKA_CLIENT=rdkafka needs Apache Kafka, not the embedded devbroker: run with \
         --external-broker and KAFKA_BROKERS naming an Apache Kafka 3.x or 4.x"
    );
    let topics = config
        .topics()
        .into_iter()
        .map(|name| devbroker::TopicSpec {
            name,
            partitions: options.partitions,
        })
        .collect();
    let broker = devbroker::Broker::start(devbroker::BrokerConfig {
        listen: options.listen,
        data_dir: options.data_dir,
        topics,
        default_partitions: options.partitions,
        ..Default::default()
    })
    .await
    .with_context(|| format!("cannot start devbroker on {}", options.listen))?;
    let brokers = broker
        .local_addr()
        .to_string()
        .parse()
        .context("broker address")?;
    config.use_brokers(brokers);
    Ok(broker)
}

/// The four services, started.
pub struct Platform {
    pub orders: orders::Running,
    pub payments: payments::Running,
    pub notifications: notifications::Running,
    pub gateway: gateway::Running,
}

impl Platform {
    /// Starts orders, the gateway in front of it, payments and notifications; all
    /// stop when `shutdown` is cancelled. If one cannot start, `shutdown` is cancelled
    /// so the ones already started stop too.
    pub async fn start(
        config: PlatformConfig,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<Self> {
        let started = Self::start_each(config, shutdown).await;
        if started.is_err() {
            shutdown.cancel();
        }
        started
    }

    async fn start_each(
        mut config: PlatformConfig,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<Self> {
        let orders = orders::start(config.orders, shutdown.clone()).await?;
        // The gateway calls the orders started here, wherever they listen.
        let mut orders_target = orders.grpc_addr;
        if orders_target.ip().is_unspecified() {
            orders_target.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        config.gateway.orders_grpc_addr = format!("http://{orders_target}")
            .parse()
            .context("orders address")?;
        let gateway = gateway::start(config.gateway, shutdown.clone()).await?;
        let payments = payments::start(config.payments, shutdown.clone()).await?;
        let notifications = notifications::start(config.notifications, shutdown.clone()).await?;
        Ok(Platform {
            orders,
            payments,
            notifications,
            gateway,
        })
    }

    /// `http://<gateway>/orders`.
    pub fn orders_url(&self) -> String {
        format!("http://{}/orders", self.gateway.http_addr)
    }

    /// Polls every service's `/readyz` until it answers 200, for up to `deadline`.
    pub async fn wait_ready(&self, deadline: Duration) -> anyhow::Result<()> {
        let started = tokio::time::Instant::now();
        for addr in [
            self.orders.health_addr,
            self.payments.health_addr,
            self.notifications.health_addr,
            self.gateway.http_addr,
        ] {
            let url = format!("http://{addr}/readyz");
            loop {
                let ready = reqwest::get(&url)
                    .await
                    .is_ok_and(|response| response.status().is_success());
                if ready {
                    break;
                }
                anyhow::ensure!(
                    started.elapsed() < deadline,
                    "{url} not ready after {deadline:?}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Ok(())
    }

    /// Resolves when every service has stopped; the first to stop (a fatal error,
    /// or `shutdown`) stops the rest. Each failure is logged; the count is returned.
    pub async fn wait(self, shutdown: &CancellationToken) -> usize {
        let results = tokio::join!(
            stop_all_when_done("gateway", self.gateway.wait(), shutdown),
            stop_all_when_done("orders", self.orders.wait(), shutdown),
            stop_all_when_done("payments", self.payments.wait(), shutdown),
            stop_all_when_done("notifications", self.notifications.wait(), shutdown),
        );
        [results.0, results.1, results.2, results.3]
            .into_iter()
            .filter(|ok| !ok)
            .count()
    }
}

async fn stop_all_when_done<E: std::error::Error + 'static>(
    name: &str,
    service: impl Future<Output = Result<(), E>>,
    shutdown: &CancellationToken,
) -> bool {
    let result = service.await;
    shutdown.cancel();
    match result {
        Ok(()) => true,
        Err(err) => {
            tracing::error!(service = name, error = %lifecycle::ErrorChain(&err), "service failed");
            false
        }
    }
}
