//! `stack`: the whole platform in one process, for a developer machine.
//!
//! Starts the embedded `devbroker` (with `order-topic` and `status-topic`), then
//! orders, payments, notifications and the gateway through their libraries, each
//! configured from the environment as its own binary would be (README lists the
//! variables), except that `KAFKA_BROKERS` points at the embedded broker unless
//! `--external-broker` is given, the gateway calls the orders started here, and the
//! topics are wired from orders' `KAFKA_TOPIC` and payments' `KAFKA_TOPIC_STATUS`. Prints where everything listens; Ctrl-C (or
//! SIGTERM) stops the services first, then the broker.

use std::{net::SocketAddr, path::PathBuf};

use anyhow::Context;
use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    about = "Run devbroker and the four services on this machine (local PostgreSQL and Redis)"
)]
struct Args {
    /// Where the embedded broker listens.
    #[arg(long, default_value = "127.0.0.1:9092")]
    broker_listen: SocketAddr,
    /// Keep the broker's logs and offsets here across restarts (default: in memory).
    #[arg(long)]
    broker_data_dir: Option<PathBuf>,
    /// Partitions of order-topic and status-topic.
    #[arg(long, default_value_t = 3)]
    partitions: i32,
    /// Use the brokers in KAFKA_BROKERS instead of starting devbroker.
    #[arg(long)]
    external_broker: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    lifecycle::init_logging()?;
    let args = Args::parse();
    let shutdown = lifecycle::shutdown_on_signal();

    let mut orders_config = orders::Config::from_env().context("orders configuration")?;
    let mut payments_config = payments::Config::from_env().context("payments configuration")?;
    let mut notifications_config =
        notifications::Config::from_env().context("notifications configuration")?;
    let mut gateway_config = gateway::Config::from_env().context("gateway configuration")?;
    // One environment serves four services here, and Go's names overlap (orders and
    // notifications both read KAFKA_TOPIC): wire the topics from one place so the
    // flow always connects. The order topic is orders' (KAFKA_TOPIC or
    // KAFKA_TOPIC_ORDER), the status topic payments' (KAFKA_TOPIC_STATUS).
    payments_config.kafka_topic_order = orders_config.topic().to_owned();
    notifications_config.kafka_topic = Some(payments_config.kafka_topic_status.clone());

    let broker = if args.external_broker {
        None
    } else {
        // devbroker serves only the legacy protocol versions of the kafka client.
        if orders_config.kafka_client == settings::KafkaClient::Rdkafka {
            anyhow::bail!(
                "KAFKA_CLIENT=rdkafka needs Apache Kafka, not the embedded devbroker: \
                 run with --external-broker and KAFKA_BROKERS naming an Apache Kafka 3.x or 4.x"
            );
        }
        let topics = [
            orders_config.topic().to_owned(),
            notifications_config.topic().to_owned(),
        ]
        .into_iter()
        .map(|name| devbroker::TopicSpec {
            name,
            partitions: args.partitions,
        })
        .collect();
        let broker = devbroker::Broker::start(devbroker::BrokerConfig {
            listen: args.broker_listen,
            data_dir: args.broker_data_dir.clone(),
            topics,
            default_partitions: args.partitions,
            ..Default::default()
        })
        .await
        .with_context(|| format!("cannot start devbroker on {}", args.broker_listen))?;
        let brokers: settings::BrokerList = broker
            .local_addr()
            .to_string()
            .parse()
            .context("broker address")?;
        orders_config.kafka_brokers = brokers.clone();
        payments_config.kafka_brokers = brokers.clone();
        notifications_config.kafka_brokers = brokers;
        Some(broker)
    };

    let orders = orders::start(orders_config, shutdown.clone()).await?;
    // The gateway calls the orders started here, wherever it listens.
    let mut orders_target = orders.grpc_addr;
    if orders_target.ip().is_unspecified() {
        orders_target.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    gateway_config.orders_grpc_addr = format!("http://{orders_target}")
        .parse()
        .context("orders address")?;
    let payments = payments::start(payments_config, shutdown.clone()).await?;
    let notifications = notifications::start(notifications_config, shutdown.clone()).await?;
    let gateway = gateway::start(gateway_config, shutdown.clone()).await?;

    println!("order platform running (Ctrl-C to stop)");
    if let Some(broker) = &broker {
        println!("  kafka (devbroker)     {}", broker.local_addr());
    }
    println!(
        "  gateway (REST)        http://{}/orders",
        gateway.http_addr
    );
    println!("  orders (gRPC)         {}", orders.grpc_addr);
    println!(
        "  orders health         http://{}/readyz",
        orders.health_addr
    );
    println!(
        "  payments health       http://{}/readyz",
        payments.health_addr
    );
    println!(
        "  notifications health  http://{}/readyz",
        notifications.health_addr
    );

    // The first service to stop (fatal error or Ctrl-C) stops the rest.
    let results = tokio::join!(
        stop_all_when_done("gateway", gateway.wait(), &shutdown),
        stop_all_when_done("orders", orders.wait(), &shutdown),
        stop_all_when_done("payments", payments.wait(), &shutdown),
        stop_all_when_done("notifications", notifications.wait(), &shutdown),
    );
    if let Some(broker) = broker {
        broker.shutdown().await;
    }
    let failures = [results.0, results.1, results.2, results.3]
        .into_iter()
        .filter(|ok| !ok)
        .count();
    anyhow::ensure!(
        failures == 0,
        "{failures} service(s) failed; see the log above"
    );
    Ok(())
}

async fn stop_all_when_done<E: std::fmt::Display>(
    name: &str,
    service: impl Future<Output = Result<(), E>>,
    shutdown: &tokio_util::sync::CancellationToken,
) -> bool {
    let result = service.await;
    shutdown.cancel();
    match result {
        Ok(()) => true,
        Err(err) => {
            tracing::error!(service = name, %err, "service failed");
            false
        }
    }
}
