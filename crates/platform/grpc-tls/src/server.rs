//! The server side: a rustls configuration from a certificate chain, its key and,
//! for mutual TLS, the CA that client certificates must chain to.

use std::sync::Arc;

use rustls::{ServerConfig, server::WebPkiClientVerifier};
use tokio_util::sync::CancellationToken;

use crate::{
    pem::{self, PemFile, TlsError},
    reload::{self, ReloadOptions, Reloading},
};

/// The ALPN protocol every gRPC peer speaks; grpc-go clients (grpcurl among them)
/// refuse a TLS server that does not select it.
pub const ALPN_H2: &[u8] = b"h2";

/// The newest server configuration ([`ServerTlsFiles::reloading`]), what
/// [`crate::TlsIncoming`] takes.
pub type ReloadingServerConfig = Reloading<Arc<ServerConfig>>;

/// The files of a TLS server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerTlsFiles {
    /// The certificate chain, the server's own certificate first.
    pub cert: PemFile,
    /// Its private key: PKCS#8, RSA or SEC1 PEM.
    pub key: PemFile,
    /// With a CA, every client must present a certificate that chains to it (mutual
    /// TLS); a client without one, or with one from another CA, fails the handshake.
    pub client_ca: Option<PemFile>,
}

impl ServerTlsFiles {
    /// Whether client certificates are required (mutual TLS).
    pub fn mutual(&self) -> bool {
        self.client_ca.is_some()
    }

    /// Reads the files and builds the configuration: TLS 1.2 and 1.3 on the ring
    /// provider, ALPN `h2`, client certificates required and verified when
    /// `client_ca` is set.
    pub fn load(&self) -> Result<Arc<ServerConfig>, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let chain = pem::certificates(&self.cert, &self.cert.read()?)?;
        let key = pem::private_key(&self.key, &self.key.read()?)?;
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Rustls)?;
        let builder = match &self.client_ca {
            Some(ca) => {
                let roots = pem::trust_store(ca, &ca.read()?)?;
                // The builder's default: a client without a certificate is refused.
                let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider)
                    .build()
                    .map_err(|err| TlsError::Pem {
                        file: ca.clone(),
                        reason: format!("cannot verify client certificates with it: {err}"),
                    })?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        // Refuses a key that is not the certificate's.
        let mut config = builder
            .with_single_cert(chain, key)
            .map_err(|err| pem::certificate_and_key_error(&self.cert, &self.key, err))?;
        config.alpn_protocols = vec![ALPN_H2.to_vec()];
        Ok(Arc::new(config))
    }

    /// [`ServerTlsFiles::load`] now (its error is a start-up error), then again
    /// whenever the files change or on SIGHUP (see [`crate::reload`]); stops on
    /// `shutdown`. Must be called within a Tokio runtime.
    pub fn reloading(
        self,
        label: &'static str,
        options: ReloadOptions,
        shutdown: CancellationToken,
    ) -> Result<ReloadingServerConfig, TlsError> {
        let mut files = vec![self.cert.clone(), self.key.clone()];
        files.extend(self.client_ca.clone());
        reload::watch_files(label, files, move || self.load(), options, shutdown)
    }
}
