//! TLS to PostgreSQL with rustls (ring provider; no system OpenSSL), configured the
//! way libpq is: `sslmode` and `sslrootcert` in the DSN.
//!
//! | `sslmode` | encrypts | verifies |
//! | --- | --- | --- |
//! | `disable` | never | - |
//! | `prefer` (default, as libpq) | when the server offers TLS, else plain | nothing |
//! | `require` | always | nothing; the chain against `sslrootcert` when one is given (as libpq) |
//! | `verify-ca` | always | the chain against `sslrootcert` |
//! | `verify-full` | always | the chain and that the certificate names the host of the DSN |
//!
//! `sslrootcert` is a PEM file of trusted CA certificates, or `system` for the
//! operating system's trust store (as libpq 16; only with `verify-full`, the mode
//! `system` then defaults to). Unlike libpq there is no implicit
//! `~/.postgresql/root.crt`: `verify-ca` and `verify-full` without `sslrootcert` are
//! refused as a configuration error. `prefer` never verifies (libpq verifies there
//! when a root certificate exists and falls back to plain text when that fails,
//! which guarantees nothing either). No channel binding (`SCRAM-SHA-256-PLUS`) is
//! offered: SCRAM runs without it, as it does over plain TCP.

use std::{
    future::Future,
    io,
    path::PathBuf,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
    client::{
        WebPkiServerVerifier,
        danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    },
    crypto::CryptoProvider,
    pki_types::{CertificateDer, ServerName, UnixTime, pem::PemObject},
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// libpq's `sslmode` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    fn parse(value: &str) -> Result<Self, TlsConfigError> {
        Ok(match value {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            // `allow` (plain first, TLS if the server insists) is not offered.
            other => return Err(TlsConfigError::Mode(other.to_owned())),
        })
    }

    /// What tokio-postgres is told: it knows only whether to try TLS and whether it
    /// must succeed; the verification is in the rustls configuration.
    pub(crate) fn negotiation(self) -> postgres::config::SslMode {
        match self {
            SslMode::Disable => postgres::config::SslMode::Disable,
            SslMode::Prefer => postgres::config::SslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
                postgres::config::SslMode::Require
            }
        }
    }
}

impl std::fmt::Display for SslMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where trusted CA certificates come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootCert {
    /// No `sslrootcert`.
    None,
    /// `sslrootcert=/path/ca.pem`.
    File(PathBuf),
    /// `sslrootcert=system`.
    System,
}

/// The TLS settings of one DSN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    pub mode: SslMode,
    pub root_cert: RootCert,
}

/// A TLS setting that cannot work (never retried).
#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    #[error(
        "sslmode={0:?} is not supported (use disable, prefer, require, verify-ca or verify-full)"
    )]
    Mode(String),
    #[error(
        "sslmode={0} needs sslrootcert (a PEM file of the CA certificates to trust, or \
         sslrootcert=system for the system's trust store)"
    )]
    NoRootCert(SslMode),
    #[error("sslrootcert=system needs sslmode=verify-full (as libpq), not sslmode={0}")]
    SystemNeedsVerifyFull(SslMode),
    #[error("cannot read sslrootcert {path:?}")]
    ReadRootCert { path: PathBuf, source: io::Error },
    #[error("sslrootcert {path:?}: {reason}")]
    BadRootCert { path: PathBuf, reason: String },
    #[error("no usable certificate in the system trust store: {0}")]
    SystemRoots(String),
    #[error("TLS configuration")]
    Rustls(#[source] rustls::Error),
}

/// Takes `sslmode` and `sslrootcert` out of `dsn` (URL query or `key=value` form),
/// returning the DSN tokio-postgres can parse and the settings. Both spellings follow
/// libpq; a `key=value` value must not contain spaces.
pub fn split_dsn(dsn: &str) -> Result<(String, TlsSettings), TlsConfigError> {
    let mut mode = None;
    let mut root = None;
    let rest = if dsn.starts_with("postgres://") || dsn.starts_with("postgresql://") {
        match dsn.split_once('?') {
            None => dsn.to_owned(),
            Some((base, query)) => {
                let mut kept = Vec::new();
                for pair in query.split('&') {
                    let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                    match key {
                        "sslmode" => mode = Some(percent_decode(value)),
                        "sslrootcert" => root = Some(percent_decode(value)),
                        _ => kept.push(pair),
                    }
                }
                if kept.is_empty() {
                    base.to_owned()
                } else {
                    format!("{base}?{}", kept.join("&"))
                }
            }
        }
    } else {
        let mut kept = Vec::new();
        for token in dsn.split_whitespace() {
            match token.split_once('=') {
                Some(("sslmode", value)) => mode = Some(unquote(value)),
                Some(("sslrootcert", value)) => root = Some(unquote(value)),
                _ => kept.push(token),
            }
        }
        kept.join(" ")
    };
    let root_cert = match root.as_deref() {
        None | Some("") => RootCert::None,
        Some("system") => RootCert::System,
        Some(path) => RootCert::File(PathBuf::from(path)),
    };
    let mode = match mode.as_deref() {
        None | Some("") if root_cert == RootCert::System => SslMode::VerifyFull,
        None | Some("") => SslMode::Prefer,
        Some(value) => SslMode::parse(value)?,
    };
    match (&root_cert, mode) {
        (RootCert::None, SslMode::VerifyCa | SslMode::VerifyFull) => {
            return Err(TlsConfigError::NoRootCert(mode));
        }
        (RootCert::System, mode) if mode != SslMode::VerifyFull => {
            return Err(TlsConfigError::SystemNeedsVerifyFull(mode));
        }
        _ => {}
    }
    Ok((rest, TlsSettings { mode, root_cert }))
}

fn unquote(value: &str) -> String {
    value.trim_matches('\'').to_owned()
}

fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(hi), Some(lo)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            )
        {
            // Two hex digits: at most 255.
            out.push(u8::try_from(hi * 16 + lo).unwrap_or(b'?'));
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The connector handed to `postgres::Config::connect`: rustls set up for one
/// [`TlsSettings`]. Cheap to clone (the rustls configuration is shared).
#[derive(Clone)]
pub struct PgTls {
    mode: SslMode,
    config: Arc<ClientConfig>,
}

impl std::fmt::Debug for PgTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgTls")
            .field("sslmode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl PgTls {
    /// Loads the trusted certificates and builds the rustls configuration.
    pub fn new(settings: &TlsSettings) -> Result<Self, TlsConfigError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let roots = match &settings.root_cert {
            RootCert::None => None,
            RootCert::File(path) => Some(roots_from_file(path)?),
            RootCert::System => Some(system_roots()?),
        };
        let verifier: Arc<dyn ServerCertVerifier> = match (settings.mode, roots) {
            (SslMode::VerifyFull, Some(roots)) => web_pki(roots, &provider)?,
            (SslMode::VerifyCa | SslMode::Require, Some(roots)) => Arc::new(Relaxed {
                provider: provider.clone(),
                chain: Some(web_pki(roots, &provider)?),
            }),
            // disable (never used), prefer, require without a root certificate.
            _ => Arc::new(Relaxed {
                provider: provider.clone(),
                chain: None,
            }),
        };
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(TlsConfigError::Rustls)?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Ok(Self {
            mode: settings.mode,
            config: Arc::new(config),
        })
    }

    pub fn mode(&self) -> SslMode {
        self.mode
    }
}

fn roots_from_file(path: &PathBuf) -> Result<Arc<RootCertStore>, TlsConfigError> {
    let pem = std::fs::read(path).map_err(|source| TlsConfigError::ReadRootCert {
        path: path.clone(),
        source,
    })?;
    let bad = |reason: String| TlsConfigError::BadRootCert {
        path: path.clone(),
        reason,
    };
    let mut store = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|err| bad(format!("not PEM certificates: {err}")))?;
        store
            .add(cert)
            .map_err(|err| bad(format!("not a usable CA certificate: {err}")))?;
    }
    if store.is_empty() {
        return Err(bad("no certificate in the file".to_owned()));
    }
    Ok(Arc::new(store))
}

fn system_roots() -> Result<Arc<RootCertStore>, TlsConfigError> {
    let found = rustls_native_certs::load_native_certs();
    let mut store = RootCertStore::empty();
    let (added, _ignored) = store.add_parsable_certificates(found.certs);
    if added == 0 {
        let reasons: Vec<String> = found.errors.iter().map(ToString::to_string).collect();
        return Err(TlsConfigError::SystemRoots(if reasons.is_empty() {
            "none found (set SSL_CERT_FILE or install ca-certificates)".to_owned()
        } else {
            reasons.join("; ")
        }));
    }
    Ok(Arc::new(store))
}

fn web_pki(
    roots: Arc<RootCertStore>,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<WebPkiServerVerifier>, TlsConfigError> {
    WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
        .build()
        .map_err(|err| TlsConfigError::Rustls(rustls::Error::General(err.to_string())))
}

/// Every mode short of `verify-full`. The handshake's signatures are always checked
/// (so the session is really keyed to the presented certificate); the certificate
/// itself only when `chain` is set (`verify-ca`, or `require` with a root
/// certificate), and then without its host name.
#[derive(Debug)]
struct Relaxed {
    provider: Arc<CryptoProvider>,
    chain: Option<Arc<WebPkiServerVerifier>>,
}

impl ServerCertVerifier for Relaxed {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        // webpki checks the chain (and validity dates) before the name, so a name
        // error means everything else passed.
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    // webpki's own signature checks use these same provider algorithms.
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

impl<S> MakeTlsConnect<S> for PgTls
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = PgTlsStream<S>;
    type TlsConnect = PgTlsConnect;
    type Error = io::Error;

    fn make_tls_connect(&mut self, domain: &str) -> Result<PgTlsConnect, io::Error> {
        // The name is checked when TLS is actually started: a Unix socket (empty
        // name) never gets there.
        Ok(PgTlsConnect {
            domain: domain.to_owned(),
            config: self.config.clone(),
        })
    }
}

/// One connection's TLS start.
pub struct PgTlsConnect {
    domain: String,
    config: Arc<ClientConfig>,
}

impl<S> TlsConnect<S> for PgTlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = PgTlsStream<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<PgTlsStream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            let name = ServerName::try_from(self.domain.clone()).map_err(|err| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("host {:?} is not a TLS server name: {err}", self.domain),
                )
            })?;
            let stream = tokio_rustls::TlsConnector::from(self.config)
                .connect(name, stream)
                .await?;
            Ok(PgTlsStream(stream))
        })
    }
}

/// A TLS stream to PostgreSQL.
pub struct PgTlsStream<S>(tokio_rustls::client::TlsStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream for PgTlsStream<S> {
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for PgTlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for PgTlsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// The rustls error (a refused certificate, a failed handshake) behind a connection
/// error, if that is what it was.
pub fn tls_failure<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(current) = cause {
        if let Some(tls) = current.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        // tokio-rustls wraps the rustls error in an io::Error, whose `source()`
        // skips the wrapped error itself.
        if let Some(tls) = current
            .downcast_ref::<io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            return Some(tls);
        }
        cause = current.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_parameters_are_taken_out() {
        let (rest, tls) = split_dsn(
            "postgres://u:p@h:5432/db?sslmode=verify-full&sslrootcert=%2Ftmp%2Fca.pem&connect_timeout=3",
        )
        .unwrap();
        assert_eq!(rest, "postgres://u:p@h:5432/db?connect_timeout=3");
        assert_eq!(tls.mode, SslMode::VerifyFull);
        assert_eq!(tls.root_cert, RootCert::File("/tmp/ca.pem".into()));

        let (rest, tls) = split_dsn("postgres://u@h/db?sslmode=require").unwrap();
        assert_eq!(rest, "postgres://u@h/db");
        assert_eq!(tls.mode, SslMode::Require);
        assert_eq!(tls.root_cert, RootCert::None);
    }

    #[test]
    fn key_value_form_and_defaults() {
        let (rest, tls) =
            split_dsn("host=h dbname=db sslmode=verify-ca sslrootcert='/ca.pem'").unwrap();
        assert_eq!(rest, "host=h dbname=db");
        assert_eq!(tls.mode, SslMode::VerifyCa);
        assert_eq!(tls.root_cert, RootCert::File("/ca.pem".into()));

        assert_eq!(
            split_dsn("postgres://h/db").unwrap().1.mode,
            SslMode::Prefer
        );
        assert_eq!(
            split_dsn("postgres://h/db?sslrootcert=system")
                .unwrap()
                .1
                .mode,
            SslMode::VerifyFull
        );
    }

    #[test]
    fn impossible_settings_are_refused() {
        let err = |dsn: &str| split_dsn(dsn).unwrap_err().to_string();
        assert!(err("postgres://h/db?sslmode=verify-full").contains("needs sslrootcert"));
        assert!(err("postgres://h/db?sslmode=allow").contains("not supported"));
        assert!(err("postgres://h/db?sslmode=require&sslrootcert=system").contains("verify-full"));
        let missing = PgTls::new(&TlsSettings {
            mode: SslMode::VerifyFull,
            root_cert: RootCert::File("/nonexistent/ca.pem".into()),
        })
        .unwrap_err()
        .to_string();
        assert!(missing.contains("/nonexistent/ca.pem"), "{missing}");
    }
}
