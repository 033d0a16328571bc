//! Start-up errors shared by the services, and the one-line rendering of an error
//! with its causes.

use std::{error::Error, fmt, net::SocketAddr};

use ops_http::BindError;
use tokio::{net::TcpListener, task::JoinError};

/// Binds `addr` and returns the listener with its bound address (useful with port 0).
pub async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), BindError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| BindError { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| BindError { addr, source })?;
    Ok((listener, bound))
}

/// A task of a service (the service itself, its gRPC server ...) panicked or was
/// aborted instead of returning.
#[derive(Debug, thiserror::Error)]
#[error("the {task} task failed: {source}")]
pub struct TaskError {
    /// Which task: `"orders"`, `"gRPC server"` ...
    pub task: &'static str,
    #[source]
    pub source: JoinError,
}

/// Displays an error followed by each of its causes (`source()`), separated by `": "`,
/// skipping a cause whose message the line already holds (most errors here write
/// their cause into their own message). What a log line about a failure should show.
pub struct ErrorChain<'a>(pub &'a (dyn Error + 'static));

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut line = self.0.to_string();
        let mut cause = self.0.source();
        while let Some(error) = cause {
            let message = error.to_string();
            if !line.contains(&message) {
                line.push_str(": ");
                line.push_str(&message);
            }
            cause = error.source();
        }
        f.write_str(&line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("{0}")]
    struct Leaf(&'static str);

    /// An error that does not repeat its cause in its message.
    #[derive(Debug, thiserror::Error)]
    #[error("transport error")]
    struct Terse(#[source] Leaf);

    /// An error that does.
    #[derive(Debug, thiserror::Error)]
    #[error("gRPC server failed: {0}")]
    struct Verbose(#[source] Terse);

    #[test]
    fn the_chain_shows_every_cause_once() {
        let error = Verbose(Terse(Leaf("connection reset by peer")));
        assert_eq!(
            ErrorChain(&error).to_string(),
            "gRPC server failed: transport error: connection reset by peer"
        );
        let leaf = Leaf("alone");
        assert_eq!(ErrorChain(&leaf).to_string(), "alone");
    }

    #[tokio::test]
    async fn a_taken_port_is_a_bind_error_that_names_the_address_and_keeps_the_cause() {
        let (_held, addr) = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let err = bind(addr).await.unwrap_err();
        assert_eq!(err.addr, addr);
        assert!(err.source().is_some());
        assert!(
            err.to_string()
                .starts_with(&format!("cannot listen on {addr}: "))
        );
    }
}
