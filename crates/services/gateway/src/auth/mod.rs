//! Who is calling: `GATEWAY_AUTH=none` (everyone is anonymous, as the Go gateway) or
//! `jwt` (a bearer token names the user; a request without a valid one is 401).
//!
//! - [`token`]: the `Authorization` header and the token's own header (`alg`, `kid`)
//!   read without trusting anything, so `alg: none` and garbage get a precise 401;
//! - [`keys`]: the verification keys, from a JWKS (a file or an `https://` URL,
//!   refreshed on a timer and, at most once per cooldown, when a token names an
//!   unknown `kid`) or an HS256 secret; each key says which algorithms it verifies,
//!   so an HS256 token against an RSA key is refused (no algorithm confusion);
//! - [`jwt`]: signature, `exp`/`nbf` (with leeway), `iss`, `aud` and the user claim,
//!   giving the caller's user id;
//! - [`user_rate`]: the per-user request limit (`GATEWAY_USER_RATE`), a token bucket
//!   per user id;
//! - this module: [`Auth`], what the routes ask ([`Auth::caller`]), and
//!   [`AuthError`], the 401 and 429 answers (a 401 always carries
//!   `WWW-Authenticate: Bearer error="invalid_token"`; no answer ever echoes the token).
//!
//! Ownership is enforced where the data is: the gateway sends the caller's user id to
//! orders with `GetOrder` ([`OWNER_METADATA`]) and orders answers another user's
//! order exactly as a missing one (NOT_FOUND, same message), so ids cannot be probed.

pub mod jwt;
pub mod keys;
pub mod token;
pub mod user_rate;

use std::{sync::Arc, time::Duration};

use ops_http::{CounterFamily, Metrics};
use tokio_util::sync::CancellationToken;
use tonic::Code;
use warp::{
    http::{HeaderValue, StatusCode, header},
    reply::Response,
};

pub use jwt::{JwtVerifier, TokenRules};
pub use keys::{JwksLocation, KeySource, Keys, KeysError};
pub use user_rate::{UserLimiter, UserRate};

use crate::{config::AuthSettings, errors::ApiError};

/// The request metadata that carries the caller's user id to orders' `GetOrder`:
/// orders answers an order of another user as NOT_FOUND. The same name as orders'
/// `OWNER_METADATA`.
pub const OWNER_METADATA: &str = "owner-user-id";

/// The `WWW-Authenticate` value of every 401 (RFC 6750).
pub const INVALID_TOKEN_CHALLENGE: &str = "Bearer error=\"invalid_token\"";

/// The caller of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// `GATEWAY_AUTH=none`: no identity; the body's `user_id` is taken as given.
    Anonymous,
    /// The user id a verified token names.
    User(i64),
}

/// Why a request is refused before it reaches orders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    /// No usable token: 401. The message says what is wrong, never the token.
    Unauthenticated(String),
    /// The user's request limit is used up: 429 with `Retry-After`.
    RateLimited { retry_after: Duration },
}

impl AuthError {
    pub fn into_response(self) -> Response {
        match self {
            AuthError::Unauthenticated(message) => {
                let mut response =
                    ApiError::with_status(StatusCode::UNAUTHORIZED, Code::Unauthenticated, message)
                        .into_response();
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(INVALID_TOKEN_CHALLENGE),
                );
                response
            }
            AuthError::RateLimited { retry_after } => {
                // Whole seconds, rounded up, at least 1: what Retry-After can say.
                let seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
                let seconds = seconds.max(1);
                let mut response = ApiError::with_status(
                    StatusCode::TOO_MANY_REQUESTS,
                    Code::ResourceExhausted,
                    format!("request limit of this user reached; retry in {seconds} s"),
                )
                .into_response();
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
                response
            }
        }
    }

    fn outcome(&self) -> &'static str {
        match self {
            AuthError::Unauthenticated(_) => "unauthenticated",
            AuthError::RateLimited { .. } => "rate_limited",
        }
    }
}

/// How requests are authenticated and limited; cheap to clone.
#[derive(Clone)]
pub struct Auth {
    mode: Mode,
    /// `gateway_auth_requests_total{outcome}`: bounded labels, never the user.
    outcomes: CounterFamily<1>,
}

#[derive(Clone)]
enum Mode {
    None,
    Jwt {
        verifier: Arc<JwtVerifier>,
        limiter: Option<Arc<UserLimiter>>,
    },
}

impl Auth {
    /// `GATEWAY_AUTH=none`.
    pub fn none(metrics: &Metrics) -> Self {
        Self {
            mode: Mode::None,
            outcomes: Self::register(metrics),
        }
    }

    /// `GATEWAY_AUTH=jwt`, with the per-user limit if one is set.
    pub fn jwt(verifier: JwtVerifier, limiter: Option<UserLimiter>, metrics: &Metrics) -> Self {
        Self {
            mode: Mode::Jwt {
                verifier: Arc::new(verifier),
                limiter: limiter.map(Arc::new),
            },
            outcomes: Self::register(metrics),
        }
    }

    fn register(metrics: &Metrics) -> CounterFamily<1> {
        metrics.counter_family(
            "gateway_auth_requests_total",
            "Requests to /orders by authentication outcome (anonymous, authenticated, unauthenticated, rate_limited).",
            ["outcome"],
        )
    }

    /// Authentication as `settings` say: for `jwt` the keys are loaded first (the
    /// gateway does not start without them) and refreshed every `refresh` until
    /// `shutdown`.
    pub async fn start(
        settings: AuthSettings,
        refresh: Duration,
        cooldown: Duration,
        metrics: &Metrics,
        shutdown: CancellationToken,
    ) -> Result<Self, KeysError> {
        let AuthSettings::Jwt { keys, rules, limit } = settings else {
            return Ok(Self::none(metrics));
        };
        let keys = Arc::new(Keys::load(keys, cooldown).await?);
        Arc::clone(&keys).spawn_refresh(refresh, shutdown);
        let limiter = limit.map(|(rate, burst)| UserLimiter::new(rate, burst));
        Ok(Self::jwt(JwtVerifier::new(keys, rules), limiter, metrics))
    }

    /// Whether tokens are required.
    pub fn requires_tokens(&self) -> bool {
        matches!(self.mode, Mode::Jwt { .. })
    }

    /// The caller of a request whose `Authorization` header values are
    /// `authorization`, counted against its user's limit. In `none` mode the header is
    /// ignored.
    pub async fn caller(&self, authorization: &[HeaderValue]) -> Result<Caller, AuthError> {
        let Mode::Jwt { verifier, limiter } = &self.mode else {
            self.outcomes.with_labels(["anonymous"]).inc();
            return Ok(Caller::Anonymous);
        };
        let result: Result<Caller, AuthError> = async {
            let user = verifier.verify(authorization).await?;
            if let Some(limiter) = limiter {
                limiter.admit(user)?;
            }
            Ok(Caller::User(user))
        }
        .await;
        match &result {
            Ok(_) => self.outcomes.with_labels(["authenticated"]).inc(),
            Err(err) => self.outcomes.with_labels([err.outcome()]).inc(),
        }
        result
    }
}
