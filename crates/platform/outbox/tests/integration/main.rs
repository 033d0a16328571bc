//! outbox's integration tests (the relay, retention), one test binary: a module per
//! former `tests/*.rs` binary, sharing `common`, so the dependency tree is linked
//! once.
#![allow(clippy::unwrap_used)]

mod common;
mod relay;
mod retention;
