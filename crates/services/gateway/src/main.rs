//! `gateway`: see the library docs. Configuration comes from the environment
//! (`GATEWAY_HTTP_ADDR`, `ORDERS_GRPC_ADDR`, `GATEWAY_ORDERS_TIMEOUT`,
//! `GATEWAY_MAX_IN_FLIGHT`, `GATEWAY_READ_HEADER_TIMEOUT`, `GATEWAY_IDLE_TIMEOUT`;
//! README lists them).

use anyhow::Context;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    lifecycle::init_logging()?;
    let config = gateway::Config::from_env().context("invalid configuration")?;
    let shutdown = lifecycle::shutdown_on_signal();
    // A failure is logged (one ERROR line, all its causes) and returned: exit status 1.
    gateway::start(config, shutdown)
        .await?
        .wait_logged()
        .await?;
    Ok(())
}
