//! `notifications`: see the library docs. Configuration comes from the environment
//! (`KAFKA_BROKERS`, `REDIS_ADDR`, `REDIS_TTL`, ...; README lists them all).

use anyhow::Context;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    lifecycle::init_logging()?;
    let config = notifications::Config::from_env().context("invalid configuration")?;
    let shutdown = lifecycle::shutdown_on_signal();
    let running = notifications::start(config, shutdown).await?;
    if let Err(err) = running.wait().await {
        // One log line (in the log format chosen) for whoever reads the logs, besides
        // the exit status and the error on stderr.
        tracing::error!("{err}");
        return Err(err.into());
    }
    Ok(())
}
