//! `notifications`: see the library docs. Configuration comes from the environment
//! (`KAFKA_BROKERS`, `REDIS_ADDR`, `REDIS_TTL`, ...; README lists them all).

use anyhow::Context;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    lifecycle::init_logging()?;
    let config = notifications::Config::from_env().context("invalid configuration")?;
    service_skeleton::run_until_signal(|shutdown| notifications::start(config, shutdown)).await?;
    Ok(())
}
