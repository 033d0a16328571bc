//! The gateway: the platform's HTTP/JSON front door, in front of the orders gRPC
//! service (`orders.v1.OrdersService`).
//!
//! How the parts fit: a request is matched by [`routes`] (paths and methods from
//! [`route_table`]) and answered by a handler of [`handlers`], which parses it
//! ([`rest`], [`idempotency_key`]), calls orders and maps failures ([`errors`]);
//! [`request_metrics`] counts the answer.
//!
//! - [`config`]: settings from defaults, an optional TOML file (`GATEWAY_CONFIG`) and
//!   the environment (`GATEWAY_HTTP_ADDR`, `ORDERS_GRPC_ADDR`,
//!   `GATEWAY_ORDERS_RESOLVE_INTERVAL`, `GATEWAY_ORDERS_TIMEOUT`,
//!   `GATEWAY_MAX_IN_FLIGHT`, `GATEWAY_READ_HEADER_TIMEOUT`, `GATEWAY_IDLE_TIMEOUT`,
//!   TLS to orders: `ORDERS_GRPC_CA`, `GATEWAY_GRPC_TLS_CERT`, `GATEWAY_GRPC_TLS_KEY`);
//! - [`rest`]: the REST contract's JSON types, parsed strictly (unknown fields,
//!   trailing data, wrong types -> 400), and their conversion to and from `orders.v1`;
//! - [`json_keys`]: object keys matched to field names as Go's `encoding/json` does
//!   (exactly, else ignoring case), duplicates refused;
//! - [`idempotency_key`]: the `Idempotency-Key` header of `POST /orders`, checked and
//!   passed to orders as metadata, and the `Idempotent-Replayed` answer header;
//! - [`errors`]: one error shape, `{"error", "code"}`, and the gRPC code -> HTTP
//!   status mapping; 4xx messages from orders pass through, 5xx ones are generic;
//! - [`routes`]: the composition: every route (`POST /orders`, `GET /orders/{id}`,
//!   `/healthz`, `/readyz`, `/metrics`, `/openapi.yaml`, Swagger UI) joined to its
//!   handler, the `recover` that turns routing failures into the same JSON errors,
//!   and the counting of every answer;
//! - [`route_table`]: each route's path pattern and method, written once; the routes'
//!   filters and the 405's `Allow` are both built from it;
//! - [`handlers`]: what a routed request does: [`handlers::Gateway`] calls orders
//!   with the per-call deadline ([`handlers::orders`]: the order routes and the 1 MiB
//!   body limit; [`handlers::readiness`]: `/readyz` from orders' gRPC health);
//! - [`request_metrics`]: counting the answers: the gateway's own families and the Go
//!   gateway's `opp_http_requests_total` and `opp_http_request_duration_seconds`, for
//!   the requests it counts (under `/orders` and `/swagger/`), labelled by its route
//!   patterns;
//! - [`swagger`]: Swagger UI at `/swagger/index.html` on the description as JSON
//!   (`/swagger/doc.json`), its vendored assets embedded in the binary;
//! - [`overload`]: the bound on `/orders` requests in flight; past it, 503 at once;
//! - [`balance`]: the orders replicas (`ORDERS_GRPC_ADDR` a list, or names resolved
//!   every `GATEWAY_ORDERS_RESOLVE_INTERVAL`), their health checks, the picking of a
//!   replica for each call, and the rule for sending a failed call to another;
//! - this module: [`start`] binds the HTTP port, builds a channel to each orders
//!   replica that connects lazily (so the gateway starts, and `/healthz` answers,
//!   while orders is down; calls then get 503 and `/readyz` says not ready), over TLS
//!   when `ORDERS_GRPC_CA` is set (the `grpc_tls` crate's channels, rebuilt when
//!   their files change or on SIGHUP, so the client certificate rotates without a
//!   restart), and serves (HTTP/1.1, with header read and idle timeouts: [`ops_http::serve_http`])
//!   until the shutdown token is cancelled.
//!
//! The scaffolding is the `service_skeleton` crate's, shared by every service: the
//! [`Running`] handle, and the start-up errors kept as the
//! causes (`source()`) of [`StartError`].
//!
//! Business validation (positive ids and prices, item limits, overflow) is orders' alone: the
//! gateway checks only the JSON's shape and forwards orders' INVALID_ARGUMENT message.
//!
//! Tests call [`start`] directly; `main.rs` only adds configuration, logging and signals.

pub mod auth;
pub mod balance;
pub mod config;
pub mod errors;
pub mod handlers;
pub mod idempotency_key;
pub mod json_keys;
pub mod overload;
pub mod request_metrics;
pub mod rest;
pub mod route_table;
pub mod routes;
pub mod swagger;

use std::{net::SocketAddr, sync::Arc};

use ops_http::Metrics;
use service_skeleton::{BindError, TaskError};
use tokio_util::sync::CancellationToken;

pub use config::Config;

/// Why the gateway could not start, or stopped on its own.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Bind(#[from] BindError),
    /// An address of `ORDERS_GRPC_ADDR` cannot be used; the error names it.
    #[error(transparent)]
    OrdersEndpoint(balance::BuildError),
    #[error("invalid configuration")]
    Config(#[from] settings::ConfigError),
    /// A TLS file for the calls to orders cannot be used; the error names the
    /// variable and the file.
    #[error(transparent)]
    OrdersTls(#[from] grpc_tls::TlsError),
    /// `GATEWAY_AUTH=jwt` and the keys of `GATEWAY_JWT_JWKS` could not be loaded.
    #[error("cannot load the token verification keys (GATEWAY_JWT_JWKS)")]
    AuthKeys(#[from] auth::KeysError),
    /// The gateway's task panicked.
    #[error(transparent)]
    Task(#[from] TaskError),
}

/// Where a running gateway listens (fields of [`Running`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Addresses {
    /// Where HTTP is served (the bound address, useful with port 0).
    pub http_addr: SocketAddr,
}

/// A running gateway: `http_addr`, and `wait()`, which resolves when it stops: after
/// `shutdown` is cancelled and in-flight requests are answered.
pub type Running = service_skeleton::Running<Addresses, StartError>;

/// Binds the HTTP port and serves in the background; see the crate docs.
pub async fn start(config: Config, shutdown: CancellationToken) -> Result<Running, StartError> {
    let (listener, http_addr) = service_skeleton::bind(config.gateway_http_addr.get()).await?;

    let timeout = config.gateway_orders_timeout.get();
    let metrics = Arc::new(Metrics::new());
    // With TLS the files are read now (a file that cannot be used stops the start)
    // and again when they change or on SIGHUP.
    let tls = config.orders_tls()?;
    let orders_tls = tls_mode(tls.as_ref());
    let resolve_interval = config.gateway_orders_resolve_interval.get();
    let pool = balance::Pool::start(
        &config.orders_grpc_addr,
        tls,
        timeout,
        resolve_interval,
        &metrics,
        &shutdown,
    )
    .await
    .map_err(|err| match err {
        balance::BuildError::Tls(err) => StartError::OrdersTls(err),
        other => StartError::OrdersEndpoint(other),
    })?;

    let auth = auth::Auth::start(
        config.auth()?,
        config.gateway_jwt_jwks_refresh.get(),
        config.gateway_jwt_jwks_cooldown.get(),
        &metrics,
        shutdown.clone(),
    )
    .await?;
    let in_flight = overload::InFlight::new(config.gateway_max_in_flight, &metrics);
    let replicas = pool.replicas().len();
    let gateway = handlers::Gateway::new(pool, timeout, in_flight);
    let routes = routes::routes(gateway, auth.clone(), metrics);
    let http_timeouts = config.http_timeouts();
    tracing::info!(
        %http_addr,
        orders = %config.orders_grpc_addr,
        orders_replicas = replicas,
        ?resolve_interval,
        orders_tls,
        ?timeout,
        max_in_flight = config.gateway_max_in_flight,
        ?http_timeouts,
        auth = if auth.requires_tokens() { "jwt" } else { "none" },
        "gateway listening"
    );
    let work = ops_http::serve_http(
        warp::service(routes),
        listener,
        http_timeouts,
        shutdown.clone().cancelled_owned(),
    );
    let work = async move {
        work.await;
        Ok(())
    };
    Ok(Running::spawn(
        "gateway",
        Addresses { http_addr },
        None,
        shutdown,
        work,
    ))
}

/// For the start-up log: `off`, `on` or `mutual` (a client certificate presented).
fn tls_mode(files: Option<&grpc_tls::ClientTlsFiles>) -> &'static str {
    match files {
        None => "off",
        Some(files) if files.identity.is_some() => "mutual",
        Some(_) => "on",
    }
}
