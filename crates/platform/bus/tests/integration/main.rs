//! bus's integration tests (the adapter on every broker and client, broker versions,
//! SASL_SSL), one test binary: a module per former `tests/*.rs` binary, so the
//! dependency tree is linked once.
#![allow(clippy::unwrap_used)]

mod adapter;
mod broker_versions;
mod properties;
mod sasl_ssl;
