//! `orders`: see the library docs. Configuration comes from the environment
//! (`ORDERS_PG_DSN`, `ORDERS_GRPC_ADDR`, ...; README lists them all).

use anyhow::Context;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    lifecycle::init_logging()?;
    let config = orders::Config::from_env().context("invalid configuration")?;
    service_skeleton::run_until_signal(|shutdown| orders::start(config, shutdown)).await?;
    Ok(())
}
