//! What every service binary's `main` does, so each `main.rs` is one call.

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::{Running, TaskError, run_until_signal};

/// Logging set up from `RUST_LOG`, then the configuration read by `from_env`: an
/// error names what is wrong (`invalid configuration: ...`).
pub fn init_from_env<C, CE>(from_env: impl FnOnce() -> Result<C, CE>) -> anyhow::Result<C>
where
    CE: std::error::Error + Send + Sync + 'static,
{
    lifecycle::init_logging()?;
    from_env().context("invalid configuration")
}

/// A service binary's whole `main`: [`init_from_env`], then [`run_until_signal`] with
/// `start`. Any failure is returned, so `main` exits with status 1.
pub async fn run_from_env<C, CE, A, E, F>(
    from_env: impl FnOnce() -> Result<C, CE>,
    start: impl FnOnce(C, CancellationToken) -> F,
) -> anyhow::Result<()>
where
    CE: std::error::Error + Send + Sync + 'static,
    F: Future<Output = Result<Running<A, E>, E>>,
    E: std::error::Error + From<TaskError> + Send + Sync + 'static,
{
    let config = init_from_env(from_env)?;
    let result = run_until_signal(|shutdown| start(config, shutdown)).await;
    // The spans of the last requests, also when the service failed.
    telemetry::shutdown().await;
    result?;
    Ok(())
}
