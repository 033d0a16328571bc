//! `gateway`: see the library docs. Configuration comes from the environment
//! (`GATEWAY_HTTP_ADDR`, `ORDERS_GRPC_ADDR`, `GATEWAY_ORDERS_TIMEOUT`,
//! `GATEWAY_MAX_IN_FLIGHT`, `GATEWAY_READ_HEADER_TIMEOUT`, `GATEWAY_IDLE_TIMEOUT`;
//! README lists them).

use anyhow::Context;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    lifecycle::init_logging()?;
    let config = gateway::Config::from_env().context("invalid configuration")?;
    service_skeleton::run_until_signal(|shutdown| gateway::start(config, shutdown)).await?;
    Ok(())
}
