//! `notifications`: see the library docs. Configuration comes from the environment
//! (`KAFKA_BROKERS`, `REDIS_ADDR`, `REDIS_TTL`, ...; docs/configuration.md lists them all).

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    service_skeleton::run_from_env(notifications::Config::from_env, notifications::start).await
}
