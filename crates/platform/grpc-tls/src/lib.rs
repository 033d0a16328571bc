//! TLS and mutual TLS for the platform's gRPC hop (gateway -> orders), with
//! certificate rotation without a restart. rustls on the ring provider only: no
//! system OpenSSL, no aws-lc (as the PostgreSQL and Redis TLS of `pgsetup` and
//! notifications).
//!
//! How the parts fit:
//! - [`pem`]: the PEM files ([`PemFile`]: a path and the variable that named it),
//!   certificate chains, private keys (PKCS#8, RSA, SEC1) and CA bundles, and
//!   [`TlsError`], whose every variant names the variable and the file;
//! - [`server`]: [`ServerTlsFiles`] -> a rustls `ServerConfig` (ALPN `h2`; with a
//!   client CA, client certificates are required and verified: mutual TLS);
//! - [`incoming`]: [`TlsIncoming`], the connection stream for tonic's
//!   `serve_with_incoming_shutdown`: TCP accepts in one task, each handshake in its
//!   own task under a timeout, only completed TLS streams yielded;
//! - [`client`]: [`ClientTlsFiles`] -> a tonic `Channel` over TLS that verifies the
//!   server against a given CA and presents a client certificate;
//! - [`reload`]: [`Reloading`], the newest server configuration or channel, rebuilt
//!   by a watcher task when the files change (polled every
//!   [`DEFAULT_POLL_INTERVAL`]) or on SIGHUP; a failed rebuild keeps the current one
//!   and logs the error naming the file.
//!
//! orders serves gRPC from [`TlsIncoming`] over [`ServerTlsFiles::reloading`]; the
//! gateway calls orders over [`ClientTlsFiles::reloading`]'s channel.

pub mod client;
pub mod incoming;
pub mod pem;
pub mod reload;
pub mod server;

pub use client::{ClientIdentity, ClientTlsFiles};
pub use incoming::{DEFAULT_HANDSHAKE_TIMEOUT, TlsIncoming};
pub use pem::{PemFile, TlsError, error_chain};
pub use reload::{DEFAULT_POLL_INTERVAL, ReloadOptions, ReloadStatus, Reloading};
pub use server::{ALPN_H2, ReloadingServerConfig, ServerTlsFiles};
