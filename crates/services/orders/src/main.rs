//! `orders`: see the library docs. Configuration comes from the environment
//! (`ORDERS_PG_DSN`, `ORDERS_GRPC_ADDR`, ...; README lists them all).

use anyhow::Context;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    lifecycle::init_logging()?;
    let config = orders::Config::from_env().context("invalid configuration")?;
    let shutdown = lifecycle::shutdown_on_signal();
    // A failure is logged (one ERROR line, all its causes) and returned: exit status 1.
    orders::start(config, shutdown).await?.wait_logged().await?;
    Ok(())
}
