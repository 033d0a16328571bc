//! A deployment's own librdkafka properties (`KAFKA_RDKAFKA_PRODUCER_PROPERTIES`,
//! `KAFKA_RDKAFKA_CONSUMER_PROPERTIES`) on a real Apache Kafka 3.9 broker: they reach
//! librdkafka over the platform's settings, a name librdkafka does not know stops the
//! client naming the variable, and the `kafka` client refuses them.

use std::sync::mpsc;
use std::time::Duration;

use bus::{
    BusError, ConsumerConfig, Handler, KafkaClient, Message, Producer, ProducerConfig,
    RdkafkaProperties, Record, spawn_consumer,
};
use settings::RdkafkaRole;
use testkit::{KafkaBroker, KafkaLine};
use tokio_util::sync::CancellationToken;

/// Bound on any wait; not a timing assertion.
const DEADLINE: Duration = Duration::from_secs(30);

fn properties(value: &str, role: RdkafkaRole) -> RdkafkaProperties {
    RdkafkaProperties::parse(value, role, KafkaClient::Rdkafka).unwrap()
}

fn producer_config(brokers: Vec<String>, client: KafkaClient, set: &str) -> ProducerConfig {
    ProducerConfig {
        brokers,
        ack_timeout: Duration::from_secs(5),
        max_retries: 0,
        client_id: "properties-test".into(),
        client,
        security: bus::KafkaSecurity::plaintext(),
        rdkafka_properties: properties(set, RdkafkaRole::Producer),
    }
}

fn consumer_config(brokers: Vec<String>, topic: &str, set: &str) -> ConsumerConfig {
    ConsumerConfig {
        client: KafkaClient::Rdkafka,
        fetch_max_wait: Duration::from_millis(200),
        rdkafka_properties: properties(set, RdkafkaRole::Consumer),
        ..ConsumerConfig::new(brokers, topic, "properties-test", "properties-test")
    }
}

struct Forward(mpsc::Sender<Vec<u8>>);

impl Handler for Forward {
    type Error = std::io::Error;
    fn handle(&mut self, message: &Message<'_>) -> Result<(), std::io::Error> {
        let _ = self.0.send(message.value.to_vec());
        Ok(())
    }
}

fn record<'a>(value: &'a [u8]) -> Record<'a> {
    Record {
        topic: "tuned",
        key: b"1",
        value,
        headers: &[],
    }
}

#[test]
fn properties_reach_librdkafka_over_the_platform_settings() {
    let kafka = KafkaBroker::start(KafkaLine::V3_9);
    kafka.create_topic("tuned", 2);
    let brokers = vec![kafka.bootstrap()];

    // librdkafka refuses, before sending, a record over the producer's
    // `message.max.bytes`: proof the property is in force. Everything else stays the
    // platform's: a small record is acknowledged (acks=all, idempotence).
    let mut producer = Producer::connect(producer_config(
        brokers.clone(),
        KafkaClient::Rdkafka,
        "message.max.bytes=2000;linger.ms=0",
    ))
    .unwrap();
    let too_big = vec![b'x'; 5_000];
    let err = producer.send(record(&too_big)).unwrap_err();
    assert!(
        matches!(&err, BusError::Undelivered { .. }) && err.to_string().contains("too large"),
        "{err}"
    );
    producer.send(record(b"small enough")).unwrap();

    // A consumer with its own properties reads it and commits as usual.
    let (tx, rx) = mpsc::channel();
    let shutdown = CancellationToken::new();
    let handle = spawn_consumer(
        consumer_config(brokers, "tuned", "fetch.wait.max.ms=50;client.rack=rack-a"),
        Forward(tx),
        shutdown.clone(),
    )
    .unwrap();
    assert_eq!(rx.recv_timeout(DEADLINE).unwrap(), b"small enough");
    shutdown.cancel();
    handle.join().unwrap();
}

#[test]
fn a_property_librdkafka_does_not_know_stops_the_client_naming_the_variable() {
    let kafka = KafkaBroker::start(KafkaLine::V3_9);
    kafka.create_topic("tuned", 1);
    let brokers = vec![kafka.bootstrap()];

    let err = Producer::connect(producer_config(
        brokers.clone(),
        KafkaClient::Rdkafka,
        "linger.ms=0;no.such.property=1",
    ))
    .unwrap_err()
    .to_string();
    assert!(err.contains("no.such.property"), "{err}");
    assert!(err.contains("KAFKA_RDKAFKA_PRODUCER_PROPERTIES"), "{err}");

    let (tx, _rx) = mpsc::channel();
    let handle = spawn_consumer(
        consumer_config(brokers, "tuned", "fetch.wait.max.ms=not-a-number"),
        Forward(tx),
        CancellationToken::new(),
    )
    .unwrap();
    let err = handle.join().unwrap_err().to_string();
    assert!(err.contains("fetch.wait.max.ms"), "{err}");
    assert!(err.contains("KAFKA_RDKAFKA_CONSUMER_PROPERTIES"), "{err}");
}

#[test]
fn the_kafka_client_refuses_librdkafka_properties() {
    // Refused before any connection: no broker needed.
    let err = Producer::connect(producer_config(
        vec!["127.0.0.1:9".into()],
        KafkaClient::Kafka,
        "linger.ms=0",
    ))
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("KAFKA_RDKAFKA_PRODUCER_PROPERTIES needs KAFKA_CLIENT=rdkafka"),
        "{err}"
    );

    let config = ConsumerConfig {
        client: KafkaClient::Kafka,
        ..consumer_config(vec!["127.0.0.1:9".into()], "tuned", "fetch.wait.max.ms=50")
    };
    let (tx, _rx) = mpsc::channel();
    // Refused as invalid input, the reason in the error's source.
    let err = spawn_consumer(config, Forward(tx), CancellationToken::new()).unwrap_err();
    let err = format!("{err:?}");
    assert!(
        err.contains("KAFKA_RDKAFKA_CONSUMER_PROPERTIES needs KAFKA_CLIENT=rdkafka"),
        "{err}"
    );
}
