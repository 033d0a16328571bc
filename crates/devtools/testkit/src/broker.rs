//! One Kafka broker for a test, of the kind the test is parameterized over: the
//! project's `devbroker` (the embedded default) or Apache Kafka (the production
//! engine). Tests written against [`TestBroker`] run unchanged on both; see
//! [`crate::on_each_broker`].
//!
//! A [`Setup`] adds the Kafka client (`KAFKA_CLIENT`) the code under test talks to
//! the broker with; [`crate::on_each_client`] runs a test on every pair the platform
//! supports: (devbroker, kafka), (Apache Kafka 3.9, kafka), (Apache Kafka 3.9,
//! rdkafka) and (Apache Kafka 4.x, rdkafka).

use std::path::PathBuf;
use std::time::Duration;

use settings::KafkaClient;

use crate::kafka::{KafkaBroker, KafkaLine, create_topic_at};
use crate::kafka_cluster::KafkaCluster;
use crate::{ServiceProcess, free_port, kafka_admin, unique_name, wait_until};

/// The brokers a behaviour test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerKind {
    /// The project's own single-node broker, run as its binary.
    Devbroker,
    /// Apache Kafka from Maven Central jars, in KRaft mode.
    ApacheKafka(KafkaLine),
}

impl std::fmt::Display for BrokerKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BrokerKind::Devbroker => f.write_str("devbroker"),
            BrokerKind::ApacheKafka(line) => write!(f, "Apache Kafka {}", line.release()),
        }
    }
}

/// A broker kind and the Kafka client the code under test uses with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setup {
    /// The broker to start.
    pub broker: BrokerKind,
    /// The client (`KAFKA_CLIENT`) the services and the `bus` use.
    pub client: KafkaClient,
}

impl Setup {
    /// The `kafka` crate on devbroker.
    pub const DEVBROKER_KAFKA: Setup = Setup {
        broker: BrokerKind::Devbroker,
        client: KafkaClient::Kafka,
    };
    /// The `kafka` crate on Apache Kafka 3.9.
    pub const KAFKA_3_9_KAFKA: Setup = Setup {
        broker: BrokerKind::ApacheKafka(KafkaLine::V3_9),
        client: KafkaClient::Kafka,
    };
    /// librdkafka on Apache Kafka 3.9.
    pub const KAFKA_3_9_RDKAFKA: Setup = Setup {
        broker: BrokerKind::ApacheKafka(KafkaLine::V3_9),
        client: KafkaClient::Rdkafka,
    };
    /// librdkafka on Apache Kafka 4.x.
    pub const KAFKA_4_RDKAFKA: Setup = Setup {
        broker: BrokerKind::ApacheKafka(KafkaLine::V4),
        client: KafkaClient::Rdkafka,
    };

    /// Starts this setup's broker.
    pub fn start_broker(self) -> TestBroker {
        TestBroker::start(self.broker)
    }
}

impl std::fmt::Display for Setup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} with the {} client", self.broker, self.client)
    }
}

enum Running {
    Devbroker {
        process: ServiceProcess,
        data_dir: PathBuf,
    },
    Kafka(KafkaBroker),
    Cluster(KafkaCluster),
}

/// A broker owned by one test: its own ports and data, stopped when dropped.
pub struct TestBroker {
    kind: BrokerKind,
    addr: String,
    running: Running,
}

impl TestBroker {
    /// Starts a broker of `kind` and waits until it answers Metadata.
    pub fn start(kind: BrokerKind) -> Self {
        match kind {
            BrokerKind::Devbroker => {
                let addr = format!("127.0.0.1:{}", free_port());
                let data_dir = std::env::temp_dir().join(unique_name("devbroker"));
                let mut process = ServiceProcess::spawn(
                    "devbroker",
                    &["--listen", &addr, "--data-dir", data_dir.to_str().unwrap()],
                    &[],
                );
                wait_answering(&addr, &mut process);
                Self {
                    kind,
                    addr,
                    running: Running::Devbroker { process, data_dir },
                }
            }
            BrokerKind::ApacheKafka(line) => {
                let broker = KafkaBroker::start(line);
                Self {
                    kind,
                    addr: broker.bootstrap(),
                    running: Running::Kafka(broker),
                }
            }
        }
    }

    /// A 3-node Apache Kafka cluster of `line` ([`KafkaCluster`]) in place of one
    /// broker: [`TestBroker::bootstrap`] lists the three nodes, topics are created
    /// with replication factor 3, and [`TestBroker::cluster_mut`] kills and restarts
    /// single nodes. Its kind is `ApacheKafka(line)`.
    pub fn start_cluster(line: KafkaLine) -> Self {
        let cluster = KafkaCluster::start(line);
        Self {
            kind: BrokerKind::ApacheKafka(line),
            addr: cluster.bootstrap(),
            running: Running::Cluster(cluster),
        }
    }

    /// The cluster, when started with [`TestBroker::start_cluster`].
    pub fn cluster(&self) -> Option<&KafkaCluster> {
        match &self.running {
            Running::Cluster(cluster) => Some(cluster),
            _ => None,
        }
    }

    /// The cluster, when started with [`TestBroker::start_cluster`], to kill and
    /// restart its nodes.
    pub fn cluster_mut(&mut self) -> Option<&mut KafkaCluster> {
        match &mut self.running {
            Running::Cluster(cluster) => Some(cluster),
            _ => None,
        }
    }

    pub fn kind(&self) -> BrokerKind {
        self.kind
    }

    /// `host:port` for `KAFKA_BROKERS` (a cluster's three, comma-separated).
    pub fn bootstrap(&self) -> String {
        self.addr.clone()
    }

    /// Creates `name` with `partitions` partitions (as compose's `kafka-init` does on
    /// Apache Kafka) and waits until every partition has a leader (on a cluster:
    /// replication factor 3, every replica in sync).
    pub fn create_topic(&self, name: &str, partitions: i32) {
        match &self.running {
            Running::Cluster(cluster) => cluster.create_topic(name, partitions),
            _ => create_topic_at(&self.addr, name, partitions),
        }
    }

    /// A topic for this test alone (`{base}-{unique}`), created with `partitions`.
    pub fn unique_topic(&self, base: &str, partitions: i32) -> String {
        let name = unique_name(base).replace('_', "-");
        self.create_topic(&name, partitions);
        name
    }

    /// SIGKILL of the broker process (of a cluster's every node).
    pub fn kill9(&mut self) {
        match &mut self.running {
            Running::Devbroker { process, .. } => process.kill9(),
            Running::Kafka(broker) => broker.kill9(),
            Running::Cluster(cluster) => cluster.kill9_all(),
        }
    }

    /// The broker again, on the same port and data (after [`TestBroker::kill9`]);
    /// returns once it answers.
    pub fn restart(&mut self) {
        match &mut self.running {
            Running::Devbroker { process, .. } => {
                process.restart();
                wait_answering(&self.addr, process);
            }
            Running::Kafka(broker) => broker.restart(),
            Running::Cluster(cluster) => cluster.restart_all(),
        }
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        if let Running::Devbroker { process, data_dir } = &mut self.running {
            process.kill9();
            let _ = std::fs::remove_dir_all(data_dir);
        }
    }
}

fn wait_answering(addr: &str, process: &mut ServiceProcess) {
    wait_until(
        Duration::from_secs(30),
        &format!("devbroker at {addr}"),
        || {
            process.assert_running();
            kafka_admin::metadata(addr, None).ok().map(|_| ())
        },
    );
}

/// Writes, for each test function, a module of one `#[test]` per setup named in the
/// brackets, each calling the function with that setup, e.g.
/// `name::devbroker_kafka`. The names: `devbroker` and `apache_kafka_3_9` pass a
/// [`BrokerKind`]; `devbroker_kafka`, `apache_kafka_3_9_kafka`,
/// `apache_kafka_3_9_rdkafka` and `apache_kafka_4_rdkafka` pass a [`Setup`]. The
/// `on_*!` macros below are its common lists.
///
/// ```text
/// fn survives_a_broker_restart(setup: Setup) { ... }
/// testkit::on_setups!([devbroker_kafka, apache_kafka_4_rdkafka] survives_a_broker_restart);
/// ```
#[macro_export]
macro_rules! on_setups {
    ($setups:tt $($test:ident),+ $(,)?) => {
        $(
            $crate::__one_test_per_setup!($test $setups);
        )+
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __one_test_per_setup {
    ($test:ident [$($name:ident),+ $(,)?]) => {
        mod $test {
            $(
                #[test]
                fn $name() {
                    super::$test($crate::__setup_named!($name));
                }
            )+
        }
    };
}

/// The argument each name of [`on_setups!`] stands for.
#[doc(hidden)]
#[macro_export]
macro_rules! __setup_named {
    (devbroker) => {
        $crate::BrokerKind::Devbroker
    };
    (apache_kafka_3_9) => {
        $crate::BrokerKind::ApacheKafka($crate::KafkaLine::V3_9)
    };
    (devbroker_kafka) => {
        $crate::Setup::DEVBROKER_KAFKA
    };
    (apache_kafka_3_9_kafka) => {
        $crate::Setup::KAFKA_3_9_KAFKA
    };
    (apache_kafka_3_9_rdkafka) => {
        $crate::Setup::KAFKA_3_9_RDKAFKA
    };
    (apache_kafka_4_rdkafka) => {
        $crate::Setup::KAFKA_4_RDKAFKA
    };
}

/// Writes one `#[test]` per broker kind for a test function that takes a
/// [`BrokerKind`]: `name::devbroker` and `name::apache_kafka_3_9`.
///
/// ```text
/// fn orders_flow(kind: BrokerKind) { ... }
/// testkit::on_each_broker!(orders_flow);
/// ```
#[macro_export]
macro_rules! on_each_broker {
    ($($test:ident),+ $(,)?) => {
        $crate::on_setups!([devbroker, apache_kafka_3_9] $($test),+);
    };
}

/// Writes one `#[test]` per supported (broker, client) pair for a test function that
/// takes a [`Setup`]: `name::devbroker_kafka`, `name::apache_kafka_3_9_kafka`,
/// `name::apache_kafka_3_9_rdkafka` and `name::apache_kafka_4_rdkafka`. The `kafka`
/// crate cannot use Apache Kafka 4.x, and librdkafka is not run on devbroker (which
/// serves only the legacy protocol versions).
///
/// ```text
/// fn commits_after_success(setup: Setup) { ... }
/// testkit::on_each_client!(commits_after_success);
/// ```
#[macro_export]
macro_rules! on_each_client {
    ($($test:ident),+ $(,)?) => {
        $crate::on_setups!(
            [devbroker_kafka, apache_kafka_3_9_kafka, apache_kafka_3_9_rdkafka, apache_kafka_4_rdkafka]
            $($test),+
        );
    };
}

/// As [`on_each_client!`], for behaviour only librdkafka has (group membership):
/// `name::apache_kafka_3_9_rdkafka` and `name::apache_kafka_4_rdkafka`.
#[macro_export]
macro_rules! on_rdkafka {
    ($($test:ident),+ $(,)?) => {
        $crate::on_setups!([apache_kafka_3_9_rdkafka, apache_kafka_4_rdkafka] $($test),+);
    };
}
