//! grpc-tls's integration tests, one test binary: real TLS over loopback with
//! certificates made in the test (`testkit::TestCa`).
//!
//! - `rotation`: the server's certificate replaced on disk reaches new connections
//!   (established ones keep theirs), at once on SIGHUP, and a broken file keeps the
//!   current certificate;
//! - `grpc`: tonic served from `TlsIncoming` with mutual TLS, called through the
//!   client channel: refused without a client certificate or with another CA's, and
//!   the client certificate rotated without a new channel being asked for;
//! - `openssl`: the files the documentation's openssl commands make (RSA and SEC1
//!   keys) load and serve.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod grpc;
mod openssl;
mod rotation;
