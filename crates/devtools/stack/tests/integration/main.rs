//! stack's integration tests (end to end, the binaries, the documentation and
//! deployment files), one test binary: a module per former `tests/*.rs` binary, so
//! the dependency tree is linked once.
#![allow(clippy::unwrap_used)]

mod cluster_failover;
mod configuration_docs;
mod dashboard;
mod deployment_files;
mod e2e;
mod go_env_e2e;
mod idempotency_e2e;
mod kafka_client;
mod legacy_protocol;
mod stack_binary;
mod traces;
