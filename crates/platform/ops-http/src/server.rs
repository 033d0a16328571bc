//! The warp server behind `/healthz`, `/readyz` and `/metrics`, with the default
//! header read and idle timeouts ([`HttpTimeouts`]).

use std::{net::SocketAddr, sync::Arc};

use tokio::{net::TcpListener, task::JoinHandle};
use tokio_util::sync::CancellationToken;
use warp::{Filter, http::StatusCode};

use crate::{Health, HttpTimeouts, Metrics};

/// The operations side of a running service: the health of its dependencies, its
/// metrics, and the server exposing both.
pub struct OpsServer {
    /// The bound address (useful with port 0).
    pub addr: SocketAddr,
    pub health: Arc<Health>,
    pub metrics: Arc<Metrics>,
    task: JoinHandle<()>,
}

/// The operations port could not be bound.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr}")]
pub struct BindError {
    pub addr: SocketAddr,
    #[source]
    pub source: std::io::Error,
}

impl OpsServer {
    /// Serves `/healthz`, `/readyz` (for `dependencies`, all "not checked yet") and
    /// `/metrics` on `addr` until `shutdown` is cancelled.
    pub async fn start(
        addr: SocketAddr,
        dependencies: &[&'static str],
        shutdown: CancellationToken,
    ) -> Result<Self, BindError> {
        let health = Arc::new(Health::new(dependencies));
        let metrics = Arc::new(Metrics::new());
        let (bound, task) = serve(addr, health.clone(), metrics.clone(), shutdown)
            .await
            .map_err(|source| BindError { addr, source })?;
        Ok(Self {
            addr: bound,
            health,
            metrics,
            task,
        })
    }

    /// Waits for the server to finish (after the shutdown token is cancelled).
    pub async fn stopped(self) {
        let _ = self.task.await;
    }
}

/// Binds `addr` and serves until `shutdown` is cancelled. Returns the bound address
/// (useful with port 0) and the server task.
pub async fn serve(
    addr: SocketAddr,
    health: Arc<Health>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> std::io::Result<(SocketAddr, JoinHandle<()>)> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;

    let healthz = warp::path!("healthz")
        .and(warp::get())
        .map(|| warp::reply::json(&serde_json::json!({ "status": "ok" })));
    let readyz = warp::path!("readyz").and(warp::get()).map(move || {
        let (ready, report) = health.report();
        let status = if ready {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        warp::reply::with_status(warp::reply::json(&report), status)
    });
    let metrics = warp::path!("metrics").and(warp::get()).map(move || {
        warp::reply::with_header(
            metrics.render(),
            "content-type",
            "text/plain; version=0.0.4",
        )
    });
    let routes = healthz.or(readyz).or(metrics);

    let task = tokio::spawn(crate::serve_http(
        warp::service(routes),
        listener,
        HttpTimeouts::default(),
        shutdown.cancelled_owned(),
    ));
    tracing::info!(%bound, "operations server listening (/healthz, /readyz, /metrics)");
    Ok((bound, task))
}
