//! lifecycle's integration tests, laid out as every crate's: one test binary,
//! `tests/integration/`, a module per area.
#![allow(clippy::unwrap_used)]

mod signal;
