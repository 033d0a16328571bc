//! `KAFKA_BROKERS`: a comma-separated list of `host:port`.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

use crate::{
    address::string_form_serde,
    list::{self, ListError},
};

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

impl FromStr for BrokerList {
    type Err = ListError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        list::BROKERS
            .parse(input, |host, _| {
                let (name, port) = host.rsplit_once(':').unwrap_or_default();
                if name.is_empty() || port.parse::<u16>().is_err() {
                    return Err(format!("{host:?} is not host:port"));
                }
                Ok(host.to_owned())
            })
            .map(Self)
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
