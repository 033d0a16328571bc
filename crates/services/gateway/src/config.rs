//! The gateway's settings: defaults < TOML file named by `GATEWAY_CONFIG` < environment.
//!
//! Go's gateway reads only `ORDERS_GRPC_ADDR` (and listens on `:8080`, hard-coded:
//! `GATEWAY_HTTP_ADDR` here). `docs/configuration.md` lists every variable of both
//! platforms.

use std::{collections::BTreeMap, path::PathBuf};

use grpc_tls::{ClientIdentity, ClientTlsFiles, PemFile};
use serde::{Deserialize, Serialize};
use settings::{ConfigError, EnvSpec, GoDuration, GrpcEndpoints, ListenAddr, Notes, Secret};

use crate::auth::{JwksLocation, KeySource, TokenRules, UserRate};

/// Every environment variable the gateway reads.
pub const ENV_VARS: &[&str] = &[
    "GATEWAY_HTTP_ADDR",
    "ORDERS_GRPC_ADDR",
    "GATEWAY_ORDERS_RESOLVE_INTERVAL",
    "GATEWAY_ORDERS_TIMEOUT",
    "GATEWAY_MAX_IN_FLIGHT",
    "GATEWAY_READ_HEADER_TIMEOUT",
    "GATEWAY_IDLE_TIMEOUT",
    "ORDERS_GRPC_CA",
    "GATEWAY_GRPC_TLS_CERT",
    "GATEWAY_GRPC_TLS_KEY",
    "GATEWAY_AUTH",
    "GATEWAY_JWT_JWKS",
    "GATEWAY_JWT_HS256_SECRET",
    "GATEWAY_JWT_ISSUER",
    "GATEWAY_JWT_AUDIENCE",
    "GATEWAY_JWT_USER_CLAIM",
    "GATEWAY_JWT_LEEWAY",
    "GATEWAY_JWT_JWKS_REFRESH",
    "GATEWAY_JWT_JWKS_COOLDOWN",
    "GATEWAY_USER_RATE",
    "GATEWAY_USER_BURST",
];

/// The variable naming an optional TOML file with the same keys in lowercase.
pub const CONFIG_FILE_VAR: &str = "GATEWAY_CONFIG";

/// Go's gateway reads nothing the gateway does not.
pub const GO_ONLY_VARS: &[&str] = &[];

/// Every variable name the gateway knows, for [`settings::load`].
pub const ENV_SPEC: EnvSpec<'static> = EnvSpec {
    service: "gateway",
    config_file_var: CONFIG_FILE_VAR,
    read: ENV_VARS,
    aliases: &[],
    go_only: GO_ONLY_VARS,
    not_read: &[],
};

/// Default of `GATEWAY_MAX_IN_FLIGHT`. orders holds 16 database connections
/// (`ORDERS_DB_POOL_SIZE`); 256 requests in flight is 16 per connection, a queue that
/// a healthy orders (about 1 ms per order) drains in tens of milliseconds, and that a
/// database 100 times slower (125 ms per order) still drains within the default
/// `GATEWAY_ORDERS_TIMEOUT` of 2 s. A request past that would wait only to get 504.
pub const DEFAULT_MAX_IN_FLIGHT: u32 = 256;

/// Where orders is reached when nothing says otherwise.
pub const DEFAULT_ORDERS_GRPC_ADDR: &str = "http://127.0.0.1:50051";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// HTTP listen address for the REST API, `/healthz`, `/readyz`, `/metrics`
    /// (Go forms: `8080`, `:8080`, `host:port`).
    pub gateway_http_addr: ListenAddr,
    /// Where the orders gRPC service is: `host:port` or `http://host:port`; also
    /// `https://host:port` with `orders_grpc_ca` (see [`Config::orders_tls`]). A
    /// comma-separated list names several replicas; calls are spread over those
    /// whose health says SERVING ([`crate::balance`]).
    pub orders_grpc_addr: GrpcEndpoints,
    /// How often the names in `orders_grpc_addr` are resolved into replicas, one per
    /// address (a headless Kubernetes Service); 0 (the default): not resolved by the
    /// gateway, each listed address is one replica (resolved at connect time).
    pub gateway_orders_resolve_interval: GoDuration,
    /// Deadline for each call to orders (and for the readiness check); past it the
    /// client gets 504.
    pub gateway_orders_timeout: GoDuration,
    /// Most `/orders` requests handled at once; past it a request is answered 503
    /// with `Retry-After: 1` at once (`/healthz`, `/readyz`, `/metrics` not counted).
    pub gateway_max_in_flight: u32,
    /// Longest wait for a complete request head, from the accept or, on a kept-alive
    /// connection, from the request's first byte; past it the connection is closed.
    pub gateway_read_header_timeout: GoDuration,
    /// Longest a kept-alive connection may wait idle for its next request.
    pub gateway_idle_timeout: GoDuration,
    /// TLS to orders: the CA certificates (PEM) orders' certificate must chain to;
    /// unset (or empty): plaintext gRPC. See [`Config::orders_tls`].
    pub orders_grpc_ca: Option<PathBuf>,
    /// Mutual TLS: the gateway's client certificate chain (PEM), with
    /// `gateway_grpc_tls_key`; only with `orders_grpc_ca`.
    pub gateway_grpc_tls_cert: Option<PathBuf>,
    /// The private key (PEM: PKCS#8, RSA or SEC1) of `gateway_grpc_tls_cert`.
    pub gateway_grpc_tls_key: Option<PathBuf>,
    /// `none` (anyone may call, as the Go gateway) or `jwt` (a bearer token names the
    /// user; see docs/security.md).
    pub gateway_auth: String,
    /// With `jwt`: the verification keys, a JWKS file or `https://` URL.
    pub gateway_jwt_jwks: String,
    /// With `jwt`, instead of a JWKS: the HS256 secret (at least 32 bytes; never
    /// logged).
    pub gateway_jwt_hs256_secret: Secret,
    /// With `jwt`: the `iss` every token must carry.
    pub gateway_jwt_issuer: String,
    /// With `jwt`: a value the token's `aud` must carry.
    pub gateway_jwt_audience: String,
    /// With `jwt`: the claim holding the user id (a positive integer).
    pub gateway_jwt_user_claim: String,
    /// Clock skew allowed on `exp` and `nbf` (at most 5m).
    pub gateway_jwt_leeway: GoDuration,
    /// How often the JWKS is read again.
    pub gateway_jwt_jwks_refresh: GoDuration,
    /// Least time between two JWKS reads caused by tokens naming an unknown `kid`.
    pub gateway_jwt_jwks_cooldown: GoDuration,
    /// With `jwt`: requests each user may make (`20/s`, `600/m`, `1000/h`); empty:
    /// no limit.
    pub gateway_user_rate: UserRate,
    /// Requests a user may make at once before the rate applies; 0: one second's
    /// worth of the rate.
    pub gateway_user_burst: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            gateway_http_addr: ListenAddr::all_interfaces(8080),
            orders_grpc_addr: default_orders_endpoint(),
            gateway_orders_resolve_interval: GoDuration::from_secs(0),
            gateway_orders_timeout: GoDuration::from_secs(2),
            gateway_max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            gateway_read_header_timeout: GoDuration(ops_http::DEFAULT_READ_HEADER_TIMEOUT),
            gateway_idle_timeout: GoDuration(ops_http::DEFAULT_IDLE_TIMEOUT),
            orders_grpc_ca: None,
            gateway_grpc_tls_cert: None,
            gateway_grpc_tls_key: None,
            gateway_auth: "none".to_owned(),
            gateway_jwt_jwks: String::new(),
            gateway_jwt_hs256_secret: Secret::default(),
            gateway_jwt_issuer: String::new(),
            gateway_jwt_audience: String::new(),
            gateway_jwt_user_claim: "sub".to_owned(),
            gateway_jwt_leeway: GoDuration::from_secs(30),
            gateway_jwt_jwks_refresh: GoDuration::from_secs(300),
            gateway_jwt_jwks_cooldown: GoDuration::from_secs(60),
            gateway_user_rate: UserRate::default(),
            gateway_user_burst: 0,
        }
    }
}

#[allow(clippy::expect_used)] // a constant, covered by a unit test
fn default_orders_endpoint() -> GrpcEndpoints {
    DEFAULT_ORDERS_GRPC_ADDR
        .parse()
        .expect("DEFAULT_ORDERS_GRPC_ADDR is a valid endpoint")
}

/// Longest `GATEWAY_JWT_LEEWAY`: more would keep expired tokens alive.
pub const MAX_JWT_LEEWAY: std::time::Duration = std::time::Duration::from_secs(300);

/// Shortest HS256 secret: as long as the hash (RFC 7518, section 3.2).
pub const MIN_HS256_SECRET_LEN: usize = 32;

/// How requests are authenticated, as configured.
#[derive(Debug, Clone)]
pub enum AuthSettings {
    None,
    Jwt {
        keys: KeySource,
        rules: TokenRules,
        /// Per-user limit and burst; `None`: no limit.
        limit: Option<(UserRate, u32)>,
    },
}

impl Config {
    /// `GATEWAY_AUTH` and what it needs, checked.
    pub fn auth(&self) -> Result<AuthSettings, ConfigError> {
        let fail = |message: String| Err(ConfigError::Other(message));
        match self.gateway_auth.trim() {
            "none" | "" => return Ok(AuthSettings::None),
            "jwt" => {}
            other => {
                return fail(format!("GATEWAY_AUTH = {other:?}: expected none or jwt"));
            }
        }
        let keys = match (
            self.gateway_jwt_jwks.trim(),
            self.gateway_jwt_hs256_secret.is_empty(),
        ) {
            ("", true) => {
                return fail(
                    "GATEWAY_AUTH=jwt needs GATEWAY_JWT_JWKS (a JWKS file or https:// URL) or GATEWAY_JWT_HS256_SECRET".to_owned(),
                );
            }
            (jwks, true) => KeySource::Jwks(JwksLocation::parse(jwks).map_err(ConfigError::Other)?),
            ("", false) => {
                if self.gateway_jwt_hs256_secret.expose().len() < MIN_HS256_SECRET_LEN {
                    return fail(format!(
                        "GATEWAY_JWT_HS256_SECRET must be at least {MIN_HS256_SECRET_LEN} bytes"
                    ));
                }
                KeySource::Hs256(self.gateway_jwt_hs256_secret.clone())
            }
            (_, false) => {
                return fail(
                    "set either GATEWAY_JWT_JWKS or GATEWAY_JWT_HS256_SECRET, not both".to_owned(),
                );
            }
        };
        for (var, value) in [
            ("GATEWAY_JWT_ISSUER", &self.gateway_jwt_issuer),
            ("GATEWAY_JWT_AUDIENCE", &self.gateway_jwt_audience),
            ("GATEWAY_JWT_USER_CLAIM", &self.gateway_jwt_user_claim),
        ] {
            if value.trim().is_empty() {
                return fail(format!("GATEWAY_AUTH=jwt needs {var}"));
            }
        }
        if self.gateway_jwt_leeway.get() > MAX_JWT_LEEWAY {
            return fail(format!(
                "GATEWAY_JWT_LEEWAY must be at most {}s",
                MAX_JWT_LEEWAY.as_secs()
            ));
        }
        for (var, value) in [
            ("GATEWAY_JWT_JWKS_REFRESH", self.gateway_jwt_jwks_refresh),
            ("GATEWAY_JWT_JWKS_COOLDOWN", self.gateway_jwt_jwks_cooldown),
        ] {
            if value.get().is_zero() {
                return fail(format!("{var} must be greater than 0 (e.g. 1m)"));
            }
        }
        let rate = self.gateway_user_rate;
        let limit = (!rate.is_unlimited()).then(|| {
            let burst = match self.gateway_user_burst {
                0 => rate.default_burst(),
                burst => burst,
            };
            (rate, burst)
        });
        Ok(AuthSettings::Jwt {
            keys,
            rules: TokenRules {
                issuer: self.gateway_jwt_issuer.trim().to_owned(),
                audience: self.gateway_jwt_audience.trim().to_owned(),
                leeway: self.gateway_jwt_leeway.get(),
                user_claim: self.gateway_jwt_user_claim.trim().to_owned(),
            },
            limit,
        })
    }

    /// The HTTP server's connection timeouts.
    pub fn http_timeouts(&self) -> ops_http::HttpTimeouts {
        ops_http::HttpTimeouts {
            read_header: self.gateway_read_header_timeout.get(),
            idle: self.gateway_idle_timeout.get(),
        }
    }

    /// Reads the process environment (and the TOML file it may name).
    pub fn from_env() -> Result<Self, ConfigError> {
        let config: Config = settings::load(&ENV_SPEC)?;
        config.check()
    }

    /// As [`Config::from_env`] from the variables `env`, returning what the gateway
    /// would log instead of logging it.
    pub fn from_vars(env: &BTreeMap<String, String>) -> Result<(Self, Notes), ConfigError> {
        let (config, notes): (Config, _) = settings::load_from(env, &ENV_SPEC)?;
        Ok((config.check()?, notes))
    }

    fn check(self) -> Result<Self, ConfigError> {
        if self.gateway_orders_timeout.get().is_zero() {
            return Err(ConfigError::Other(
                "GATEWAY_ORDERS_TIMEOUT must be greater than 0 (e.g. 2s)".into(),
            ));
        }
        if self.gateway_max_in_flight == 0 {
            return Err(ConfigError::Other(
                "GATEWAY_MAX_IN_FLIGHT must be at least 1 (e.g. 256)".into(),
            ));
        }
        for (var, value) in [
            (
                "GATEWAY_READ_HEADER_TIMEOUT",
                self.gateway_read_header_timeout,
            ),
            ("GATEWAY_IDLE_TIMEOUT", self.gateway_idle_timeout),
        ] {
            if value.get().is_zero() {
                return Err(ConfigError::Other(format!(
                    "{var} must be greater than 0 (e.g. 10s)"
                )));
            }
        }
        self.auth()?;
        self.orders_tls()?;
        Ok(self)
    }

    /// The TLS files for the calls to orders; `None`: plaintext gRPC.
    ///
    /// `ORDERS_GRPC_CA` set means TLS, whatever the scheme of `ORDERS_GRPC_ADDR`
    /// (`host:port`, `http://` or `https://`), for every listed replica: orders'
    /// certificate must chain to that CA and name the address's host. `GATEWAY_GRPC_TLS_CERT` and
    /// `GATEWAY_GRPC_TLS_KEY` add the gateway's client certificate (mutual TLS). An
    /// empty value counts as unset. Refused, as each would not do what it says:
    /// `https://` without the CA, one of the certificate and key without the other,
    /// and a client certificate without the CA.
    pub fn orders_tls(&self) -> Result<Option<ClientTlsFiles>, ConfigError> {
        let set = |path: &Option<PathBuf>| path.clone().filter(|path| !path.as_os_str().is_empty());
        let ca = set(&self.orders_grpc_ca);
        let identity = match (
            set(&self.gateway_grpc_tls_cert),
            set(&self.gateway_grpc_tls_key),
        ) {
            (Some(cert), Some(key)) => Some(ClientIdentity {
                cert: PemFile::new("GATEWAY_GRPC_TLS_CERT", cert),
                key: PemFile::new("GATEWAY_GRPC_TLS_KEY", key),
            }),
            (None, None) => None,
            _ => {
                return Err(ConfigError::Other(
                    "GATEWAY_GRPC_TLS_CERT and GATEWAY_GRPC_TLS_KEY go together: set both (the \
                     gateway's client certificate and its private key) or neither"
                        .into(),
                ));
            }
        };
        match (ca, identity) {
            (Some(ca), identity) => Ok(Some(ClientTlsFiles {
                ca: PemFile::new("ORDERS_GRPC_CA", ca),
                identity,
            })),
            (None, Some(_)) => Err(ConfigError::Other(
                "GATEWAY_GRPC_TLS_CERT and GATEWAY_GRPC_TLS_KEY need ORDERS_GRPC_CA: the \
                 client certificate is presented over TLS only (set ORDERS_GRPC_CA to the CA \
                 that signed orders' certificate)"
                    .into(),
            )),
            (None, None) => match self
                .orders_grpc_addr
                .endpoints()
                .iter()
                .find(|endpoint| endpoint.scheme() == "https")
            {
                Some(https) => Err(ConfigError::Other(format!(
                    "ORDERS_GRPC_ADDR = {:?}: https is not supported without ORDERS_GRPC_CA (set \
                     it to the CA that signed orders' certificate, or use host:port or \
                     http://host:port for plaintext gRPC)",
                    https.as_uri()
                ))),
                None => Ok(None),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ca_turns_tls_to_orders_on_and_a_client_certificate_needs_it() {
        let load = |pairs: &[(&str, &str)]| {
            Config::from_vars(&settings::env_from_pairs(pairs)).map(|(config, _)| config)
        };
        assert!(load(&[]).unwrap().orders_tls().unwrap().is_none());
        let empty = [("ORDERS_GRPC_CA", ""), ("GATEWAY_GRPC_TLS_CERT", "")];
        assert!(load(&empty).unwrap().orders_tls().unwrap().is_none());

        // Any address form with the CA: TLS.
        for addr in [
            "orders:50051",
            "http://orders:50051",
            "https://orders:50051",
        ] {
            let config = load(&[
                ("ORDERS_GRPC_ADDR", addr),
                ("ORDERS_GRPC_CA", "/tls/ca.pem"),
            ]);
            let files = config.unwrap().orders_tls().unwrap().unwrap();
            assert_eq!(files.ca, PemFile::new("ORDERS_GRPC_CA", "/tls/ca.pem"));
            assert!(files.identity.is_none(), "{addr}");
        }
        let mutual = load(&[
            ("ORDERS_GRPC_CA", "/tls/ca.pem"),
            ("GATEWAY_GRPC_TLS_CERT", "/tls/gateway.pem"),
            ("GATEWAY_GRPC_TLS_KEY", "/tls/gateway.key"),
        ]);
        let identity = mutual.unwrap().orders_tls().unwrap().unwrap().identity;
        assert_eq!(
            identity.map(|id| (id.cert.path, id.key.path)),
            Some(("/tls/gateway.pem".into(), "/tls/gateway.key".into()))
        );

        #[rustfmt::skip]
        let refused: &[(&[(&str, &str)], &str)] = &[
            (&[("ORDERS_GRPC_ADDR", "https://orders:50051")], "https is not supported without ORDERS_GRPC_CA"),
            (&[("ORDERS_GRPC_CA", "/ca.pem"), ("GATEWAY_GRPC_TLS_CERT", "/c.pem")], "GATEWAY_GRPC_TLS_KEY go together"),
            (&[("ORDERS_GRPC_CA", "/ca.pem"), ("GATEWAY_GRPC_TLS_KEY", "/k.pem")], "GATEWAY_GRPC_TLS_KEY go together"),
            (&[("GATEWAY_GRPC_TLS_CERT", "/c.pem"), ("GATEWAY_GRPC_TLS_KEY", "/k.pem")], "need ORDERS_GRPC_CA"),
        ];
        for (pairs, expected) in refused {
            let err = load(pairs)
                .err()
                .map(|err| err.to_string())
                .unwrap_or_default();
            assert!(err.contains(expected), "{pairs:?}: {err:?}");
        }
    }

    #[test]
    fn defaults() {
        let config = Config::default();
        assert_eq!(config.gateway_http_addr, ListenAddr::all_interfaces(8080));
        assert_eq!(config.orders_grpc_addr.as_uri(), "http://127.0.0.1:50051");
        assert_eq!(config.gateway_orders_timeout, GoDuration::from_secs(2));
        assert_eq!(config.gateway_max_in_flight, 256);
        assert_eq!(
            config.gateway_read_header_timeout,
            GoDuration::from_secs(10)
        );
        assert_eq!(config.gateway_idle_timeout, GoDuration::from_secs(60));
        assert!(config.check().is_ok());
    }

    #[test]
    fn the_go_gateways_environment_finds_orders() {
        // What Go's docker-compose.yaml gives its gateway.
        let (config, notes) = Config::from_vars(&testkit::go_env("gateway")).unwrap();
        assert_eq!(
            config.orders_grpc_addr.as_uri(),
            "http://orders-service:50051"
        );
        assert_eq!(config.gateway_http_addr, ListenAddr::all_interfaces(8080));
        assert!(notes.go_only.is_empty() && notes.not_read.is_empty());
    }

    #[test]
    fn orders_grpc_addr_takes_a_list_and_https_anywhere_in_it_needs_the_ca() {
        let load = |pairs: &[(&str, &str)]| {
            Config::from_vars(&settings::env_from_pairs(pairs)).map(|(config, _)| config)
        };
        let config = load(&[
            ("ORDERS_GRPC_ADDR", "orders-a:50051, http://orders-b:50051"),
            ("GATEWAY_ORDERS_RESOLVE_INTERVAL", "10s"),
        ])
        .unwrap();
        let uris: Vec<&str> = config
            .orders_grpc_addr
            .endpoints()
            .iter()
            .map(|endpoint| endpoint.as_uri())
            .collect();
        assert_eq!(uris, ["http://orders-a:50051", "http://orders-b:50051"]);
        assert_eq!(
            config.gateway_orders_resolve_interval,
            GoDuration::from_secs(10)
        );
        // Not resolved unless asked.
        assert!(
            Config::default()
                .gateway_orders_resolve_interval
                .get()
                .is_zero()
        );
        let err = load(&[("ORDERS_GRPC_ADDR", "orders-a:50051,https://orders-b:50051")])
            .err()
            .map(|err| err.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("\"https://orders-b:50051\": https is not supported"),
            "{err}"
        );
    }

    #[test]
    fn a_zero_timeout_is_refused() {
        let config = Config {
            gateway_orders_timeout: GoDuration::from_secs(0),
            ..Config::default()
        };
        let err = config.check().err().map(|err| err.to_string());
        assert!(
            err.as_deref()
                .is_some_and(|err| err.contains("GATEWAY_ORDERS_TIMEOUT")),
            "{err:?}"
        );
    }

    #[test]
    fn jwt_settings_are_checked_naming_the_variable() {
        let jwt = |changes: &[(&str, &str)]| {
            let mut vars = vec![
                ("GATEWAY_AUTH", "jwt"),
                (
                    "GATEWAY_JWT_HS256_SECRET",
                    "0123456789abcdef0123456789abcdef",
                ),
                ("GATEWAY_JWT_ISSUER", "https://issuer.test"),
                ("GATEWAY_JWT_AUDIENCE", "orders-api"),
            ];
            vars.retain(|(name, _)| !changes.iter().any(|(changed, _)| changed == name));
            vars.extend(changes.iter().filter(|(_, value)| !value.is_empty()));
            Config::from_vars(&settings::env_from_pairs(&vars)).map(|(config, _)| config)
        };
        assert!(matches!(
            jwt(&[]).unwrap().auth(),
            Ok(AuthSettings::Jwt { limit: None, .. })
        ));
        for (changes, expected) in [
            (
                &[("GATEWAY_AUTH", "oauth")][..],
                "GATEWAY_AUTH = \"oauth\": expected none or jwt",
            ),
            (
                &[("GATEWAY_JWT_HS256_SECRET", "")],
                "needs GATEWAY_JWT_JWKS",
            ),
            (
                &[("GATEWAY_JWT_HS256_SECRET", "short")],
                "at least 32 bytes",
            ),
            (&[("GATEWAY_JWT_JWKS", "/etc/jwks.json")], "not both"),
            (&[("GATEWAY_JWT_ISSUER", "")], "needs GATEWAY_JWT_ISSUER"),
            (
                &[("GATEWAY_JWT_AUDIENCE", "")],
                "needs GATEWAY_JWT_AUDIENCE",
            ),
            (
                &[("GATEWAY_JWT_LEEWAY", "10m")],
                "GATEWAY_JWT_LEEWAY must be at most 300s",
            ),
            (
                &[("GATEWAY_JWT_JWKS_COOLDOWN", "0")],
                "GATEWAY_JWT_JWKS_COOLDOWN must be greater than 0",
            ),
            (&[("GATEWAY_USER_RATE", "20")], "GATEWAY_USER_RATE"),
        ] {
            let err = jwt(changes)
                .err()
                .map(|err| err.to_string())
                .unwrap_or_default();
            assert!(err.contains(expected), "{changes:?}: {err:?}");
        }
        let limited = jwt(&[("GATEWAY_USER_RATE", "20/s")])
            .unwrap()
            .auth()
            .unwrap();
        assert!(matches!(
            limited,
            AuthSettings::Jwt {
                limit: Some((_, 20)),
                ..
            }
        ));
        // The secret is never shown.
        let shown = format!("{:?}", jwt(&[]).unwrap());
        assert!(!shown.contains("0123456789abcdef"), "{shown}");
    }
}
