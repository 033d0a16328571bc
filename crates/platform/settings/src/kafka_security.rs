//! Kafka TLS and SASL: `KAFKA_SECURITY_PROTOCOL`, `KAFKA_SSL_CA_LOCATION`,
//! `KAFKA_SASL_MECHANISM`, `KAFKA_SASL_USERNAME`, `KAFKA_SASL_PASSWORD`.
//!
//! The five variables are plain fields of [`crate::KafkaConnection`] (which every
//! Kafka-using service loads), turned once, at start-up, into a [`KafkaSecurity`] with
//! [`KafkaSecurity::from_vars`], which refuses:
//! - anything but `plaintext` with `KAFKA_CLIENT=kafka` (the `kafka` crate has no TLS
//!   or SASL here; librdkafka, `KAFKA_CLIENT=rdkafka`, has both);
//! - a SASL protocol without mechanism, user name or password (naming the variable);
//! - SASL variables set with a protocol that does not use them.
//!
//! The password is a [`Secret`]: its `Debug` and `Display` print `***`, so it never
//! shows in errors, logs or a printed configuration.

use std::{fmt, path::PathBuf, str::FromStr};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::KafkaClient;

/// A value that must not be shown: `Debug` and `Display` print `***` (or `""` when
/// empty, so an unset password can be told from a set one).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps `value`.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether no value was given.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("\"\"")
        } else {
            f.write_str("***")
        }
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

// The settings loader layers the struct's defaults through serde: the value must
// round-trip, so it is serialized as itself (only Debug/Display hide it).
impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret)
    }
}

/// `KAFKA_SECURITY_PROTOCOL`: librdkafka's `security.protocol`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum SecurityProtocol {
    /// No TLS, no authentication (the default).
    #[default]
    Plaintext,
    /// TLS, no SASL.
    Ssl,
    /// SASL without TLS (the password crosses the network in clear with PLAIN).
    SaslPlaintext,
    /// SASL over TLS: what managed Kafka services ask for.
    SaslSsl,
}

impl SecurityProtocol {
    /// The value as written in `KAFKA_SECURITY_PROTOCOL`.
    pub fn as_str(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "plaintext",
            SecurityProtocol::Ssl => "ssl",
            SecurityProtocol::SaslPlaintext => "sasl_plaintext",
            SecurityProtocol::SaslSsl => "sasl_ssl",
        }
    }

    /// Whether the connection is TLS.
    pub fn uses_tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    /// Whether the client authenticates with SASL.
    pub fn uses_sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }
}

impl FromStr for SecurityProtocol {
    type Err = String;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        match input.trim().to_ascii_lowercase().as_str() {
            "" | "plaintext" => Ok(SecurityProtocol::Plaintext),
            "ssl" => Ok(SecurityProtocol::Ssl),
            "sasl_plaintext" => Ok(SecurityProtocol::SaslPlaintext),
            "sasl_ssl" => Ok(SecurityProtocol::SaslSsl),
            _ => Err(format!(
                "KAFKA_SECURITY_PROTOCOL={input:?} is not one of plaintext (the default), ssl, \
                 sasl_plaintext, sasl_ssl"
            )),
        }
    }
}

impl fmt::Display for SecurityProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `KAFKA_SASL_MECHANISM`: librdkafka's `sasl.mechanism`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SaslMechanism {
    /// User name and password sent as they are (use it over TLS only).
    Plain,
    /// Salted challenge-response, SHA-256.
    ScramSha256,
    /// Salted challenge-response, SHA-512.
    ScramSha512,
}

impl SaslMechanism {
    /// The value as written in `KAFKA_SASL_MECHANISM` (and `sasl.mechanism`).
    pub fn as_str(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

impl FromStr for SaslMechanism {
    type Err = String;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        match input.trim().to_ascii_uppercase().as_str() {
            "PLAIN" => Ok(SaslMechanism::Plain),
            "SCRAM-SHA-256" => Ok(SaslMechanism::ScramSha256),
            "SCRAM-SHA-512" => Ok(SaslMechanism::ScramSha512),
            _ => Err(format!(
                "KAFKA_SASL_MECHANISM={input:?} is not one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512"
            )),
        }
    }
}

impl fmt::Display for SaslMechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// SASL credentials: mechanism, user name and password (hidden in `Debug`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaslCredentials {
    /// `KAFKA_SASL_MECHANISM`.
    pub mechanism: SaslMechanism,
    /// `KAFKA_SASL_USERNAME`.
    pub username: String,
    /// `KAFKA_SASL_PASSWORD`.
    pub password: Secret,
}

/// How the Kafka client secures its connections: checked once at start-up and
/// carried to every producer, consumer and readiness probe of a service.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KafkaSecurity {
    /// `KAFKA_SECURITY_PROTOCOL`.
    pub protocol: SecurityProtocol,
    /// `KAFKA_SSL_CA_LOCATION`: the CA certificates (PEM) the brokers' certificates are
    /// verified against; `None`: the system's roots. TLS protocols only.
    pub ca_location: Option<PathBuf>,
    /// Set exactly when the protocol is a SASL one.
    pub sasl: Option<SaslCredentials>,
}

/// The five variables as a service reads them (empty = unset).
#[derive(Debug, Clone, Copy)]
pub struct KafkaSecurityVars<'a> {
    /// `KAFKA_SECURITY_PROTOCOL`.
    pub protocol: &'a str,
    /// `KAFKA_SSL_CA_LOCATION`.
    pub ca_location: &'a str,
    /// `KAFKA_SASL_MECHANISM`.
    pub mechanism: &'a str,
    /// `KAFKA_SASL_USERNAME`.
    pub username: &'a str,
    /// `KAFKA_SASL_PASSWORD`.
    pub password: &'a Secret,
}

impl KafkaSecurity {
    /// Plaintext: no TLS, no SASL (the default).
    pub fn plaintext() -> Self {
        Self::default()
    }

    /// Whether this is plain TCP without authentication.
    pub fn is_plaintext(&self) -> bool {
        self.protocol == SecurityProtocol::Plaintext
    }

    /// Checks the variables against each other and the client; the error names the
    /// variables at fault and never contains the password.
    pub fn from_vars(client: KafkaClient, vars: KafkaSecurityVars<'_>) -> Result<Self, String> {
        let protocol: SecurityProtocol = vars.protocol.parse()?;
        if protocol != SecurityProtocol::Plaintext && client == KafkaClient::Kafka {
            return Err(format!(
                "KAFKA_SECURITY_PROTOCOL={protocol} needs KAFKA_CLIENT=rdkafka: the kafka crate \
                 (KAFKA_CLIENT=kafka, the default) supports neither TLS nor SASL here"
            ));
        }
        let ca = vars.ca_location.trim();
        let ca_location = if ca.is_empty() {
            None
        } else if !protocol.uses_tls() {
            return Err(format!(
                "KAFKA_SSL_CA_LOCATION is set but KAFKA_SECURITY_PROTOCOL={protocol} uses no TLS \
                 (use ssl or sasl_ssl)"
            ));
        } else {
            let path = PathBuf::from(ca);
            if !path.is_file() {
                return Err(format!(
                    "KAFKA_SSL_CA_LOCATION={ca:?} is not a readable file (expected the CA \
                     certificates, PEM)"
                ));
            }
            Some(path)
        };
        let any_sasl_var = !vars.mechanism.trim().is_empty()
            || !vars.username.is_empty()
            || !vars.password.is_empty();
        let sasl = if protocol.uses_sasl() {
            let missing: Vec<&str> = [
                ("KAFKA_SASL_MECHANISM", vars.mechanism.trim().is_empty()),
                ("KAFKA_SASL_USERNAME", vars.username.is_empty()),
                ("KAFKA_SASL_PASSWORD", vars.password.is_empty()),
            ]
            .into_iter()
            .filter_map(|(var, empty)| empty.then_some(var))
            .collect();
            if !missing.is_empty() {
                return Err(format!(
                    "KAFKA_SECURITY_PROTOCOL={protocol} needs {} to be set",
                    missing.join(", ")
                ));
            }
            Some(SaslCredentials {
                mechanism: vars.mechanism.parse()?,
                username: vars.username.to_owned(),
                password: vars.password.clone(),
            })
        } else if any_sasl_var {
            return Err(format!(
                "KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME or KAFKA_SASL_PASSWORD is set but \
                 KAFKA_SECURITY_PROTOCOL={protocol} uses no SASL (use sasl_ssl or sasl_plaintext)"
            ));
        } else {
            None
        };
        Ok(Self {
            protocol,
            ca_location,
            sasl,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars<'a>(
        protocol: &'a str,
        mechanism: &'a str,
        username: &'a str,
        password: &'a Secret,
    ) -> KafkaSecurityVars<'a> {
        KafkaSecurityVars {
            protocol,
            ca_location: "",
            mechanism,
            username,
            password,
        }
    }

    #[test]
    fn default_is_plaintext_with_either_client() {
        let none = Secret::default();
        for client in KafkaClient::ALL {
            let s = KafkaSecurity::from_vars(client, vars("", "", "", &none)).unwrap();
            assert!(s.is_plaintext());
            assert_eq!(s, KafkaSecurity::plaintext());
        }
    }

    #[test]
    fn sasl_ssl_with_rdkafka_is_accepted() {
        let pw = Secret::new("hunter2");
        let s = KafkaSecurity::from_vars(
            KafkaClient::Rdkafka,
            vars("SASL_SSL", "scram-sha-512", "alice", &pw),
        )
        .unwrap();
        assert_eq!(s.protocol, SecurityProtocol::SaslSsl);
        let sasl = s.sasl.as_ref().unwrap();
        assert_eq!(sasl.mechanism, SaslMechanism::ScramSha512);
        assert_eq!(sasl.password.expose(), "hunter2");
        let shown = format!("{s:?}");
        assert!(
            !shown.contains("hunter2") && shown.contains("***"),
            "{shown}"
        );
    }

    #[test]
    fn anything_but_plaintext_is_refused_with_the_kafka_crate() {
        let pw = Secret::new("hunter2");
        for protocol in ["ssl", "sasl_plaintext", "sasl_ssl"] {
            let err =
                KafkaSecurity::from_vars(KafkaClient::Kafka, vars(protocol, "PLAIN", "alice", &pw))
                    .unwrap_err();
            assert!(
                err.contains("KAFKA_SECURITY_PROTOCOL") && err.contains("KAFKA_CLIENT"),
                "{err}"
            );
            assert!(!err.contains("hunter2"), "{err}");
        }
    }

    #[test]
    fn missing_sasl_variables_are_named() {
        let none = Secret::default();
        let pw = Secret::new("hunter2");
        let cases = [
            (vars("sasl_ssl", "", "alice", &pw), "KAFKA_SASL_MECHANISM"),
            (vars("sasl_ssl", "PLAIN", "", &pw), "KAFKA_SASL_USERNAME"),
            (
                vars("sasl_plaintext", "PLAIN", "alice", &none),
                "KAFKA_SASL_PASSWORD",
            ),
        ];
        for (v, var) in cases {
            let err = KafkaSecurity::from_vars(KafkaClient::Rdkafka, v).unwrap_err();
            assert!(err.contains(var), "{err}");
            assert!(!err.contains("hunter2"), "{err}");
        }
    }

    #[test]
    fn bad_values_and_stray_variables_are_refused() {
        let none = Secret::default();
        let pw = Secret::new("hunter2");
        let c = KafkaClient::Rdkafka;
        let err = KafkaSecurity::from_vars(c, vars("tls", "", "", &none)).unwrap_err();
        assert!(err.contains("KAFKA_SECURITY_PROTOCOL"), "{err}");
        let err =
            KafkaSecurity::from_vars(c, vars("sasl_ssl", "GSSAPI", "alice", &pw)).unwrap_err();
        assert!(err.contains("KAFKA_SASL_MECHANISM"), "{err}");
        let err = KafkaSecurity::from_vars(c, vars("ssl", "PLAIN", "alice", &pw)).unwrap_err();
        assert!(err.contains("KAFKA_SASL_"), "{err}");
        let mut v = vars("plaintext", "", "", &none);
        v.ca_location = "/etc/hostname";
        let err = KafkaSecurity::from_vars(c, v).unwrap_err();
        assert!(err.contains("KAFKA_SSL_CA_LOCATION"), "{err}");
        let mut v = vars("ssl", "", "", &none);
        v.ca_location = "/nonexistent/ca.pem";
        let err = KafkaSecurity::from_vars(c, v).unwrap_err();
        assert!(err.contains("KAFKA_SSL_CA_LOCATION"), "{err}");
    }

    #[test]
    fn secret_round_trips_but_never_shows() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?} {s}"), "*** ***");
        let json = serde_json::to_string(&s).unwrap();
        let back: Secret = serde_json::from_str(&json).unwrap();
        assert_eq!(back.expose(), "hunter2");
    }
}
