//! Start-up errors shared by the services.

use std::net::SocketAddr;

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
#[error("the {task} task failed")]
pub struct TaskError {
    /// Which task: `"orders"`, `"gRPC server"` ...
    pub task: &'static str,
    #[source]
    pub source: JoinError,
}

#[cfg(test)]
mod tests {
    use std::error::Error;

    use super::*;
    use crate::ErrorChain;

    #[tokio::test]
    async fn a_taken_port_is_a_bind_error_that_names_the_address_and_keeps_the_cause() {
        let (_held, addr) = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let err = bind(addr).await.unwrap_err();
        assert_eq!(err.addr, addr);
        assert!(err.source().is_some());
        assert_eq!(err.to_string(), format!("cannot listen on {addr}"));
        assert!(
            ErrorChain(&err)
                .to_string()
                .starts_with(&format!("cannot listen on {addr}: "))
        );
    }
}
