//! `stack`: the whole platform in one process, for a developer machine.
//!
//! Starts the embedded `devbroker` (with `order-topic` and `status-topic`), then
//! orders, payments, notifications and the gateway through their libraries (see the
//! `stack` library), each configured from the environment as its own binary would
//! be (docs/configuration.md lists the variables), except that `KAFKA_BROKERS` points at the
//! embedded broker unless `--external-broker` is given, the gateway calls the orders
//! started here, and the topics are wired from orders' `KAFKA_TOPIC` and payments'
//! `KAFKA_TOPIC_STATUS`. Prints where everything listens; Ctrl-C (or SIGTERM) stops
//! the services first, then the broker.

use std::{net::SocketAddr, path::PathBuf};

use clap::Parser;
use stack::{DevbrokerOptions, Platform, PlatformConfig};

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

    let mut config = PlatformConfig::from_env()?;
    let broker = if args.external_broker {
        None
    } else {
        let options = DevbrokerOptions {
            listen: args.broker_listen,
            data_dir: args.broker_data_dir,
            partitions: args.partitions,
        };
        Some(stack::start_devbroker(&mut config, options).await?)
    };
    let platform = Platform::start(config, &shutdown).await?;

    println!("order platform running (Ctrl-C to stop)");
    if let Some(broker) = &broker {
        println!("  kafka (devbroker)     {}", broker.local_addr());
    }
    println!("  gateway (REST)        {}", platform.orders_url());
    println!("  orders (gRPC)         {}", platform.orders.grpc_addr);
    for (name, addr) in [
        ("orders", platform.orders.health_addr),
        ("payments", platform.payments.health_addr),
        ("notifications", platform.notifications.health_addr),
    ] {
        println!("  {:<22}http://{addr}/readyz", format!("{name} health"));
    }

    let failures = platform.wait(&shutdown).await;
    if let Some(broker) = broker {
        broker.shutdown().await;
    }
    // The last spans, when tracing is on.
    telemetry::shutdown().await;
    anyhow::ensure!(
        failures == 0,
        "{failures} service(s) failed; see the log above"
    );
    Ok(())
}
