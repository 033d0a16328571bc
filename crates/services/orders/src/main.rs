//! `orders`: see the library docs. Configuration comes from the environment
//! (`ORDERS_PG_DSN`, `ORDERS_GRPC_ADDR`, ...; docs/configuration.md lists them all).

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    service_skeleton::run_from_env(orders::Config::from_env, orders::start).await
}
