//! The gateway's settings: defaults < TOML file named by `GATEWAY_CONFIG` < environment.

use serde::{Deserialize, Serialize};
use settings::{ConfigError, GoDuration, GrpcEndpoint, ListenAddr};

/// Every environment variable the gateway reads.
pub const ENV_VARS: &[&str] = &[
    "GATEWAY_HTTP_ADDR",
    "ORDERS_GRPC_ADDR",
    "GATEWAY_ORDERS_TIMEOUT",
];

/// The variable naming an optional TOML file with the same keys in lowercase.
pub const CONFIG_FILE_VAR: &str = "GATEWAY_CONFIG";

/// Where orders is reached when nothing says otherwise.
pub const DEFAULT_ORDERS_GRPC_ADDR: &str = "http://127.0.0.1:50051";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// HTTP listen address for the REST API, `/healthz`, `/readyz`, `/metrics`
    /// (Go forms: `8080`, `:8080`, `host:port`).
    pub gateway_http_addr: ListenAddr,
    /// Where the orders gRPC service is: `host:port` or `http://host:port`.
    pub orders_grpc_addr: GrpcEndpoint,
    /// Deadline for each call to orders (and for the readiness check); past it the
    /// client gets 504.
    pub gateway_orders_timeout: GoDuration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            gateway_http_addr: ListenAddr::all_interfaces(8080),
            orders_grpc_addr: default_orders_endpoint(),
            gateway_orders_timeout: GoDuration::from_secs(2),
        }
    }
}

#[allow(clippy::expect_used)] // a constant, covered by a unit test
fn default_orders_endpoint() -> GrpcEndpoint {
    DEFAULT_ORDERS_GRPC_ADDR
        .parse()
        .expect("DEFAULT_ORDERS_GRPC_ADDR is a valid endpoint")
}

impl Config {
    /// Reads the process environment (and the TOML file it may name).
    pub fn from_env() -> Result<Self, ConfigError> {
        let config: Config = settings::load(CONFIG_FILE_VAR, ENV_VARS)?;
        config.check()
    }

    fn check(self) -> Result<Self, ConfigError> {
        if self.gateway_orders_timeout.get().is_zero() {
            return Err(ConfigError::Other(
                "GATEWAY_ORDERS_TIMEOUT must be greater than 0 (e.g. 2s)".into(),
            ));
        }
        if self.orders_grpc_addr.as_uri().starts_with("https://") {
            return Err(ConfigError::Other(format!(
                "ORDERS_GRPC_ADDR = {:?}: https is not supported (plaintext gRPC only; use host:port or http://host:port)",
                self.orders_grpc_addr.as_uri()
            )));
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let config = Config::default();
        assert_eq!(config.gateway_http_addr, ListenAddr::all_interfaces(8080));
        assert_eq!(config.orders_grpc_addr.as_uri(), "http://127.0.0.1:50051");
        assert_eq!(config.gateway_orders_timeout, GoDuration::from_secs(2));
        assert!(config.check().is_ok());
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
}
