//! `KAFKA_BROKERS`: a comma-separated list of `host:port`.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

use crate::address::string_form_serde;

/// Bootstrap brokers, e.g. `kafka1:9092,kafka2:9092`. Never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerList(Vec<String>);

impl BrokerList {
    /// One broker at `host:port`.
    pub fn single(host: &str, port: u16) -> Self {
        Self(vec![format!("{host}:{port}")])
    }

    pub fn hosts(&self) -> &[String] {
        &self.0
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid broker list {input:?}: {reason} (expected host:port[,host:port...])")]
pub struct BrokerListError {
    input: String,
    reason: String,
}

impl FromStr for BrokerList {
    type Err = BrokerListError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let fail = |reason: String| BrokerListError {
            input: input.to_owned(),
            reason,
        };
        let hosts: Vec<String> = input
            .split(',')
            .map(str::trim)
            .filter(|host| !host.is_empty())
            .map(str::to_owned)
            .collect();
        if hosts.is_empty() {
            return Err(fail("empty".to_owned()));
        }
        for host in &hosts {
            let port_ok = host
                .rsplit_once(':')
                .is_some_and(|(name, port)| !name.is_empty() && port.parse::<u16>().is_ok());
            if !port_ok {
                return Err(fail(format!("{host:?} is not host:port")));
            }
        }
        Ok(Self(hosts))
    }
}

impl fmt::Display for BrokerList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join(","))
    }
}

string_form_serde!(BrokerList, "a broker list such as kafka:9092,kafka2:9092");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_comma_separated_hosts() {
        let list: BrokerList = " a:9092, b:9093 ".parse().unwrap();
        assert_eq!(list.hosts(), ["a:9092", "b:9093"]);
        assert!("".parse::<BrokerList>().is_err());
        assert!(
            "kafka"
                .parse::<BrokerList>()
                .unwrap_err()
                .to_string()
                .contains("host:port")
        );
    }
}
