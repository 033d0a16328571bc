//! payments' integration tests, one test binary: a module per former `tests/*.rs`
//! binary, so the dependency tree is linked once.
#![allow(clippy::unwrap_used)]

mod config;
mod go_takeover;
mod handler;
mod stripe_provider;
mod stripe_support;
mod stripe_worker;
mod worker;
