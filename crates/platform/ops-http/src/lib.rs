//! The operations HTTP server that every service runs beside its real work.
//!
//! - `GET /healthz`: 200 `{"status": "ok"}` while the process is alive and serving.
//! - `GET /readyz`: 200 `{"status": "ready", "checks": {...}}` when every dependency
//!   the service registered in [`Health`] was reachable at its last check, else 503
//!   `{"error": "not ready: ...", "code": "NOT_READY", "status": "not ready",
//!   "checks": {...}}` naming the ones that are not (the Go services' fields, plus
//!   the detail).
//! - `GET /metrics`: the [`Metrics`] registry in the Prometheus text format, with
//!   labelled families ([`CounterFamily`], [`HistogramFamily`]) where a service needs them.
//!
//! The server closes connections that do not deliver a request head in time or stay
//! idle too long ([`serve_http`], [`HttpTimeouts`]); the gateway serves its API
//! with the same function.
//!
//! A service starts them with [`OpsServer::start`], naming its dependencies; its own
//! background checker updates [`Health`] and the handlers only read it, so a probe
//! never waits on a database.

mod family;
mod health;
mod http_server;
mod instruments;
mod metrics;
mod server;

pub use family::{CounterFamily, Family, GaugeFamily, HistogramFamily};
pub use health::{Health, NOT_READY_CODE};
pub use http_server::{
    DEFAULT_IDLE_TIMEOUT, DEFAULT_READ_HEADER_TIMEOUT, HttpTimeouts, serve_http,
};
pub use instruments::{
    COUNT_BUCKETS, Counter, Gauge, Histogram, LATENCY_BUCKETS, PROMETHEUS_DEFAULT_BUCKETS,
};
pub use metrics::Metrics;
pub use server::{BindError, OpsServer, serve};
