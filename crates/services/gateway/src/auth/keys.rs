//! The keys tokens are verified with, and where they come from.
//!
//! - A JWKS ([`KeySource::Jwks`]): a file, or an `https://` URL (`http://` only on a
//!   loopback address, for tests and sidecars). Read at start (the gateway does not
//!   start without keys), again every refresh interval, and at most once per
//!   cooldown when a token names a `kid` the set does not have, so keys rotate
//!   without a restart and random `kid`s cannot make the gateway hammer the issuer.
//!   A failed refresh keeps the keys it has.
//! - An HS256 secret ([`KeySource::Hs256`]): one key, HS256 only.
//!
//! Each key carries the algorithms it verifies: an RSA key RS256/384/512 and
//! PS256/384/512 (or only its JWK `alg`), an EC key ES256 (P-256) or ES384 (P-384),
//! an Ed25519 key EdDSA, the secret HS256. A token whose `alg` its key is not for is
//! refused before any signature check: that is what stops an HS256 token "signed"
//! with a public RSA key. Symmetric (`oct`) keys and encryption keys in a JWKS are
//! skipped.

use std::{
    net::IpAddr,
    path::PathBuf,
    sync::{
        Arc, RwLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use jsonwebtoken::{
    Algorithm, DecodingKey,
    jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse},
};
use settings::Secret;
use tokio_util::sync::CancellationToken;

use super::token::TokenHeader;

/// How long one JWKS download may take.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the keys come from.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// A JWKS document, read from a file or fetched from a URL.
    Jwks(JwksLocation),
    /// The shared secret of HS256 tokens (`GATEWAY_JWT_HS256_SECRET`).
    Hs256(Secret),
}

/// `GATEWAY_JWT_JWKS`: a file path or a URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksLocation {
    File(PathBuf),
    Url(String),
}

impl JwksLocation {
    /// Reads `GATEWAY_JWT_JWKS`: `https://...`, `http://` on a loopback host, else a
    /// file path.
    pub fn parse(value: &str) -> Result<Self, String> {
        let lower = value.to_ascii_lowercase();
        if lower.starts_with("https://") {
            return reqwest::Url::parse(value)
                .map(|_| Self::Url(value.to_owned()))
                .map_err(|err| format!("GATEWAY_JWT_JWKS = {value:?} is not a URL: {err}"));
        }
        if lower.starts_with("http://") {
            let url = reqwest::Url::parse(value)
                .map_err(|err| format!("GATEWAY_JWT_JWKS = {value:?} is not a URL: {err}"))?;
            let host = url.host_str().unwrap_or_default();
            let ip = host.trim_start_matches('[').trim_end_matches(']');
            let loopback = host.eq_ignore_ascii_case("localhost")
                || ip.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
            if !loopback {
                return Err(format!(
                    "GATEWAY_JWT_JWKS = {value:?}: keys fetched over plain http could be swapped on the way; use https:// (http:// only on a loopback address)"
                ));
            }
            return Ok(Self::Url(value.to_owned()));
        }
        if value.trim().is_empty() {
            return Err("GATEWAY_JWT_JWKS is empty".to_owned());
        }
        Ok(Self::File(PathBuf::from(value)))
    }
}

impl std::fmt::Display for JwksLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JwksLocation::File(path) => write!(f, "{}", path.display()),
            JwksLocation::Url(url) => f.write_str(url),
        }
    }
}

/// Why keys could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    #[error("cannot read the JWKS file {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot fetch the JWKS from {url}: {reason}")]
    Fetch { url: String, reason: String },
    #[error("the JWKS from {location} is not a JSON key set: {reason}")]
    Parse { location: String, reason: String },
    #[error(
        "the JWKS from {location} has no key usable for signatures (RSA, EC P-256/P-384, Ed25519)"
    )]
    NoKeys { location: String },
}

/// One verification key.
#[derive(Clone)]
pub struct VerifyingKey {
    pub kid: Option<String>,
    pub algorithms: Vec<Algorithm>,
    pub key: DecodingKey,
}

/// What a token's header finds among the keys.
pub enum Lookup {
    Found(VerifyingKey),
    /// The token names a `kid` the set does not have (maybe not yet).
    UnknownKid,
    /// No key can verify this token; the message says why.
    Refused(String),
}

/// The keys in use, and how to get newer ones.
pub struct Keys {
    source: KeySource,
    current: RwLock<Arc<Vec<VerifyingKey>>>,
    /// Counts the loads: what was verified under an older set may not hold any more.
    generation: AtomicU64,
    /// When an unknown `kid` last caused a fetch; `None`: never.
    last_kid_fetch: tokio::sync::Mutex<Option<Instant>>,
    cooldown: Duration,
    client: reqwest::Client,
}

impl Keys {
    /// Loads the keys once; `cooldown` is the least time between two fetches caused
    /// by unknown `kid`s.
    pub async fn load(source: KeySource, cooldown: Duration) -> Result<Self, KeysError> {
        let client = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .build()
            .map_err(|err| KeysError::Fetch {
                url: "(any)".to_owned(),
                reason: err.to_string(),
            })?;
        let keys = Self {
            source,
            current: RwLock::new(Arc::new(Vec::new())),
            generation: AtomicU64::new(0),
            last_kid_fetch: tokio::sync::Mutex::new(None),
            cooldown,
            client,
        };
        keys.refresh().await?;
        Ok(keys)
    }

    /// Reads the source again; on failure the keys in use stay.
    pub async fn refresh(&self) -> Result<(), KeysError> {
        let keys = match &self.source {
            KeySource::Hs256(secret) => vec![VerifyingKey {
                kid: None,
                algorithms: vec![Algorithm::HS256],
                key: DecodingKey::from_secret(secret.expose().as_bytes()),
            }],
            KeySource::Jwks(location) => {
                let text = self.fetch(location).await?;
                parse_jwks(&text, &location.to_string())?
            }
        };
        let count = keys.len();
        match self.current.write() {
            Ok(mut current) => *current = Arc::new(keys),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(keys),
        }
        self.generation.fetch_add(1, Ordering::Release);
        tracing::debug!(keys = count, "token verification keys loaded");
        Ok(())
    }

    async fn fetch(&self, location: &JwksLocation) -> Result<Vec<u8>, KeysError> {
        match location {
            JwksLocation::File(path) => {
                tokio::fs::read(path)
                    .await
                    .map_err(|source| KeysError::Read {
                        path: path.display().to_string(),
                        source,
                    })
            }
            JwksLocation::Url(url) => {
                let failed = |reason: String| KeysError::Fetch {
                    url: url.clone(),
                    reason,
                };
                let response = self
                    .client
                    .get(url)
                    .send()
                    .await
                    .map_err(|err| failed(lifecycle::ErrorChain(&err).to_string()))?;
                if !response.status().is_success() {
                    return Err(failed(format!("HTTP {}", response.status())));
                }
                let body = response
                    .bytes()
                    .await
                    .map_err(|err| failed(lifecycle::ErrorChain(&err).to_string()))?;
                Ok(body.to_vec())
            }
        }
    }

    /// Re-reads the source because a token named an unknown `kid`, unless that was
    /// done less than the cooldown ago. True if new keys were loaded.
    pub async fn refresh_for_unknown_kid(&self) -> bool {
        // One fetch at a time: requests that arrive meanwhile wait for it and then
        // find the cooldown running.
        let mut last = self.last_kid_fetch.lock().await;
        if last.is_some_and(|at| at.elapsed() < self.cooldown) {
            return false;
        }
        *last = Some(Instant::now());
        match self.refresh().await {
            Ok(()) => true,
            Err(err) => {
                tracing::warn!(error = %lifecycle::ErrorChain(&err), "cannot refresh the token keys; keeping the ones loaded");
                false
            }
        }
    }

    /// Refreshes every `interval` until `shutdown` (not for a secret, which cannot
    /// change).
    pub fn spawn_refresh(self: Arc<Self>, interval: Duration, shutdown: CancellationToken) {
        if matches!(self.source, KeySource::Hs256(_)) {
            return;
        }
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(interval) => {}
                }
                if let Err(err) = self.refresh().await {
                    tracing::warn!(error = %lifecycle::ErrorChain(&err), "cannot refresh the token keys; keeping the ones loaded");
                }
            }
        });
    }

    /// Which load of the keys is in use; changes with every load.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The key for a token with `header`.
    pub fn find(&self, header: &TokenHeader) -> Lookup {
        let keys = match self.current.read() {
            Ok(keys) => Arc::clone(&keys),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        };
        let hs256 = matches!(self.source, KeySource::Hs256(_));
        let candidates: Vec<&VerifyingKey> = match &header.kid {
            // A secret has no kid: whatever the token names, the secret verifies it.
            Some(kid) if !hs256 => keys
                .iter()
                .filter(|key| key.kid.as_deref() == Some(kid))
                .collect(),
            _ => keys.iter().collect(),
        };
        if candidates.is_empty() {
            return Lookup::UnknownKid;
        }
        let fitting: Vec<&VerifyingKey> = candidates
            .iter()
            .copied()
            .filter(|key| key.algorithms.contains(&header.alg))
            .collect();
        match fitting.as_slice() {
            [key] => Lookup::Found((*key).clone()),
            [] => Lookup::Refused(format!(
                "the token's algorithm {:?} is not one its key verifies ({})",
                header.alg,
                names(&candidates[0].algorithms)
            )),
            _ => Lookup::Refused(
                "the token names no key (kid) and several keys could verify it".to_owned(),
            ),
        }
    }
}

fn names(algorithms: &[Algorithm]) -> String {
    algorithms
        .iter()
        .map(|alg| format!("{alg:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The signature keys of a JWKS document; keys that cannot verify signatures
/// (encryption keys, symmetric keys, unknown curves) are skipped with a warning.
pub fn parse_jwks(text: &[u8], location: &str) -> Result<Vec<VerifyingKey>, KeysError> {
    #[derive(serde::Deserialize)]
    struct Set {
        keys: Vec<serde_json::Value>,
    }
    let set: Set = serde_json::from_slice(text).map_err(|err| KeysError::Parse {
        location: location.to_owned(),
        reason: err.to_string(),
    })?;
    let mut keys = Vec::new();
    for (index, value) in set.keys.into_iter().enumerate() {
        match verifying_key(value) {
            Ok(key) => keys.push(key),
            Err(reason) => tracing::warn!(location, index, reason, "JWKS key skipped"),
        }
    }
    if keys.is_empty() {
        return Err(KeysError::NoKeys {
            location: location.to_owned(),
        });
    }
    Ok(keys)
}

fn verifying_key(value: serde_json::Value) -> Result<VerifyingKey, String> {
    let jwk: Jwk = serde_json::from_value(value).map_err(|err| format!("not a JWK: {err}"))?;
    if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
        return Err("an encryption key (use: enc)".to_owned());
    }
    let declared = jwk.common.key_algorithm;
    let allowed: Vec<Algorithm> = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => vec![
            Algorithm::RS256,
            Algorithm::RS384,
            Algorithm::RS512,
            Algorithm::PS256,
            Algorithm::PS384,
            Algorithm::PS512,
        ],
        AlgorithmParameters::EllipticCurve(params) => match &params.curve {
            EllipticCurve::P256 => vec![Algorithm::ES256],
            EllipticCurve::P384 => vec![Algorithm::ES384],
            other => return Err(format!("curve {other:?} is not supported")),
        },
        AlgorithmParameters::OctetKeyPair(params) => match &params.curve {
            EllipticCurve::Ed25519 => vec![Algorithm::EdDSA],
            other => return Err(format!("curve {other:?} is not supported")),
        },
        AlgorithmParameters::OctetKey(_) => {
            return Err(
                "a symmetric (oct) key; an HS256 secret is GATEWAY_JWT_HS256_SECRET".to_owned(),
            );
        }
    };
    let algorithms = match declared {
        None => allowed,
        Some(declared) => {
            let algorithm = signing_algorithm(declared)
                .ok_or_else(|| format!("alg {declared} is not a signature algorithm"))?;
            if !allowed.contains(&algorithm) {
                return Err(format!("alg {declared} does not fit the key type"));
            }
            vec![algorithm]
        }
    };
    let key = DecodingKey::from_jwk(&jwk).map_err(|err| format!("unusable key: {err}"))?;
    Ok(VerifyingKey {
        kid: jwk.common.key_id.clone(),
        algorithms,
        key,
    })
}

fn signing_algorithm(alg: KeyAlgorithm) -> Option<Algorithm> {
    Some(match alg {
        KeyAlgorithm::HS256 => Algorithm::HS256,
        KeyAlgorithm::HS384 => Algorithm::HS384,
        KeyAlgorithm::HS512 => Algorithm::HS512,
        KeyAlgorithm::ES256 => Algorithm::ES256,
        KeyAlgorithm::ES384 => Algorithm::ES384,
        KeyAlgorithm::RS256 => Algorithm::RS256,
        KeyAlgorithm::RS384 => Algorithm::RS384,
        KeyAlgorithm::RS512 => Algorithm::RS512,
        KeyAlgorithm::PS256 => Algorithm::PS256,
        KeyAlgorithm::PS384 => Algorithm::PS384,
        KeyAlgorithm::PS512 => Algorithm::PS512,
        KeyAlgorithm::EdDSA => Algorithm::EdDSA,
        _ => return None,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn jwks_locations() {
        assert_eq!(
            JwksLocation::parse("https://issuer.example/jwks.json"),
            Ok(JwksLocation::Url("https://issuer.example/jwks.json".into()))
        );
        assert!(JwksLocation::parse("http://127.0.0.1:8000/jwks").is_ok());
        assert!(JwksLocation::parse("http://localhost:8000/jwks").is_ok());
        let err = JwksLocation::parse("http://issuer.example/jwks").unwrap_err();
        assert!(err.contains("use https://"), "{err}");
        assert_eq!(
            JwksLocation::parse("/etc/gateway/jwks.json"),
            Ok(JwksLocation::File("/etc/gateway/jwks.json".into()))
        );
    }

    #[test]
    fn only_signature_keys_are_kept_each_with_its_algorithms() {
        let jwks = br#"{"keys": [
            {"kty": "EC", "crv": "P-256", "kid": "ec", "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
            {"kty": "oct", "kid": "secret", "k": "c2VjcmV0"},
            {"kty": "EC", "crv": "P-256", "kid": "enc", "use": "enc", "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
            {"kty": "OKP", "crv": "Ed25519", "kid": "ed", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
            {"kty": "XYZ"}
        ]}"#;
        let keys = parse_jwks(jwks, "test").unwrap();
        let kept: Vec<_> = keys
            .iter()
            .map(|key| (key.kid.clone().unwrap(), key.algorithms.clone()))
            .collect();
        assert_eq!(
            kept,
            [
                ("ec".to_owned(), vec![Algorithm::ES256]),
                ("ed".to_owned(), vec![Algorithm::EdDSA])
            ]
        );
        assert!(matches!(
            parse_jwks(br#"{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}"#, "test"),
            Err(KeysError::NoKeys { .. })
        ));
        assert!(matches!(
            parse_jwks(b"[]", "test"),
            Err(KeysError::Parse { .. })
        ));
    }
}
