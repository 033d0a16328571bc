//! `gateway`: see the library docs. Configuration comes from the environment
//! (`GATEWAY_HTTP_ADDR`, `ORDERS_GRPC_ADDR`, `GATEWAY_ORDERS_TIMEOUT`,
//! `GATEWAY_MAX_IN_FLIGHT`, `GATEWAY_READ_HEADER_TIMEOUT`, `GATEWAY_IDLE_TIMEOUT`,
//! `ORDERS_GRPC_CA`, `GATEWAY_GRPC_TLS_CERT`, `GATEWAY_GRPC_TLS_KEY`, ...;
//! docs/configuration.md lists them).

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    service_skeleton::run_from_env(gateway::Config::from_env, gateway::start).await
}
