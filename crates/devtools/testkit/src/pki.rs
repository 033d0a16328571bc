//! Certificates for TLS and mutual-TLS tests, made in the test with rcgen: a test CA
//! ([`TestCa`]) that issues server and client certificates ([`Issued`]), as PEM
//! strings or written to files in the CA's temporary directory.
//!
//! Unlike [`crate::TestCerts`] (one CA, one server certificate, fixed file names), a
//! test can hold several CAs (a client certificate from "another CA" must be refused)
//! and issue as many certificates as it needs (a rotated one, a client one).

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// A test certificate authority, its files in a temporary directory removed on drop.
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
    dir: tempfile::TempDir,
}

/// One certificate the CA issued, with its private key (PKCS#8 PEM).
#[derive(Clone)]
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
}

/// Where [`TestCa::issue_files`] wrote a certificate and its key.
#[derive(Debug, Clone)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TestCa {
    /// A new CA whose common name carries `label` and a random suffix: two test CAs
    /// never look like one to a verifier.
    pub fn new(label: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("test-ca")
            .tempdir()
            .unwrap();
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(
            DnType::CommonName,
            format!("{label} test CA {:08x}", rand::random::<u32>()),
        );
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert_pem = params.self_signed(&key).unwrap().pem();
        std::fs::write(dir.path().join("ca.pem"), &cert_pem).unwrap();
        Self {
            issuer: Issuer::new(params, key),
            cert_pem,
            dir,
        }
    }

    /// The CA certificate's file (PEM).
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    pub fn ca_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA's directory, for files a test writes beside its certificates.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A server certificate for `names` (DNS names or IP addresses; the first is
    /// also the common name).
    pub fn server(&self, names: &[&str]) -> Issued {
        self.issue(names, ExtendedKeyUsagePurpose::ServerAuth)
    }

    /// A client certificate whose common name is `name`.
    pub fn client(&self, name: &str) -> Issued {
        self.issue(&[name], ExtendedKeyUsagePurpose::ClientAuth)
    }

    /// [`TestCa::server`] or [`TestCa::client`] written to `<stem>.pem` and
    /// `<stem>.key` in the CA's directory.
    pub fn issue_files(&self, stem: &str, issued: &Issued) -> CertFiles {
        let files = CertFiles {
            cert: self.dir.path().join(format!("{stem}.pem")),
            key: self.dir.path().join(format!("{stem}.key")),
        };
        issued.write_to(&files);
        files
    }

    fn issue(&self, names: &[&str], usage: ExtendedKeyUsagePurpose) -> Issued {
        let key = KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|name| (*name).to_owned()).collect();
        let mut params = CertificateParams::new(names.clone()).unwrap();
        params.distinguished_name.push(
            DnType::CommonName,
            names.first().cloned().unwrap_or_default(),
        );
        params.extended_key_usages = vec![usage];
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}

impl Issued {
    /// Writes the certificate and the key over `files` (the key readable by the
    /// owner only, as a real key file would be).
    pub fn write_to(&self, files: &CertFiles) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(&files.cert, &self.cert_pem).unwrap();
        std::fs::write(&files.key, &self.key_pem).unwrap();
        std::fs::set_permissions(&files.key, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
}
