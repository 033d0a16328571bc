//! The operations HTTP server that every service runs beside its real work.
//!
//! - `GET /healthz`: 200 while the process is alive and serving.
//! - `GET /readyz`: 200 when every dependency the service registered in [`Health`]
//!   was reachable at its last check, else 503 naming the ones that are not.
//! - `GET /metrics`: the [`Metrics`] registry in the Prometheus text format.
//!
//! A service starts them with [`OpsServer::start`], naming its dependencies; its own
//! background checker updates [`Health`] and the handlers only read it, so a probe
//! never waits on a database.

mod health;
mod metrics;
mod server;

pub use health::Health;
pub use metrics::{Counter, Gauge, Histogram, LATENCY_BUCKETS, Metrics};
pub use server::{BindError, OpsServer, serve};
