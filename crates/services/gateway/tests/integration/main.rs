//! The gateway's integration tests, one test binary: a module per former
//! `tests/*.rs` binary, sharing `common`, so the dependency tree is linked once.
#![allow(clippy::unwrap_used)]

mod common;
mod config;
mod grpc_tls;
mod idempotency;
mod openapi;
mod outage;
mod overload;
mod readiness;
mod replicas;
mod rest;
mod security;
mod swagger_ui;
mod upstream;
