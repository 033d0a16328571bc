//! Typed errors of the adapter.
//!
//! As everywhere in the platform, a variant's message says what failed here and a
//! cause kept as a value is its `source()`, not also written into the message
//! (`lifecycle::ErrorChain` shows the chain). One exception, so that a chain shows
//! each cause once: librdkafka's `KafkaError` writes its own cause (the error code)
//! into its message *and* returns it as its `source()`, so the bus keeps it as the
//! message of [`BusError::Rdkafka`] and [`BusError::Undelivered`], not as a source.

use kafka::error::KafkaCode;

use crate::versions::{self, MissingVersion};

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("no broker reachable among {brokers:?}: {last}")]
    Unreachable { brokers: Vec<String>, last: String },
    #[error("kafka client")]
    Kafka(#[from] kafka::Error),
    /// An error of librdkafka (`KAFKA_CLIENT=rdkafka`), shown in the message, not as
    /// a source (see the module documentation).
    #[error("rdkafka client: {0}")]
    Rdkafka(rdkafka::error::KafkaError),
    /// Records librdkafka could not get acknowledged within the delivery timeout; the
    /// last delivery error is shown in the message, not as a source (see the module
    /// documentation).
    #[error("{undelivered} of {total} records not acknowledged: {last}")]
    Undelivered {
        undelivered: usize,
        total: usize,
        last: rdkafka::error::KafkaError,
    },
    #[error("broker refused records for {topic}/{partition}: {code:?}")]
    Refused {
        topic: String,
        partition: i32,
        code: KafkaCode,
    },
    #[error("topic {0:?} has no partitions (not created yet?)")]
    NoPartitions(String),
    #[error("giving up after {attempts} attempts")]
    RetriesExhausted {
        attempts: u32,
        #[source]
        last: Box<BusError>,
    },
    /// The broker answered but no longer serves versions the `kafka` client sends
    /// (Apache Kafka 4.0 removed them): retrying cannot help.
    #[error(
        "broker {broker} does not serve the protocol versions the kafka client uses: {}; \
         the kafka client needs a broker that still serves them: Apache Kafka 3.x \
         (3.9.2 or later recommended); for Apache Kafka 4.x set KAFKA_CLIENT=rdkafka",
        versions::list(.missing)
    )]
    UnsupportedBroker {
        broker: String,
        missing: Vec<MissingVersion>,
    },
    #[error("the kafka client panicked: {0}")]
    ClientPanicked(String),
    #[error("consumer thread panicked")]
    ConsumerPanicked,
    #[error("the consumer stopped without being asked to")]
    ConsumerStopped,
}

/// Why a service's consumer did not start or stopped without being asked to: what
/// [`spawn_consumer`](crate::spawn_consumer) and
/// [`ConsumerHandle::stopped`](crate::ConsumerHandle::stopped) return, for the
/// services to wrap (`#[from]`) in their own start-up errors.
#[derive(Debug, thiserror::Error)]
pub enum ConsumerError {
    /// An unusable configuration (`InvalidInput`) or no thread for the loop.
    #[error("cannot start the consumer")]
    Spawn(#[source] std::io::Error),
    #[error("consumer failed")]
    Failed(#[source] BusError),
    /// The brokers answer but cannot serve the `kafka` client (Apache Kafka 4.x).
    /// (Every service names its brokers `KAFKA_BROKERS`.)
    #[error("KAFKA_BROKERS names a broker this service cannot use")]
    UnsupportedBroker(#[source] BusError),
}

impl From<rdkafka::error::KafkaError> for BusError {
    fn from(err: rdkafka::error::KafkaError) -> Self {
        BusError::Rdkafka(err)
    }
}

impl From<BusError> for ConsumerError {
    /// [`BusError::UnsupportedBroker`] gets its own case: the operator must change the
    /// brokers, not wait.
    fn from(err: BusError) -> Self {
        match err {
            BusError::UnsupportedBroker { .. } => Self::UnsupportedBroker(err),
            err => Self::Failed(err),
        }
    }
}

impl BusError {
    /// Whether retrying the same operation later can succeed (network trouble, broker
    /// restarting, leadership or coordinator moving, topic being created).
    pub fn is_transient(&self) -> bool {
        match self {
            BusError::Unreachable { .. }
            | BusError::NoPartitions(_)
            | BusError::ClientPanicked(_) => true,
            BusError::Refused { code, .. } => transient_code(*code),
            BusError::Kafka(e) => transient_kafka(e),
            BusError::Rdkafka(e) | BusError::Undelivered { last: e, .. } => transient_rdkafka(e),
            BusError::Config(_)
            | BusError::UnsupportedBroker { .. }
            | BusError::RetriesExhausted { .. }
            | BusError::ConsumerPanicked
            | BusError::ConsumerStopped => false,
        }
    }
}

pub(crate) fn transient_code(code: KafkaCode) -> bool {
    matches!(
        code,
        KafkaCode::Unknown
            | KafkaCode::UnknownTopicOrPartition
            | KafkaCode::LeaderNotAvailable
            | KafkaCode::NotLeaderForPartition
            | KafkaCode::RequestTimedOut
            | KafkaCode::BrokerNotAvailable
            | KafkaCode::ReplicaNotAvailable
            | KafkaCode::NetworkException
            | KafkaCode::GroupLoadInProgress
            | KafkaCode::GroupCoordinatorNotAvailable
            | KafkaCode::NotCoordinatorForGroup
            | KafkaCode::NotEnoughReplicas
            | KafkaCode::NotEnoughReplicasAfterAppend
            | KafkaCode::OffsetOutOfRange
    )
}

/// librdkafka retries by itself; what reaches the bus is worth retrying unless it
/// says the configuration or the records themselves are wrong.
pub(crate) fn transient_rdkafka(e: &rdkafka::error::KafkaError) -> bool {
    use rdkafka::error::{KafkaError, RDKafkaErrorCode as Code};
    match e {
        KafkaError::ClientConfig(..)
        | KafkaError::ClientCreation(_)
        | KafkaError::Subscription(_)
        | KafkaError::Nul(_)
        | KafkaError::MessageConsumptionFatal(_) => false,
        KafkaError::MessageProduction(code) => !matches!(
            code,
            Code::MessageSizeTooLarge
                | Code::InvalidMessage
                | Code::InvalidMessageSize
                | Code::TopicAuthorizationFailed
                | Code::ClusterAuthorizationFailed
                | Code::InvalidTopic
                | Code::InvalidRecord
                | Code::Fatal
        ),
        _ => true,
    }
}

fn transient_kafka(e: &kafka::Error) -> bool {
    match e {
        kafka::Error::Io(_)
        | kafka::Error::NoHostReachable
        | kafka::Error::UnexpectedEOF
        | kafka::Error::CodecError => true,
        kafka::Error::Kafka(code) => transient_code(*code),
        kafka::Error::TopicPartitionError { error_code, .. } => transient_code(*error_code),
        kafka::Error::ArcSelf(inner) => transient_kafka(inner),
        _ => false,
    }
}
