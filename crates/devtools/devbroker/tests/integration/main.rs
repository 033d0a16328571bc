//! devbroker's integration tests, one test binary: a module per former
//! `tests/*.rs` binary, sharing `common`, so the dependency tree is linked once.
#![allow(clippy::unwrap_used)]

// Helpers some tests use; `wait_until` is used by none (as before the merge).
#[allow(dead_code)]
mod common;
mod create_topics;
mod durability;
mod kafka_client;
mod kcat;
mod logging;
mod mutation_fuzz;
mod robustness;
