//! `devbroker` binary: a thin wrapper around [`devbroker::Broker`].

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use devbroker::{Broker, BrokerConfig, DEFAULT_MAX_FRAME_BYTES, DEFAULT_PARTITIONS, TopicSpec};

/// Single-node Kafka broker for the legacy protocol (pre-0.11 clients such as the `kafka`
/// crate; kcat/librdkafka too). For tests and local runs, not for production.
#[derive(Debug, Parser)]
#[command(name = "devbroker", version)]
struct Args {
    /// Address to listen on (port 0 picks a free one; the bound address is logged).
    #[arg(long, default_value = "127.0.0.1:9092")]
    listen: SocketAddr,
    /// Persist logs and committed offsets here (default: in memory only).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Create a topic at start-up: NAME:PARTITIONS (repeatable).
    #[arg(long = "topic", value_name = "NAME:PARTITIONS")]
    topics: Vec<TopicSpec>,
    /// Partition count of auto-created topics.
    #[arg(long, default_value_t = DEFAULT_PARTITIONS)]
    default_partitions: i32,
    /// Largest accepted request frame in bytes; bigger frames close the connection.
    #[arg(long, default_value_t = DEFAULT_MAX_FRAME_BYTES)]
    max_frame_bytes: usize,
    /// Host to advertise to clients instead of the address they connected to.
    #[arg(long)]
    advertised_host: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    lifecycle::init_logging()?;
    let args = Args::parse();
    let shutdown = lifecycle::shutdown_on_signal();
    let broker = Broker::start(BrokerConfig {
        listen: args.listen,
        data_dir: args.data_dir,
        topics: args.topics,
        default_partitions: args.default_partitions,
        max_frame_bytes: args.max_frame_bytes,
        advertised_host: args.advertised_host,
    })
    .await?;
    // Machine-readable line for scripts and tests that start the binary on port 0.
    println!("listening on {}", broker.local_addr());
    shutdown.cancelled().await;
    broker.shutdown().await;
    Ok(())
}
