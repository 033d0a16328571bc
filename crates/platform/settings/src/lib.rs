//! Configuration shared by every service of the platform.
//!
//! Each service describes its settings as a plain struct whose field names are the
//! lowercase names of its environment variables (`orders_pg_dsn` <- `ORDERS_PG_DSN`),
//! so one name is used everywhere: in code, in the optional TOML file and in the
//! environment. [`load`] layers them: the struct's `Default` < the TOML file named by
//! an environment variable < the environment. The value types here accept the Go
//! platform's forms so an existing `.env` keeps working:
//! - [`GoDuration`], e.g. `1s`, `500ms`, `1h30m`, `48h`, `0`;
//! - [`ListenAddr`], e.g. `50051`, `:8081`, `host:port`;
//! - [`GrpcEndpoint`], e.g. `host:port` or `http://host:port`, and [`GrpcEndpoints`],
//!   a comma-separated list of them;
//! - [`BrokerList`], a comma-separated `host:port` list;
//! - [`PartitionList`], `<SERVICE>_KAFKA_PARTITIONS`: the partitions one instance reads;
//! - [`ListError`]: what either list fails with, naming the list and its form;
//! - [`KafkaClient`], `KAFKA_CLIENT`: `kafka` (default) or `rdkafka`;
//! - [`KafkaSecurity`], `KAFKA_SECURITY_PROTOCOL` and `KAFKA_SSL_*`/`KAFKA_SASL_*`:
//!   Kafka TLS and SASL (rdkafka only), the password a [`Secret`];
//! - [`RdkafkaProperties`], `KAFKA_RDKAFKA_{PRODUCER,CONSUMER}_PROPERTIES`: librdkafka
//!   properties set on top of the platform's, those carrying a guarantee refused;
//! - [`KafkaConnection`]: brokers, client and security together, the section every
//!   Kafka-using service loads beside its own settings with [`load_with_kafka`].
//!
//! A bad value fails with a [`ConfigError`] that names the variable, the value and
//! what was expected.
//!
//! Each service describes every variable name it knows in an [`EnvSpec`]: the ones it
//! reads, other names it reads one of its settings under (aliases, e.g. Go's
//! `ORDERS_PG_MAX_CONNS` for `ORDERS_DB_POOL_SIZE`), the ones only its Go twin uses
//! (accepted, never refused, named in one info line at start-up) and other services'
//! variables it might be mistaken to read (warned of): see [`Notes`].
//! [`parse_env_file`] reads the Go platform's `.env` files (for tests and tools),
//! [`env_from_pairs`] makes such variables from pairs.
//!
//! Every Kafka-using service gets its `from_env` and `from_vars` from
//! [`impl_from_env_with_kafka!`], and refuses the same mistakes with the same messages
//! through [`check_not_blank`] and [`check_topics_differ`].

mod address;
mod broker_list;
mod checks;
mod duration;
mod env_file;
mod env_spec;
mod from_env;
mod kafka_client;
mod kafka_connection;
mod kafka_security;
mod list;
mod loader;
mod partition_list;
mod rdkafka_properties;

pub use address::{GrpcEndpoint, GrpcEndpoints, ListenAddr};
pub use broker_list::BrokerList;
pub use checks::{check_not_blank, check_topics_differ};
pub use duration::GoDuration;
pub use env_file::{EnvFileError, parse_env_file};
pub use env_spec::{EnvSpec, NotRead, Notes};
pub use kafka_client::{KafkaClient, KafkaClientError};
pub use kafka_connection::KafkaConnection;
pub use kafka_security::{
    KafkaSecurity, KafkaSecurityVars, SaslCredentials, SaslMechanism, Secret, SecurityProtocol,
};
pub use list::ListError;
pub use loader::{
    ConfigError, env_from_pairs, load, load_from, load_with_kafka, load_with_kafka_from,
};
pub use partition_list::PartitionList;
pub use rdkafka_properties::{RdkafkaProperties, RdkafkaRole};
