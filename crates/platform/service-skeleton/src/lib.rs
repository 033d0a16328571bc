//! The skeleton every service's `start(config, shutdown)` is built on, so the four
//! services differ only in their real work.
//!
//! How the parts fit:
//! - [`bind`]: a listener for a service's own port (gRPC, HTTP), failing with the
//!   same [`BindError`] as the operations server ([`ops_http::OpsServer::start`]);
//! - [`Running`]: the service's work spawned in the background with its addresses
//!   (read as fields, `running.health_addr`); when the work ends, on its own or after
//!   shutdown, it cancels the shutdown token (so the rest of the service stops too),
//!   waits for the operations server and logs `<service> stopped`. [`Running::wait`]
//!   returns the service's own error type; a panicked task becomes a [`TaskError`];
//! - [`Readiness`]: named blocking probes (database, broker, Redis ...) run off the
//!   runtime every second, each result written to [`ops_http::Health`] (what
//!   `/readyz` answers), until the shutdown token is cancelled;
//! - [`ErrorChain`] (from `lifecycle`, where the platform's lower crates find it too):
//!   an error and all its causes on one line, for the log line a binary writes when
//!   its service fails ([`Running::wait_logged`]);
//! - [`run_until_signal`]: what every service binary's `main` does with its service
//!   (start it, stop it on SIGTERM or Ctrl-C, log a failure); [`run_from_env`] adds
//!   logging and the configuration from the environment before it, so a `main.rs` is
//!   one call.
//!
//! Errors keep their causes: each service's `StartError` wraps [`BindError`] and
//! [`TaskError`] (and its own causes) as sources, never as flattened strings. An
//! error's message says what failed at its level only; its cause is its `source()`,
//! never also written into the message, and [`ErrorChain`] shows the whole chain.
//!
//! Why a crate of its own: `ops-http` serves `/healthz`, `/readyz` and `/metrics` and
//! only reads [`ops_http::Health`]; `lifecycle` is the binaries' logging and signals.
//! Running a service's work, probing its dependencies and reporting its start-up
//! failures is a third capability that every service library needs.

mod binary;
mod errors;
mod readiness;
mod running;

pub use binary::{init_from_env, run_from_env};
pub use errors::{TaskError, bind};
pub use lifecycle::ErrorChain;
pub use ops_http::BindError;
pub use readiness::{READINESS_INTERVAL, Readiness};
pub use running::{OpsAddresses, Running, run_until_signal};
