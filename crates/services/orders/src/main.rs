//! `orders`: see the library docs. Configuration comes from the environment
//! (`ORDERS_PG_DSN`, `ORDERS_GRPC_ADDR`, ...; README lists them all).

use anyhow::Context;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    lifecycle::init_logging()?;
    let config = orders::Config::from_env().context("invalid configuration")?;
    let shutdown = lifecycle::shutdown_on_signal();
    let running = orders::start(config, shutdown).await?;
    if let Err(err) = running.wait().await {
        // One log line (in the log format chosen) for whoever reads the logs, besides
        // the exit status and the error on stderr.
        tracing::error!("{err}");
        return Err(err.into());
    }
    Ok(())
}
