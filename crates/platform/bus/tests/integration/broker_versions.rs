//! The start-up check of the broker's protocol versions, on real brokers: Apache Kafka
//! 4.x (which removed the versions the `kafka` client speaks, KIP-896) is refused at
//! once with a message naming what is missing, by the producer, the consumer and the
//! probe alike; devbroker passes (Apache Kafka 3.9 passes in every adapter test); a
//! peer that will not answer ApiVersions or cannot be reached is left to the usual
//! retries. With rdkafka the same 4.x broker passes (no legacy-protocol check).

use std::io::Read;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use bus::{
    BusError, ConsumerConfig, ConsumerHandle, Handler, Message, Producer, ProducerConfig, Record,
    spawn_consumer,
};
use testkit::{KafkaBroker, KafkaLine};
use tokio_util::sync::CancellationToken;

/// Bound on any wait; not a timing assertion.
const DEADLINE: Duration = Duration::from_secs(30);

/// A peer that accepts connections and closes each one after reading a request, as
/// brokers before 0.10 do with ApiVersions.
fn mute_peer() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut buf = [0u8; 64];
            let _ = stream.read(&mut buf);
        }
    });
    addr
}

fn producer_config(brokers: Vec<String>, max_retries: u32) -> ProducerConfig {
    ProducerConfig {
        brokers,
        ack_timeout: Duration::from_secs(5),
        max_retries,
        client_id: "broker-versions-test".into(),
        client: bus::KafkaClient::Kafka,
        security: bus::KafkaSecurity::plaintext(),
        rdkafka_properties: bus::RdkafkaProperties::none(),
    }
}

fn consumer_config(brokers: Vec<String>, topic: &str) -> ConsumerConfig {
    ConsumerConfig {
        fetch_max_wait: Duration::from_millis(200),
        retry_backoff_initial: Duration::from_millis(20),
        retry_backoff_max: Duration::from_millis(200),
        ..ConsumerConfig::new(
            brokers,
            topic,
            "broker-versions-test",
            "broker-versions-test",
        )
    }
}

struct Forward(std::sync::mpsc::Sender<Vec<u8>>);

impl Handler for Forward {
    type Error = std::io::Error;
    fn handle(&mut self, message: &Message<'_>) -> Result<(), std::io::Error> {
        let _ = self.0.send(message.value.to_vec());
        Ok(())
    }
}

/// A consumer of `topic` sending each message's value to `tx`, and its stop signal.
fn forwarding_consumer(
    brokers: Vec<String>,
    topic: &str,
    tx: std::sync::mpsc::Sender<Vec<u8>>,
) -> (CancellationToken, ConsumerHandle) {
    let shutdown = CancellationToken::new();
    let handle = spawn_consumer(
        consumer_config(brokers, topic),
        Forward(tx),
        shutdown.clone(),
    )
    .unwrap();
    (shutdown, handle)
}

fn assert_names_kafka_4_gaps(err: &BusError, broker: &str) {
    assert!(
        matches!(err, BusError::UnsupportedBroker { .. }),
        "expected UnsupportedBroker, got {err:?}"
    );
    assert!(!err.is_transient());
    let text = err.to_string();
    // What Apache Kafka 4.x really advertises (it still lists Produce v0, refusing it
    // when sent, KAFKA-18659, so Produce is not named).
    for expected in [
        format!("broker {broker} does not serve the protocol versions"),
        "Fetch v0 (broker serves v4..".to_owned(),
        "ListOffsets v0 (broker serves v1..".to_owned(),
        "OffsetCommit v1 (broker serves v2..".to_owned(),
        "Apache Kafka 3.x (3.9.2 or later recommended)".to_owned(),
    ] {
        assert!(text.contains(&expected), "{expected:?} not in: {text}");
    }
}

#[test]
fn apache_kafka_4_is_refused_at_start_up_by_producer_consumer_and_probe() {
    let kafka = KafkaBroker::start(KafkaLine::V4);
    let bootstrap = kafka.bootstrap();

    // Eight retries would be tried for a transient failure; this one is final at once.
    let err = Producer::connect(producer_config(vec![bootstrap.clone()], 8)).unwrap_err();
    assert_names_kafka_4_gaps(&err, &bootstrap);

    // The first broker that answers decides, even after one that does not.
    let dead = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let err = bus::check_broker_versions(&[dead, bootstrap.clone()], Duration::from_secs(10))
        .unwrap_err();
    assert_names_kafka_4_gaps(&err, &bootstrap);

    let err = bus::probe(std::slice::from_ref(&bootstrap), Duration::from_secs(10)).unwrap_err();
    assert_names_kafka_4_gaps(&err, &bootstrap);

    // The same broker is fine for rdkafka, which negotiates versions: no check, and
    // the readiness probe passes.
    let brokers = std::slice::from_ref(&bootstrap);
    bus::check_broker_versions_for(bus::KafkaClient::Rdkafka, brokers, Duration::from_secs(10))
        .unwrap();
    bus::probe_for(bus::KafkaClient::Rdkafka, brokers, Duration::from_secs(10)).unwrap();

    // The consumer ends with the error instead of reconnecting forever.
    let (shutdown, handle) = forwarding_consumer(
        vec![bootstrap.clone()],
        "orders",
        std::sync::mpsc::channel().0,
    );
    let start = Instant::now();
    while !handle.is_finished() {
        assert!(start.elapsed() < DEADLINE, "the consumer keeps running");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!shutdown.is_cancelled());
    let err = handle.join().unwrap_err();
    assert_names_kafka_4_gaps(&err, &bootstrap);
}

#[test]
fn a_broker_that_will_not_answer_api_versions_is_left_to_the_client() {
    // Closing the connection is what brokers before 0.10 do: not a verdict.
    let mute = mute_peer();
    bus::check_broker_versions(std::slice::from_ref(&mute), Duration::from_secs(5)).unwrap();
    // The client then tries and retries as it always did (transient).
    let err = Producer::connect(producer_config(vec![mute.clone()], 1)).unwrap_err();
    match &err {
        BusError::RetriesExhausted { attempts: 2, last } => assert!(last.is_transient(), "{last}"),
        other => panic!("expected RetriesExhausted, got {other:?}"),
    }
    let err = bus::probe(std::slice::from_ref(&mute), Duration::from_secs(5)).unwrap_err();
    assert!(matches!(err, BusError::Unreachable { .. }), "{err:?}");

    // The consumer keeps reconnecting until shut down.
    let (shutdown, handle) =
        forwarding_consumer(vec![mute.clone()], "orders", std::sync::mpsc::channel().0);
    std::thread::sleep(Duration::from_millis(500));
    assert!(!handle.is_finished());
    shutdown.cancel();
    handle.join().unwrap();
}

#[test]
fn an_unreachable_broker_stays_transient() {
    let dead = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let err = bus::check_broker_versions(&[dead], Duration::from_secs(2)).unwrap_err();
    assert!(matches!(err, BusError::Unreachable { .. }), "{err:?}");
    assert!(err.is_transient());
}

#[test]
fn devbroker_passes_the_check() {
    let broker = devbroker::spawn_background(devbroker::BrokerConfig::default()).unwrap();
    let brokers = vec![broker.bootstrap()];
    bus::check_broker_versions(&brokers, Duration::from_secs(5)).unwrap();
    bus::probe(&brokers, Duration::from_secs(5)).unwrap();

    let mut producer = Producer::connect(producer_config(brokers.clone(), 5)).unwrap();
    producer
        .send(Record {
            topic: "versions",
            key: b"1",
            value: b"hello",
            headers: &[],
        })
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let (shutdown, handle) = forwarding_consumer(brokers, "versions", tx);
    assert_eq!(rx.recv_timeout(DEADLINE).unwrap(), b"hello");
    shutdown.cancel();
    handle.join().unwrap();
}
