//! Reading the PEM files: certificate chains, private keys and CA bundles, each
//! named by the variable it came from, so every error says which setting and which
//! file to fix.

use std::{fmt, io, path::PathBuf, sync::Arc};

use rustls::{
    RootCertStore,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
};

/// A PEM file and the setting that named it (e.g. `ORDERS_GRPC_TLS_CERT`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PemFile {
    /// The variable the path came from; errors and logs name it.
    pub var: &'static str,
    pub path: PathBuf,
}

impl PemFile {
    pub fn new(var: &'static str, path: impl Into<PathBuf>) -> Self {
        Self {
            var,
            path: path.into(),
        }
    }

    /// The whole file.
    pub(crate) fn read(&self) -> Result<Vec<u8>, TlsError> {
        std::fs::read(&self.path).map_err(|source| TlsError::Read {
            file: self.clone(),
            source,
        })
    }

    fn bad(&self, reason: impl Into<String>) -> TlsError {
        TlsError::Pem {
            file: self.clone(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for PemFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} = {:?}", self.var, self.path)
    }
}

/// Why a TLS configuration could not be built from its files. Every variant names
/// the setting and the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{file}: cannot read it")]
    Read {
        file: PemFile,
        #[source]
        source: io::Error,
    },
    #[error("{file}: {reason}")]
    Pem { file: PemFile, reason: String },
    #[error("{key} does not go with the certificate in {cert}: {reason}")]
    CertificateAndKey {
        cert: PemFile,
        key: PemFile,
        reason: String,
    },
    #[error("gRPC address {uri:?}: {reason}")]
    Uri { uri: String, reason: String },
    #[error("gRPC address {uri:?}: cannot set up TLS to it")]
    Endpoint {
        uri: String,
        #[source]
        source: tonic::transport::Error,
    },
    #[error("TLS configuration: {0}")]
    Rustls(#[source] rustls::Error),
}

/// `err` and its causes in one line (`outer: cause: ...`), for logs and statuses
/// that show a single string.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(current) = cause {
        text.push_str(": ");
        text.push_str(&current.to_string());
        cause = current.source();
    }
    text
}

/// The certificates of `file` (a chain: the end-entity certificate first), at least one.
pub(crate) fn certificates(
    file: &PemFile,
    pem: &[u8],
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let chain = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| file.bad(format!("not PEM certificates: {err}")))?;
    if chain.is_empty() {
        return Err(file.bad("no certificate in it (expected -----BEGIN CERTIFICATE-----)"));
    }
    Ok(chain)
}

/// The private key of `file`: PKCS#8 (`PRIVATE KEY`), RSA (`RSA PRIVATE KEY`) or
/// SEC1 (`EC PRIVATE KEY`), the first one in the file.
pub(crate) fn private_key(file: &PemFile, pem: &[u8]) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|err| {
        file.bad(format!(
            "no usable private key in it (expected PKCS#8 PRIVATE KEY, RSA PRIVATE KEY or \
             EC PRIVATE KEY PEM): {err}"
        ))
    })
}

/// The CA certificates of `file` as a trust store, at least one.
pub(crate) fn trust_store(file: &PemFile, pem: &[u8]) -> Result<Arc<RootCertStore>, TlsError> {
    let mut store = RootCertStore::empty();
    for cert in certificates(file, pem)? {
        store
            .add(cert)
            .map_err(|err| file.bad(format!("not a usable CA certificate: {err}")))?;
    }
    Ok(Arc::new(store))
}

/// What a rustls refusal of a certificate and key pair means, in words.
pub(crate) fn certificate_and_key_error(
    cert: &PemFile,
    key: &PemFile,
    err: rustls::Error,
) -> TlsError {
    let reason = match err {
        rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => {
            "the private key is not the one of the certificate (the first certificate in \
             the file)"
                .to_owned()
        }
        other => other.to_string(),
    };
    TlsError::CertificateAndKey {
        cert: cert.clone(),
        key: key.clone(),
        reason,
    }
}
