//! `KAFKA_RDKAFKA_PRODUCER_PROPERTIES` and `KAFKA_RDKAFKA_CONSUMER_PROPERTIES`:
//! librdkafka properties, under librdkafka's own names, that a deployment sets on top
//! of the platform's (`linger.ms=5;fetch.wait.max.ms=100`, a managed Kafka's
//! `client.dns.lookup` or `socket.keepalive.enable`, ...).
//!
//! The form is `name=value` pairs separated by `;` (a value may hold commas, as
//! librdkafka's lists do). The properties that carry a guarantee of the platform, or
//! that another variable already sets, are refused with the reason: a deployment can
//! tune the client, not turn off acks=all or commit-after-success. Whether librdkafka
//! knows a name and accepts its value is checked when the client is created, at
//! start-up, and its error names the variable.

use crate::KafkaClient;

/// Refused in both lists: the variable (or guarantee) that owns each.
const OWNED_BY_BOTH: &[(&str, &str)] = &[
    ("bootstrap.servers", "KAFKA_BROKERS sets the brokers"),
    ("metadata.broker.list", "KAFKA_BROKERS sets the brokers"),
    ("client.id", "each service names its own clients"),
    (
        "security.protocol",
        "KAFKA_SECURITY_PROTOCOL sets the protocol",
    ),
    ("ssl.ca.location", "KAFKA_SSL_CA_LOCATION sets the CA"),
    ("sasl.mechanism", "KAFKA_SASL_MECHANISM sets the mechanism"),
    ("sasl.mechanisms", "KAFKA_SASL_MECHANISM sets the mechanism"),
    ("sasl.username", "KAFKA_SASL_USERNAME sets the user"),
    ("sasl.password", "KAFKA_SASL_PASSWORD sets the password"),
    (
        "partitioner",
        "an order's events must land on the partition the kafka client picks too (murmur2 of the key)",
    ),
];

/// Refused in the producer's list.
const OWNED_BY_PRODUCER: &[(&str, &str)] = &[
    (
        "acks",
        "the relay marks an event sent only once every in-sync replica has it (acks=all)",
    ),
    (
        "request.required.acks",
        "the relay marks an event sent only once every in-sync replica has it (acks=all)",
    ),
    (
        "enable.idempotence",
        "retries must not write an event twice or reorder a partition",
    ),
    (
        "transactional.id",
        "the outbox gives exactly-once effects without Kafka transactions",
    ),
    (
        "message.timeout.ms",
        "the relay's wait for acknowledgements is derived from the same timeout",
    ),
    (
        "delivery.timeout.ms",
        "the relay's wait for acknowledgements is derived from the same timeout",
    ),
];

/// Refused in the consumer's list.
const OWNED_BY_CONSUMER: &[(&str, &str)] = &[
    (
        "group.id",
        "each service's group is its own setting (<SERVICE>_KAFKA_GROUP or its default)",
    ),
    (
        "enable.auto.commit",
        "offsets are committed only after the handler's transaction",
    ),
    (
        "auto.commit.enable",
        "offsets are committed only after the handler's transaction",
    ),
    (
        "enable.auto.offset.store",
        "offsets are committed only after the handler's transaction",
    ),
    (
        "auto.offset.reset",
        "a new group starts at the beginning so that nothing is skipped",
    ),
    (
        "statistics.interval.ms",
        "the consumer lag metric is read from librdkafka's statistics",
    ),
];

/// Which client a list is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RdkafkaRole {
    Producer,
    Consumer,
}

impl RdkafkaRole {
    /// The variable the role's list is read from.
    pub fn var(self) -> &'static str {
        match self {
            RdkafkaRole::Producer => "KAFKA_RDKAFKA_PRODUCER_PROPERTIES",
            RdkafkaRole::Consumer => "KAFKA_RDKAFKA_CONSUMER_PROPERTIES",
        }
    }

    fn owned(self) -> &'static [(&'static str, &'static str)] {
        match self {
            RdkafkaRole::Producer => OWNED_BY_PRODUCER,
            RdkafkaRole::Consumer => OWNED_BY_CONSUMER,
        }
    }
}

/// The checked properties of one list, in the order given (a later one wins).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RdkafkaProperties {
    pairs: Vec<(String, String)>,
}

impl RdkafkaProperties {
    /// No property: the platform's settings alone.
    pub fn none() -> Self {
        Self::default()
    }

    /// Parses and checks `value`, the content of `role`'s variable, for `client`.
    /// Errors name the variable and the offending entry.
    pub fn parse(value: &str, role: RdkafkaRole, client: KafkaClient) -> Result<Self, String> {
        let var = role.var();
        let mut pairs = Vec::new();
        for entry in value.split(';').map(str::trim).filter(|e| !e.is_empty()) {
            let Some((name, property_value)) = entry.split_once('=') else {
                return Err(format!(
                    "{var}: {entry:?} is not name=value (pairs are separated by ';')"
                ));
            };
            let (name, property_value) = (name.trim(), property_value.trim());
            if name.is_empty() || name.contains(char::is_whitespace) {
                return Err(format!(
                    "{var}: {entry:?} does not start with a property name"
                ));
            }
            if let Some((_, why)) = OWNED_BY_BOTH
                .iter()
                .chain(role.owned())
                .find(|(owned, _)| owned.eq_ignore_ascii_case(name))
            {
                return Err(format!("{var}: {name} cannot be set here: {why}"));
            }
            pairs.push((name.to_owned(), property_value.to_owned()));
        }
        if !pairs.is_empty() && client != KafkaClient::Rdkafka {
            return Err(format!(
                "{var} is set but KAFKA_CLIENT={client}: librdkafka properties need KAFKA_CLIENT=rdkafka"
            ));
        }
        Ok(Self { pairs })
    }

    /// The properties, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(value: &str, role: RdkafkaRole) -> Result<RdkafkaProperties, String> {
        RdkafkaProperties::parse(value, role, KafkaClient::Rdkafka)
    }

    #[test]
    fn pairs_are_read_in_order_with_commas_inside_values() {
        let p = parse(" linger.ms=5 ; debug=broker,fetch;;", RdkafkaRole::Producer).unwrap();
        let pairs: Vec<_> = p.iter().collect();
        assert_eq!(pairs, [("linger.ms", "5"), ("debug", "broker,fetch")]);
        assert!(parse("", RdkafkaRole::Consumer).unwrap().is_empty());
    }

    #[test]
    fn an_entry_without_a_name_or_an_equals_sign_names_the_variable_and_the_entry() {
        let err = parse("linger.ms", RdkafkaRole::Producer).unwrap_err();
        assert!(
            err.starts_with("KAFKA_RDKAFKA_PRODUCER_PROPERTIES:"),
            "{err}"
        );
        assert!(err.contains("\"linger.ms\" is not name=value"), "{err}");
        let err = parse("=5", RdkafkaRole::Consumer).unwrap_err();
        assert!(
            err.starts_with("KAFKA_RDKAFKA_CONSUMER_PROPERTIES:"),
            "{err}"
        );
        assert!(err.contains("property name"), "{err}");
    }

    #[test]
    fn the_guarantees_cannot_be_turned_off_whatever_the_case() {
        for (value, role, reason) in [
            ("acks=1", RdkafkaRole::Producer, "acks=all"),
            ("ENABLE.IDEMPOTENCE=false", RdkafkaRole::Producer, "twice"),
            (
                "enable.auto.commit=true",
                RdkafkaRole::Consumer,
                "after the handler",
            ),
            (
                "auto.offset.reset=latest",
                RdkafkaRole::Consumer,
                "nothing is skipped",
            ),
            (
                "sasl.password=x",
                RdkafkaRole::Consumer,
                "KAFKA_SASL_PASSWORD",
            ),
            ("partitioner=random", RdkafkaRole::Producer, "murmur2"),
        ] {
            let err = parse(value, role).unwrap_err();
            assert!(
                err.contains("cannot be set here") && err.contains(reason),
                "{value}: {err}"
            );
        }
        // What one role owns, the other may set (a consumer has no acks).
        assert!(parse("fetch.wait.max.ms=100", RdkafkaRole::Consumer).is_ok());
        assert!(parse("linger.ms=0", RdkafkaRole::Producer).is_ok());
    }

    #[test]
    fn properties_with_the_kafka_client_are_refused_naming_both_variables() {
        let err =
            RdkafkaProperties::parse("linger.ms=5", RdkafkaRole::Producer, KafkaClient::Kafka)
                .unwrap_err();
        assert!(err.contains("KAFKA_RDKAFKA_PRODUCER_PROPERTIES"), "{err}");
        assert!(err.contains("KAFKA_CLIENT=rdkafka"), "{err}");
        assert!(RdkafkaProperties::parse(" ", RdkafkaRole::Producer, KafkaClient::Kafka).is_ok());
    }
}
