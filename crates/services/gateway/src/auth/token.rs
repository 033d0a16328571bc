//! The bearer token of a request and its JOSE header, read before anything is
//! trusted: which `alg` it claims and which key (`kid`) it names. Every refusal says
//! what is wrong in words of its own; none repeats the token.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::Algorithm;
use serde::Deserialize;
use warp::http::HeaderValue;

use super::AuthError;

/// Longest token accepted: far above any real one, small enough that a huge header
/// costs nothing to refuse.
pub const MAX_TOKEN_LEN: usize = 16 * 1024;

/// The token of the request's one `Authorization: Bearer <token>` header.
pub fn bearer(authorization: &[HeaderValue]) -> Result<&str, AuthError> {
    let value = match authorization {
        [] => {
            return Err(unauthenticated(
                "missing bearer token (send Authorization: Bearer <token>)",
            ));
        }
        [value] => value,
        _ => return Err(unauthenticated("more than one Authorization header")),
    };
    let value = value
        .to_str()
        .map_err(|_| unauthenticated("the Authorization header is not visible ASCII"))?;
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(unauthenticated(
            "the Authorization header must use the Bearer scheme (Authorization: Bearer <token>)",
        ));
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(unauthenticated(
            "the Authorization header has no token after Bearer",
        ));
    }
    if token.len() > MAX_TOKEN_LEN {
        return Err(unauthenticated(format!(
            "malformed token: longer than {MAX_TOKEN_LEN} bytes"
        )));
    }
    Ok(token)
}

/// What the token's header claims about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenHeader {
    pub alg: Algorithm,
    pub kid: Option<String>,
}

#[derive(Deserialize)]
struct RawHeader {
    alg: Option<serde_json::Value>,
    kid: Option<serde_json::Value>,
}

/// Reads the JOSE header of a compact JWS (`header.claims.signature`).
pub fn header(token: &str) -> Result<TokenHeader, AuthError> {
    let mut parts = token.split('.');
    let (Some(header), Some(_claims), Some(_signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(unauthenticated(
            "malformed token: a JWT is three base64url parts separated by dots",
        ));
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| unauthenticated("malformed token: its header is not base64url"))?;
    let raw: RawHeader = serde_json::from_slice(&bytes)
        .map_err(|_| unauthenticated("malformed token: its header is not a JSON object"))?;
    let alg = match raw.alg {
        Some(serde_json::Value::String(alg)) => alg,
        Some(_) => return Err(unauthenticated("malformed token: `alg` is not a string")),
        None => return Err(unauthenticated("malformed token: its header has no `alg`")),
    };
    if alg.eq_ignore_ascii_case("none") {
        return Err(unauthenticated(
            "unsigned tokens (alg: none) are not accepted",
        ));
    }
    let alg = alg.parse::<Algorithm>().map_err(|_| {
        unauthenticated(
            "the token's `alg` is not one of HS256, RS256/384/512, PS256/384/512, ES256/384, EdDSA",
        )
    })?;
    let kid = match raw.kid {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(kid)) => Some(kid),
        Some(_) => return Err(unauthenticated("malformed token: `kid` is not a string")),
    };
    Ok(TokenHeader { alg, kid })
}

pub(super) fn unauthenticated(message: impl Into<String>) -> AuthError {
    AuthError::Unauthenticated(message.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(json: &str) -> String {
        format!("{}.e30.c2ln", URL_SAFE_NO_PAD.encode(json))
    }

    fn message(err: AuthError) -> String {
        match err {
            AuthError::Unauthenticated(message) => message,
            other => panic!("expected a 401, got {other:?}"),
        }
    }

    #[test]
    fn the_authorization_header_must_be_one_bearer_token() {
        let value = |text: &str| HeaderValue::from_str(text).unwrap();
        assert_eq!(bearer(&[value("Bearer abc")]), Ok("abc"));
        assert_eq!(bearer(&[value("bearer  abc ")]), Ok("abc"));
        assert!(message(bearer(&[]).unwrap_err()).contains("missing bearer token"));
        assert!(message(bearer(&[value("Basic dXNlcg==")]).unwrap_err()).contains("Bearer scheme"));
        assert!(message(bearer(&[value("Bearer")]).unwrap_err()).contains("no token"));
        assert!(
            message(bearer(&[value("Bearer a"), value("Bearer b")]).unwrap_err())
                .contains("more than one")
        );
        let long = format!("Bearer {}", "a".repeat(MAX_TOKEN_LEN + 1));
        assert!(message(bearer(&[value(&long)]).unwrap_err()).contains("longer than"));
    }

    #[test]
    fn headers_are_read_and_refused_by_what_they_claim() {
        let read = header(&encoded(r#"{"alg":"ES256","kid":"k1"}"#)).unwrap();
        assert_eq!(
            read,
            TokenHeader {
                alg: Algorithm::ES256,
                kid: Some("k1".into())
            }
        );
        for (token, expected) in [
            (encoded(r#"{"alg":"none"}"#), "alg: none"),
            (encoded(r#"{"alg":"NONE"}"#), "alg: none"),
            (encoded(r#"{"alg":"XX9"}"#), "is not one of"),
            (encoded(r#"{"typ":"JWT"}"#), "has no `alg`"),
            (encoded(r#"{"alg":1}"#), "`alg` is not a string"),
            (
                encoded(r#"{"alg":"HS256","kid":3}"#),
                "`kid` is not a string",
            ),
            (encoded("[1]"), "not a JSON object"),
            ("a.b".to_owned(), "three base64url parts"),
            ("a.b.c.d".to_owned(), "three base64url parts"),
            ("!!!.e30.c2ln".to_owned(), "not base64url"),
        ] {
            let err = message(header(&token).unwrap_err());
            assert!(err.contains(expected), "{token}: {err}");
            assert!(
                !err.contains(&token),
                "the message repeats the token: {err}"
            );
        }
    }
}
