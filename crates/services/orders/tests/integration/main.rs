//! orders' integration tests, one test binary: a module per former `tests/*.rs`
//! binary, so the dependency tree is linked once. They use the harness of orders'
//! `testing` feature, which the dev-dependency on orders itself turns on.
#![allow(clippy::unwrap_used)]

mod batch;
mod config;
mod go_takeover;
mod grpc;
mod grpc_tls;
mod idempotency;
mod migrations;
mod outage;
mod overload;
mod payment_results;
mod reflection;
mod tls;
