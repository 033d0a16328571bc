//! The client side: a tonic [`Channel`] over TLS that verifies the server against a
//! given CA (not the system's trust store) and, for mutual TLS, presents a client
//! certificate; rebuilt when its files change or on SIGHUP ([`ClientTlsFiles::reloading`]).
//! [`ClientTlsFiles::channel_at`] connects to a given address (one replica of several
//! a name resolves to) while verifying the name, so every replica shares the files.
//!
//! The files are checked here before tonic sees them (tonic skips a CA certificate
//! it cannot parse and would only fail at the first connection), so a wrong file is
//! an error naming it, at start-up or at the reload.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use rustls::ClientConfig;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::{
    pem::{self, PemFile, TlsError},
    reload::{self, ReloadOptions, Reloading},
};

/// The files of a TLS client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientTlsFiles {
    /// The CA certificates the server's certificate must chain to.
    pub ca: PemFile,
    /// The client certificate and key presented to a server that asks for one.
    pub identity: Option<ClientIdentity>,
}

/// A client certificate chain and its key (PKCS#8, RSA or SEC1 PEM).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIdentity {
    pub cert: PemFile,
    pub key: PemFile,
}

impl ClientTlsFiles {
    /// A channel to `uri` (`http://host:port`, `https://host:port` or `host:port`:
    /// always TLS) that connects at its first call. The server's certificate must
    /// chain to [`ClientTlsFiles::ca`] and name the URI's host. `connect_timeout`
    /// bounds the TCP connect and, separately, the TLS handshake.
    pub fn channel(&self, uri: &str, connect_timeout: Duration) -> Result<Channel, TlsError> {
        self.channel_at(uri, None, connect_timeout)
    }

    /// [`ClientTlsFiles::channel`], connecting to `addr` when given instead of
    /// resolving the URI's host: for one of the addresses a name resolves to (a
    /// replica behind a headless Kubernetes Service). The server's certificate must
    /// still name the URI's host, and the calls carry it as their authority, as
    /// every replica serves the same name.
    pub fn channel_at(
        &self,
        uri: &str,
        addr: Option<SocketAddr>,
        connect_timeout: Duration,
    ) -> Result<Channel, TlsError> {
        let target = Target::parse(uri)?;
        let ca_pem = self.ca.read()?;
        let roots = pem::trust_store(&self.ca, &ca_pem)?;
        let mut tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&ca_pem))
            .domain_name(target.domain.clone())
            .timeout(connect_timeout);
        if let Some(identity) = &self.identity {
            let cert_pem = identity.cert.read()?;
            let key_pem = identity.key.read()?;
            check_identity(identity, &cert_pem, &key_pem, roots)?;
            tls = tls.identity(Identity::from_pem(cert_pem, key_pem));
        }
        let endpoint_error = |source| TlsError::Endpoint {
            uri: target.https.clone(),
            source,
        };
        let endpoint =
            match addr {
                None => Endpoint::from_shared(target.https.clone()).map_err(endpoint_error)?,
                Some(addr) => {
                    let origin = target.https.parse().map_err(|err: http::uri::InvalidUri| {
                        TlsError::Uri {
                            uri: uri.to_owned(),
                            reason: err.to_string(),
                        }
                    })?;
                    Endpoint::from_shared(format!("https://{addr}"))
                        .map_err(endpoint_error)?
                        .origin(origin)
                }
            };
        let endpoint = endpoint
            .tls_config(tls)
            .map_err(endpoint_error)?
            .connect_timeout(connect_timeout);
        Ok(endpoint.connect_lazy())
    }

    /// [`ClientTlsFiles::channel`] now (its error is a start-up error), then a new
    /// channel whenever the files change or on SIGHUP (see [`crate::reload`]): calls
    /// started after a reload connect with the new files, calls in progress finish on
    /// the old connection, which closes once its last user is gone. Stops on
    /// `shutdown`. Must be called within a Tokio runtime.
    pub fn reloading(
        self,
        label: &'static str,
        uri: String,
        connect_timeout: Duration,
        options: ReloadOptions,
        shutdown: CancellationToken,
    ) -> Result<Reloading<Channel>, TlsError> {
        self.reloading_at(label, uri, None, connect_timeout, options, shutdown)
    }

    /// [`ClientTlsFiles::reloading`] of [`ClientTlsFiles::channel_at`]: every
    /// rebuilt channel connects to `addr` when given.
    pub fn reloading_at(
        self,
        label: &'static str,
        uri: String,
        addr: Option<SocketAddr>,
        connect_timeout: Duration,
        options: ReloadOptions,
        shutdown: CancellationToken,
    ) -> Result<Reloading<Channel>, TlsError> {
        let mut files = vec![self.ca.clone()];
        if let Some(identity) = &self.identity {
            files.extend([identity.cert.clone(), identity.key.clone()]);
        }
        reload::watch_files(
            label,
            files,
            move || self.channel_at(&uri, addr, connect_timeout),
            options,
            shutdown,
        )
    }
}

/// Where a TLS channel goes: the `https://` URI and the name the server's
/// certificate must carry.
struct Target {
    https: String,
    domain: String,
}

impl Target {
    fn parse(uri: &str) -> Result<Self, TlsError> {
        let fail = |reason: &str| TlsError::Uri {
            uri: uri.to_owned(),
            reason: reason.to_owned(),
        };
        let authority = match uri.split_once("://") {
            Some(("http" | "https", rest)) => rest.trim_end_matches('/'),
            Some((scheme, _)) => return Err(fail(&format!("unsupported scheme {scheme:?}"))),
            None => uri.trim_end_matches('/'),
        };
        let parsed: http::uri::Authority = authority
            .parse()
            .map_err(|err| fail(&format!("expected host:port: {err}")))?;
        if parsed.port_u16().is_none() {
            return Err(fail("no port (expected host:port)"));
        }
        // An IPv6 address is written in brackets in the URI, without in the name.
        let host = parsed.host();
        let domain = host
            .strip_prefix('[')
            .and_then(|host| host.strip_suffix(']'))
            .unwrap_or(host);
        Ok(Self {
            https: format!("https://{parsed}"),
            domain: domain.to_owned(),
        })
    }
}

/// Checks that the client certificate parses and that its key is its own, as rustls
/// will use them (tonic would only find out at the first connection).
fn check_identity(
    identity: &ClientIdentity,
    cert_pem: &[u8],
    key_pem: &[u8],
    roots: Arc<rustls::RootCertStore>,
) -> Result<(), TlsError> {
    let chain = pem::certificates(&identity.cert, cert_pem)?;
    let key = pem::private_key(&identity.key, key_pem)?;
    ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Rustls)?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(|err| pem::certificate_and_key_error(&identity.cert, &identity.key, err))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_address_form_becomes_an_https_uri_and_a_server_name() {
        let target = |uri: &str| Target::parse(uri).map(|t| (t.https, t.domain));
        let ok = |https: &str, domain: &str| Ok::<_, ()>((https.to_owned(), domain.to_owned()));
        assert_eq!(
            target("http://orders:50051").map_err(drop),
            ok("https://orders:50051", "orders")
        );
        assert_eq!(
            target("https://orders.internal:443/").map_err(drop),
            ok("https://orders.internal:443", "orders.internal")
        );
        assert_eq!(
            target("127.0.0.1:50051").map_err(drop),
            ok("https://127.0.0.1:50051", "127.0.0.1")
        );
        assert_eq!(
            target("http://[::1]:50051").map_err(drop),
            ok("https://[::1]:50051", "::1")
        );
        for bad in ["ftp://orders:1", "orders", "http://orders"] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
    }
}
