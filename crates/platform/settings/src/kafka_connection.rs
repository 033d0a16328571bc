//! The Kafka connection every Kafka-using service shares: where the brokers are
//! (`KAFKA_BROKERS`), which client library talks to them (`KAFKA_CLIENT`) and how it
//! authenticates (`KAFKA_SECURITY_PROTOCOL`, `KAFKA_SSL_CA_LOCATION`,
//! `KAFKA_SASL_*`), and librdkafka properties set on top of the platform's
//! (`KAFKA_RDKAFKA_PRODUCER_PROPERTIES`, `KAFKA_RDKAFKA_CONSUMER_PROPERTIES`).
//!
//! A service keeps its own settings struct for everything else and loads this section
//! beside it with [`crate::load_with_kafka`]: the same defaults < file < environment
//! layering, the same variable names, written once here instead of in each service.

use serde::{Deserialize, Serialize};

use crate::{
    BrokerList, ConfigError, KafkaClient, KafkaSecurity, KafkaSecurityVars, PartitionList,
    RdkafkaProperties, RdkafkaRole, Secret,
};

/// `KAFKA_BROKERS`, `KAFKA_CLIENT` and the Kafka TLS/SASL variables.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct KafkaConnection {
    /// Kafka bootstrap brokers.
    #[serde(rename = "kafka_brokers")]
    pub brokers: BrokerList,
    /// Kafka client library: `kafka` (default; Apache Kafka 3.x) or `rdkafka`
    /// (Apache Kafka 3.x and 4.x, consumer-group membership).
    #[serde(rename = "kafka_client")]
    pub client: KafkaClient,
    /// `KAFKA_SECURITY_PROTOCOL`: `plaintext` (default), `ssl`, `sasl_plaintext`,
    /// `sasl_ssl` (anything but plaintext needs `KAFKA_CLIENT=rdkafka`).
    #[serde(rename = "kafka_security_protocol")]
    pub security_protocol: String,
    /// `KAFKA_SSL_CA_LOCATION`: CA certificates (PEM) the brokers' certificates are
    /// checked against; empty: the system's roots.
    #[serde(rename = "kafka_ssl_ca_location")]
    pub ssl_ca_location: String,
    /// `KAFKA_SASL_MECHANISM`: `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`.
    #[serde(rename = "kafka_sasl_mechanism")]
    pub sasl_mechanism: String,
    /// `KAFKA_SASL_USERNAME`.
    #[serde(rename = "kafka_sasl_username")]
    pub sasl_username: String,
    /// `KAFKA_SASL_PASSWORD` (never shown: `Debug` prints `***`).
    #[serde(rename = "kafka_sasl_password")]
    pub sasl_password: Secret,
    /// `KAFKA_RDKAFKA_PRODUCER_PROPERTIES`: `name=value;...` librdkafka properties
    /// for every producer (rdkafka only).
    #[serde(rename = "kafka_rdkafka_producer_properties")]
    pub rdkafka_producer_properties: String,
    /// `KAFKA_RDKAFKA_CONSUMER_PROPERTIES`: the same for every consumer.
    #[serde(rename = "kafka_rdkafka_consumer_properties")]
    pub rdkafka_consumer_properties: String,
    /// The security variables, checked: set by [`KafkaConnection::check`]
    /// (plaintext until then).
    #[serde(skip)]
    pub security: KafkaSecurity,
    /// `KAFKA_RDKAFKA_PRODUCER_PROPERTIES`, checked: set by [`KafkaConnection::check`].
    #[serde(skip)]
    pub producer_properties: RdkafkaProperties,
    /// `KAFKA_RDKAFKA_CONSUMER_PROPERTIES`, checked: set by [`KafkaConnection::check`].
    #[serde(skip)]
    pub consumer_properties: RdkafkaProperties,
}

impl KafkaConnection {
    /// Every environment variable of the section.
    pub const ENV_VARS: [&'static str; 9] = [
        "KAFKA_BROKERS",
        "KAFKA_CLIENT",
        "KAFKA_SECURITY_PROTOCOL",
        "KAFKA_SSL_CA_LOCATION",
        "KAFKA_SASL_MECHANISM",
        "KAFKA_SASL_USERNAME",
        "KAFKA_SASL_PASSWORD",
        "KAFKA_RDKAFKA_PRODUCER_PROPERTIES",
        "KAFKA_RDKAFKA_CONSUMER_PROPERTIES",
    ];

    /// Plaintext to `brokers` with `client`: what tests and the local stack use.
    pub fn plaintext(brokers: BrokerList, client: KafkaClient) -> Self {
        Self {
            brokers,
            client,
            ..Self::default()
        }
    }

    /// Turns the security variables into [`KafkaConnection::security`], refusing
    /// combinations that would only fail later (TLS/SASL with the `kafka` client, a
    /// SASL protocol without credentials, ...), and checks the librdkafka properties
    /// (see [`RdkafkaProperties::parse`]).
    pub fn check(&mut self) -> Result<(), ConfigError> {
        self.security = KafkaSecurity::from_vars(
            self.client,
            KafkaSecurityVars {
                protocol: &self.security_protocol,
                ca_location: &self.ssl_ca_location,
                mechanism: &self.sasl_mechanism,
                username: &self.sasl_username,
                password: &self.sasl_password,
            },
        )
        .map_err(ConfigError::Other)?;
        self.producer_properties = RdkafkaProperties::parse(
            &self.rdkafka_producer_properties,
            RdkafkaRole::Producer,
            self.client,
        )
        .map_err(ConfigError::Other)?;
        self.consumer_properties = RdkafkaProperties::parse(
            &self.rdkafka_consumer_properties,
            RdkafkaRole::Consumer,
            self.client,
        )
        .map_err(ConfigError::Other)?;
        Ok(())
    }

    /// [`KafkaConnection::check`], and refuses the consumer's partition list
    /// (`partitions`, read from `partitions_var`) where the client's consumer group
    /// (`group_var`) assigns them (rdkafka).
    pub fn check_with_partitions(
        &mut self,
        partitions_var: &str,
        group_var: &str,
        partitions: &PartitionList,
    ) -> Result<(), ConfigError> {
        self.check()?;
        self.client
            .check_partitions(partitions_var, group_var, partitions)
            .map_err(ConfigError::Other)
    }

    /// The bootstrap brokers as `host:port` strings, as the bus takes them.
    pub fn hosts(&self) -> Vec<String> {
        self.brokers.hosts().to_vec()
    }
}

impl Default for KafkaConnection {
    fn default() -> Self {
        Self {
            brokers: BrokerList::single("127.0.0.1", 9092),
            client: KafkaClient::default(),
            security_protocol: String::new(),
            ssl_ca_location: String::new(),
            sasl_mechanism: String::new(),
            sasl_username: String::new(),
            sasl_password: Secret::default(),
            rdkafka_producer_properties: String::new(),
            rdkafka_consumer_properties: String::new(),
            security: KafkaSecurity::plaintext(),
            producer_properties: RdkafkaProperties::none(),
            consumer_properties: RdkafkaProperties::none(),
        }
    }
}
