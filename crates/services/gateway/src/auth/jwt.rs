//! Verifying a bearer token: its key ([`super::keys`]), signature, `exp` and `nbf`
//! (with leeway), `iss` and `aud` (both required), and the user claim, a positive
//! integer (a JSON number or a string of digits, as `sub` usually is).
//!
//! A client sends the same token on every request until it expires, and an ES256
//! signature check costs about as much as the rest of a request: a verified token is
//! remembered ([`VERIFIED_CACHE_SIZE`] of them) with its user and `exp`, and a
//! repeat is answered from memory until its `exp` (plus leeway) passes or the keys
//! are loaded again (a removed key's tokens are then checked afresh).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use jsonwebtoken::{Algorithm, Validation, errors::ErrorKind};
use serde_json::{Map, Value};
use warp::http::HeaderValue;

use super::{
    AuthError,
    keys::{Keys, Lookup},
    token::{self, unauthenticated},
};

/// What a token must say besides being signed by a trusted key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRules {
    /// `GATEWAY_JWT_ISSUER`: the `iss` every token must carry.
    pub issuer: String,
    /// `GATEWAY_JWT_AUDIENCE`: a value `aud` must carry.
    pub audience: String,
    /// `GATEWAY_JWT_LEEWAY`: clock skew allowed on `exp` and `nbf`.
    pub leeway: Duration,
    /// `GATEWAY_JWT_USER_CLAIM`: the claim holding the user id.
    pub user_claim: String,
}

/// Verifies tokens against [`Keys`] and [`TokenRules`].
pub struct JwtVerifier {
    keys: Arc<Keys>,
    rules: TokenRules,
    validation: Validation,
    verified: Mutex<HashMap<String, Verified>>,
}

/// Tokens remembered as verified, at most.
pub const VERIFIED_CACHE_SIZE: usize = 10_000;

/// A token that passed every check.
#[derive(Clone, Copy)]
struct Verified {
    user: i64,
    /// Accepted until this Unix time (`exp` plus leeway).
    until: u64,
    /// The key load it was verified under.
    generation: u64,
}

impl JwtVerifier {
    pub fn new(keys: Arc<Keys>, rules: TokenRules) -> Self {
        // The algorithm is set per token, to the one its key was chosen for.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.set_issuer(&[&rules.issuer]);
        validation.set_audience(&[&rules.audience]);
        validation.validate_nbf = true;
        validation.leeway = rules.leeway.as_secs();
        Self {
            keys,
            rules,
            validation,
            verified: Mutex::new(HashMap::new()),
        }
    }

    /// The keys, for their refresh task.
    pub fn keys(&self) -> &Arc<Keys> {
        &self.keys
    }

    /// The user id of the request's bearer token.
    pub async fn verify(&self, authorization: &[HeaderValue]) -> Result<i64, AuthError> {
        let token = token::bearer(authorization)?;
        let generation = self.keys.generation();
        if let Some(user) = self.remembered(token, generation) {
            return Ok(user);
        }
        let header = token::header(token)?;
        let key = match self.keys.find(&header) {
            Lookup::Found(key) => key,
            Lookup::Refused(reason) => return Err(unauthenticated(reason)),
            Lookup::UnknownKid => {
                let refreshed = self.keys.refresh_for_unknown_kid().await;
                match refreshed.then(|| self.keys.find(&header)) {
                    Some(Lookup::Found(key)) => key,
                    Some(Lookup::Refused(reason)) => return Err(unauthenticated(reason)),
                    Some(Lookup::UnknownKid) | None => {
                        return Err(unauthenticated(
                            "the token's key (kid) is not one of the trusted keys",
                        ));
                    }
                }
            }
        };
        let mut validation = self.validation.clone();
        validation.algorithms = vec![header.alg];
        let claims = jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, &validation)
            .map_err(|err| unauthenticated(describe(err.kind())))?
            .claims;
        let user = user_id(&claims, &self.rules.user_claim)?;
        if let Some(exp) = claims.get("exp").and_then(Value::as_u64) {
            let until = exp.saturating_add(self.rules.leeway.as_secs());
            self.remember(
                token,
                Verified {
                    user,
                    until,
                    generation,
                },
            );
        }
        Ok(user)
    }

    fn remembered(&self, token: &str, generation: u64) -> Option<i64> {
        let verified = *self.lock().get(token)?;
        (verified.generation == generation && unix_now() <= verified.until).then_some(verified.user)
    }

    fn remember(&self, token: &str, verified: Verified) {
        let mut cache = self.lock();
        if cache.len() >= VERIFIED_CACHE_SIZE {
            let now = unix_now();
            cache.retain(|_, old| old.generation == verified.generation && now <= old.until);
            if cache.len() >= VERIFIED_CACHE_SIZE {
                cache.clear();
            }
        }
        cache.insert(token.to_owned(), verified);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Verified>> {
        match self.verified.lock() {
            Ok(cache) => cache,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

/// A failed verification in words; never the token, never key material.
fn describe(kind: &ErrorKind) -> String {
    match kind {
        ErrorKind::InvalidSignature => "bad signature".to_owned(),
        ErrorKind::ExpiredSignature => "token expired (exp)".to_owned(),
        ErrorKind::ImmatureSignature => "token not valid yet (nbf)".to_owned(),
        ErrorKind::InvalidIssuer => "wrong issuer (iss)".to_owned(),
        ErrorKind::InvalidAudience => "wrong audience (aud)".to_owned(),
        ErrorKind::MissingRequiredClaim(claim) => format!("the token has no `{claim}` claim"),
        ErrorKind::InvalidAlgorithm => "the token's algorithm does not fit its key".to_owned(),
        ErrorKind::InvalidToken | ErrorKind::Base64(_) | ErrorKind::Utf8(_) => {
            "malformed token".to_owned()
        }
        ErrorKind::Json(_) => {
            "malformed token: its claims are not a JSON object with valid registered claims"
                .to_owned()
        }
        _ => "invalid token".to_owned(),
    }
}

/// The positive integer in `claim`: a JSON number or a string of digits.
fn user_id(claims: &Map<String, Value>, claim: &str) -> Result<i64, AuthError> {
    let id = match claims.get(claim) {
        None => {
            return Err(unauthenticated(format!(
                "the token has no `{claim}` claim (the user id)"
            )));
        }
        Some(Value::Number(number)) => number.as_i64(),
        Some(Value::String(text)) if text.bytes().all(|b| b.is_ascii_digit()) => text.parse().ok(),
        Some(_) => None,
    };
    match id {
        Some(id) if id > 0 => Ok(id),
        _ => Err(unauthenticated(format!(
            "the token's `{claim}` claim is not a positive integer user id"
        ))),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_user_claim_is_a_positive_integer() {
        let claims = |json: &str| serde_json::from_str::<Map<String, Value>>(json).unwrap();
        assert_eq!(user_id(&claims(r#"{"sub": "42"}"#), "sub"), Ok(42));
        assert_eq!(user_id(&claims(r#"{"uid": 7}"#), "uid"), Ok(7));
        for bad in [
            r#"{"sub": "0"}"#,
            r#"{"sub": -3}"#,
            r#"{"sub": "alice"}"#,
            r#"{"sub": "+4"}"#,
            r#"{"sub": 1.5}"#,
            r#"{"sub": "99999999999999999999"}"#,
            r#"{"sub": null}"#,
        ] {
            let err = user_id(&claims(bad), "sub").unwrap_err();
            assert_eq!(
                err,
                AuthError::Unauthenticated(
                    "the token's `sub` claim is not a positive integer user id".into()
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            user_id(&claims("{}"), "sub"),
            Err(AuthError::Unauthenticated(message)) if message.contains("no `sub` claim")
        ));
    }
}
