//! `KAFKA_CLIENT`: which Kafka client library a service's producer and consumer use.
//!
//! - `kafka` (the default): the synchronous `kafka` crate. Pre-0.11 protocol only:
//!   Apache Kafka 3.x (and `devbroker`); no consumer-group membership (a worker scales
//!   out by its partition list: `PAYMENTS_KAFKA_PARTITIONS`, ...).
//! - `rdkafka`: librdkafka through the `rdkafka` crate. Apache Kafka 3.x and 4.x;
//!   workers join their consumer group and the broker assigns partitions, so a
//!   partition list is refused with it.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

use crate::PartitionList;

/// The Kafka client library behind the `bus` producer and consumer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum KafkaClient {
    /// The synchronous `kafka` crate (the default): Apache Kafka 3.x and `devbroker`.
    #[default]
    Kafka,
    /// librdkafka (the `rdkafka` crate): Apache Kafka 3.x and 4.x, group membership.
    Rdkafka,
}

impl KafkaClient {
    /// Every accepted value, in `KAFKA_CLIENT`'s spelling.
    pub const ALL: [KafkaClient; 2] = [KafkaClient::Kafka, KafkaClient::Rdkafka];

    /// Why a partition list is refused with `rdkafka` (the bus's wording, which does
    /// not know the service; [`KafkaClient::check_partitions`] names the variables).
    pub const PARTITIONS_WITH_RDKAFKA: &'static str = "a partition list \
        (ORDERS_KAFKA_PARTITIONS, PAYMENTS_KAFKA_PARTITIONS, NOTIFICATIONS_KAFKA_PARTITIONS) \
        cannot be used with KAFKA_CLIENT=rdkafka: the consumer group assigns the partitions; \
        leave it empty and start another instance to scale out";

    /// Refuses a partition list (`partitions_var`) with `rdkafka`, where the consumer
    /// group (`group_var`) assigns partitions.
    pub fn check_partitions(
        self,
        partitions_var: &str,
        group_var: &str,
        partitions: &PartitionList,
    ) -> Result<(), String> {
        if self == KafkaClient::Rdkafka && partitions.selected().is_some() {
            return Err(format!(
                "{partitions_var} cannot be used with KAFKA_CLIENT=rdkafka: the consumer \
                 group ({group_var}) assigns the partitions; leave {partitions_var} empty \
                 and start another instance to scale out"
            ));
        }
        Ok(())
    }

    /// The value as written in `KAFKA_CLIENT`.
    pub fn as_str(self) -> &'static str {
        match self {
            KafkaClient::Kafka => "kafka",
            KafkaClient::Rdkafka => "rdkafka",
        }
    }
}

/// A `KAFKA_CLIENT` value that names no known client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown Kafka client {input:?}: KAFKA_CLIENT accepts kafka (the default: the kafka crate, \
     Apache Kafka 3.x) or rdkafka (librdkafka: Apache Kafka 3.x and 4.x, consumer groups)"
)]
pub struct KafkaClientError {
    input: String,
}

impl FromStr for KafkaClient {
    type Err = KafkaClientError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        match input.trim() {
            "" | "kafka" => Ok(KafkaClient::Kafka),
            "rdkafka" => Ok(KafkaClient::Rdkafka),
            _ => Err(KafkaClientError {
                input: input.to_owned(),
            }),
        }
    }
}

impl fmt::Display for KafkaClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for KafkaClient {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for KafkaClient {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_values_round_trip() {
        for client in KafkaClient::ALL {
            assert_eq!(client.as_str().parse::<KafkaClient>().unwrap(), client);
        }
        assert_eq!("".parse::<KafkaClient>().unwrap(), KafkaClient::Kafka);
        assert_eq!(KafkaClient::default(), KafkaClient::Kafka);
    }

    #[test]
    fn partitions_are_refused_with_rdkafka_only() {
        let some: PartitionList = "0,1".parse().unwrap();
        let all = PartitionList::default();
        let vars = ("PAYMENTS_KAFKA_PARTITIONS", "KAFKA_CONSUMER_GROUP");
        KafkaClient::Kafka
            .check_partitions(vars.0, vars.1, &some)
            .unwrap();
        KafkaClient::Rdkafka
            .check_partitions(vars.0, vars.1, &all)
            .unwrap();
        let err = KafkaClient::Rdkafka
            .check_partitions(vars.0, vars.1, &some)
            .unwrap_err();
        assert!(
            err.contains(vars.0) && err.contains(vars.1) && err.contains("rdkafka"),
            "{err}"
        );
    }

    #[test]
    fn unknown_value_names_the_variable_and_the_choices() {
        let err = "librdkafka".parse::<KafkaClient>().unwrap_err().to_string();
        assert!(err.contains("KAFKA_CLIENT"), "{err}");
        assert!(err.contains("\"librdkafka\""), "{err}");
        assert!(err.contains("kafka") && err.contains("rdkafka"), "{err}");
    }
}
