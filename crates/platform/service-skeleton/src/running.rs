//! A service running in the background: its addresses and the task to wait for.

use std::{net::SocketAddr, ops::Deref};

use ops_http::OpsServer;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::{ErrorChain, TaskError};

/// A running service: its addresses `A` (read as fields through `Deref`, e.g.
/// `running.health_addr`) and its work, which ends with the service's error type `E`.
pub struct Running<A, E> {
    name: &'static str,
    addrs: A,
    shutdown: CancellationToken,
    task: JoinHandle<Result<(), E>>,
}

/// The addresses of a service whose only port is the operations server (the workers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpsAddresses {
    /// Where `/healthz`, `/readyz` and `/metrics` are served.
    pub health_addr: SocketAddr,
}

impl<A, E> Running<A, E>
where
    E: From<TaskError> + Send + 'static,
{
    /// Runs `work`, the service `name` listening on `addrs`, in the background. When
    /// `work` ends (after `shutdown` is cancelled, or on its own with a fatal error),
    /// `shutdown` is cancelled so everything else the service started stops too, the
    /// operations server `ops` (if any) is waited for, and `<name> stopped` is logged.
    pub fn spawn<W>(
        name: &'static str,
        addrs: A,
        ops: Option<OpsServer>,
        shutdown: CancellationToken,
        work: W,
    ) -> Self
    where
        W: Future<Output = Result<(), E>> + Send + 'static,
    {
        let stop = shutdown.clone();
        let task = tokio::spawn(async move {
            let result = work.await;
            stop.cancel();
            if let Some(ops) = ops {
                ops.stopped().await;
            }
            tracing::info!("{name} stopped");
            result
        });
        Self {
            name,
            addrs,
            shutdown,
            task,
        }
    }

    /// Resolves when the service stops: after `shutdown` is cancelled and its work
    /// is finished, or on a fatal error. If the work panicked, `shutdown` is cancelled
    /// here so the rest of the service stops all the same.
    pub async fn wait(self) -> Result<(), E> {
        match self.task.await {
            Ok(result) => result,
            Err(source) => {
                self.shutdown.cancel();
                Err(E::from(TaskError {
                    task: self.name,
                    source,
                }))
            }
        }
    }

    /// [`wait`](Self::wait), a failure also logged as one ERROR line with all its
    /// causes ([`ErrorChain`]): what a service binary does with its service.
    pub async fn wait_logged(self) -> Result<(), E>
    where
        E: std::error::Error,
    {
        let result = self.wait().await;
        if let Err(err) = &result {
            tracing::error!("{}", ErrorChain(err));
        }
        result
    }
}

/// What a service binary's `main` does with its service, once logging and the
/// configuration are set up: `start` it with a shutdown token that SIGTERM or Ctrl-C
/// cancels ([`lifecycle::shutdown_on_signal`]), then wait for it to stop. A failure
/// while running is logged (one ERROR line, all its causes: [`Running::wait_logged`])
/// and returned, as a failure to start is: either way `main` exits with status 1.
pub async fn run_until_signal<A, E, F>(start: impl FnOnce(CancellationToken) -> F) -> Result<(), E>
where
    F: Future<Output = Result<Running<A, E>, E>>,
    E: std::error::Error + From<TaskError> + Send + 'static,
{
    start(lifecycle::shutdown_on_signal())
        .await?
        .wait_logged()
        .await
}

impl<A, E> Deref for Running<A, E> {
    type Target = A;

    /// The service's addresses, so that `running.grpc_addr` reads as a field.
    fn deref(&self) -> &A {
        &self.addrs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    enum Failed {
        #[error("gave up")]
        GaveUp,
        #[error(transparent)]
        Task(#[from] TaskError),
    }

    fn addrs() -> OpsAddresses {
        OpsAddresses {
            health_addr: "127.0.0.1:9".parse().unwrap(),
        }
    }

    #[tokio::test]
    async fn work_that_ends_stops_the_rest_and_its_error_is_returned() {
        let shutdown = CancellationToken::new();
        let running: Running<OpsAddresses, Failed> =
            Running::spawn("test", addrs(), None, shutdown.clone(), async {
                Err(Failed::GaveUp)
            });
        assert_eq!(running.health_addr, addrs().health_addr);
        assert!(matches!(running.wait().await, Err(Failed::GaveUp)));
        assert!(shutdown.is_cancelled());
    }

    #[tokio::test]
    async fn work_runs_until_shutdown() {
        let shutdown = CancellationToken::new();
        let token = shutdown.clone();
        let running: Running<OpsAddresses, Failed> =
            Running::spawn("test", addrs(), None, shutdown.clone(), async move {
                token.cancelled().await;
                Ok(())
            });
        shutdown.cancel();
        assert!(running.wait_logged().await.is_ok());
    }

    #[tokio::test]
    async fn a_panic_is_a_task_error_that_keeps_its_cause() {
        let shutdown = CancellationToken::new();
        let running: Running<OpsAddresses, Failed> =
            Running::spawn("test", addrs(), None, shutdown.clone(), async {
                panic!("boom")
            });
        let err = running.wait().await.unwrap_err();
        assert!(shutdown.is_cancelled());
        let Failed::Task(task) = &err else {
            panic!("{err:?}");
        };
        assert_eq!(task.task, "test");
        assert!(task.source.is_panic());
        assert_eq!(err.to_string(), "the test task failed");
        let chain = ErrorChain(&err).to_string();
        assert!(chain.starts_with("the test task failed: "), "{chain}");
    }
}
