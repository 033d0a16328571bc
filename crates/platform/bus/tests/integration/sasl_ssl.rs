//! Kafka TLS and SASL on the rdkafka client, against Apache Kafka 3.9 and 4.x with a
//! SASL_SSL listener (`testkit::KafkaBroker::start_sasl_ssl`: a test CA's certificate for
//! `localhost`, PLAIN and SCRAM users): produce and consume through the bus over
//! SASL_SSL with SCRAM-SHA-256, SCRAM-SHA-512 and PLAIN, and over SSL without SASL; a
//! wrong password, an untrusted CA and a host name the certificate does not carry are
//! refused with a clear error, and the readiness probe says so.
//!
//! One broker per Kafka line (a broker start is most of the cost): the cases run one
//! after the other in one test, each on its own topic and group.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use bus::{
    ConsumerConfig, Handler, KafkaClient, KafkaSecurity, Message, Producer, ProducerConfig, Record,
    SaslCredentials, SaslMechanism, Secret, SecurityProtocol, spawn_consumer,
};
use testkit::{KafkaBroker, KafkaLine, SASL_PASSWORD, SASL_USER, TestCerts, unique_name};
use tokio_util::sync::CancellationToken;

/// Bound on any wait; not a timing assertion.
const DEADLINE: Duration = Duration::from_secs(30);

fn security(ca: &TestCerts, mechanism: SaslMechanism, password: &str) -> KafkaSecurity {
    KafkaSecurity {
        protocol: SecurityProtocol::SaslSsl,
        ca_location: Some(ca.ca()),
        sasl: Some(SaslCredentials {
            mechanism,
            username: SASL_USER.to_owned(),
            password: Secret::new(password),
        }),
    }
}

fn producer_config(bootstrap: &str, security: KafkaSecurity, max_retries: u32) -> ProducerConfig {
    ProducerConfig {
        brokers: vec![bootstrap.to_owned()],
        ack_timeout: Duration::from_secs(5),
        max_retries,
        client_id: "sasl-ssl-test".into(),
        client: KafkaClient::Rdkafka,
        security,
        rdkafka_properties: bus::RdkafkaProperties::none(),
    }
}

/// Why the readiness probe through `bootstrap` with `security` says not ready.
fn probe_error(security: &KafkaSecurity, bootstrap: &str) -> String {
    bus::probe_secured(
        KafkaClient::Rdkafka,
        security,
        &[bootstrap.to_owned()],
        Duration::from_secs(5),
    )
    .map_err(|err| lifecycle::ErrorChain(&err).to_string())
    .unwrap_err()
}

/// Why `Producer::connect` through `bootstrap` with `security` fails at once.
fn connect_error(bootstrap: &str, security: KafkaSecurity) -> String {
    Producer::connect(producer_config(bootstrap, security, 0))
        .map(|_| ())
        .map_err(|err| lifecycle::ErrorChain(&err).to_string())
        .unwrap_err()
}

/// A failed TLS handshake (certificate verification) as librdkafka reports it.
fn assert_tls_refused(err: &str, case: &str) {
    assert!(
        err.contains("SSL") || err.contains("certificate"),
        "{case}: {err}"
    );
}

/// Forwards each message's value to a channel.
struct Forward(mpsc::Sender<String>);

impl Handler for Forward {
    type Error = std::io::Error;
    fn handle(&mut self, message: &Message<'_>) -> Result<(), std::io::Error> {
        let _ = self
            .0
            .send(String::from_utf8_lossy(message.value).into_owned());
        Ok(())
    }
}

/// The values of the first `n` records of `topic`, read by an rdkafka consumer in
/// a group of its own through `bootstrap` with `security`, which then stops; panics
/// with the broker's log tail (and `case`) if they do not all come within [`DEADLINE`].
fn consume(
    broker: &KafkaBroker,
    bootstrap: String,
    security: KafkaSecurity,
    topic: &str,
    n: usize,
    case: &str,
) -> Vec<String> {
    let (tx, rx) = mpsc::channel();
    let shutdown = CancellationToken::new();
    let config = ConsumerConfig {
        client: KafkaClient::Rdkafka,
        security,
        fetch_max_wait: Duration::from_millis(200),
        ..ConsumerConfig::new(vec![bootstrap], topic, &unique_name("g"), "sasl-ssl-test")
    };
    let handle = spawn_consumer(config, Forward(tx), shutdown.clone()).unwrap();
    let start = Instant::now();
    let mut got = Vec::new();
    while got.len() < n {
        match rx.recv_timeout(DEADLINE.saturating_sub(start.elapsed())) {
            Ok(v) => got.push(v),
            Err(_) => panic!("{case}: only {got:?} consumed:\n{}", broker.log_tail(30)),
        }
    }
    shutdown.cancel();
    handle.join().unwrap();
    got
}

/// Produces three records over SASL_SSL with `mechanism` and reads them back with a
/// consumer over SASL_SSL too.
fn round_trip(broker: &KafkaBroker, certs: &TestCerts, mechanism: SaslMechanism) {
    let topic = unique_name(&format!("secured-{mechanism}"));
    broker.create_topic(&topic, 1);
    let secured = security(certs, mechanism, SASL_PASSWORD);
    let bootstrap = broker.sasl_ssl_bootstrap();

    bus::probe_secured(
        KafkaClient::Rdkafka,
        &secured,
        std::slice::from_ref(&bootstrap),
        Duration::from_secs(10),
    )
    .unwrap_or_else(|e| panic!("{mechanism}: probe: {e}"));

    let mut producer = Producer::connect(producer_config(&bootstrap, secured.clone(), 5))
        .unwrap_or_else(|e| panic!("{mechanism}: connect: {e}"));
    let values: Vec<String> = (0..3).map(|i| format!("{mechanism}-{i}")).collect();
    let records: Vec<Record<'_>> = values
        .iter()
        .map(|v| Record {
            topic: &topic,
            key: b"order-1",
            value: v.as_bytes(),
            headers: &[],
        })
        .collect();
    producer
        .send_all(&records)
        .unwrap_or_else(|e| panic!("{mechanism}: send: {e}"));

    let case = mechanism.to_string();
    let got = consume(broker, bootstrap, secured, &topic, values.len(), &case);
    assert_eq!(got, values, "{mechanism}");
}

/// A wrong password: the producer gives up (no silent endless retry) with an error
/// saying authentication failed, without the password; the probe is not ready.
fn wrong_password_is_refused(broker: &KafkaBroker, certs: &TestCerts) {
    let wrong = "not-the-password";
    let bootstrap = broker.sasl_ssl_bootstrap();
    for mechanism in [SaslMechanism::ScramSha256, SaslMechanism::Plain] {
        let secured = security(certs, mechanism, wrong);
        let err = connect_error(&bootstrap, secured.clone());
        assert!(
            err.to_lowercase().contains("authentication"),
            "{mechanism}: {err}"
        );
        assert!(!err.contains(wrong), "{mechanism}: {err}");
        let err = probe_error(&secured, &bootstrap);
        assert!(
            err.to_lowercase().contains("authentication"),
            "{mechanism}: probe: {err}"
        );
        assert!(!err.contains(wrong), "{mechanism}: probe: {err}");
    }
}

/// `KAFKA_SSL_CA_LOCATION` naming another CA: the handshake fails (certificate
/// verification), so neither the producer nor the probe gets through.
fn untrusted_ca_is_refused(broker: &KafkaBroker) {
    let other = TestCerts::for_names(&["localhost"]);
    let secured = security(&other, SaslMechanism::ScramSha256, SASL_PASSWORD);
    let bootstrap = broker.sasl_ssl_bootstrap();
    assert_tls_refused(&connect_error(&bootstrap, secured.clone()), "untrusted CA");
    assert_tls_refused(&probe_error(&secured, &bootstrap), "untrusted CA: probe");
}

/// `KAFKA_SECURITY_PROTOCOL=ssl` (TLS, no SASL): a round trip of one record through
/// the SSL listener.
fn ssl_without_sasl(broker: &KafkaBroker, certs: &TestCerts) {
    let topic = unique_name("secured-ssl");
    broker.create_topic(&topic, 1);
    let tls = KafkaSecurity {
        protocol: SecurityProtocol::Ssl,
        ca_location: Some(certs.ca()),
        sasl: None,
    };
    let bootstrap = broker.ssl_bootstrap();
    let mut producer = Producer::connect(producer_config(&bootstrap, tls.clone(), 5))
        .unwrap_or_else(|e| panic!("ssl: connect: {e}"));
    producer
        .send(Record {
            topic: &topic,
            key: b"k",
            value: b"over-tls",
            headers: &[],
        })
        .unwrap_or_else(|e| panic!("ssl: send: {e}"));
    assert_eq!(
        consume(broker, bootstrap, tls, &topic, 1, "ssl"),
        ["over-tls"]
    );
}

/// The broker's host name is verified: its certificate names `localhost` only, so the
/// same listener reached as `127.0.0.1` is refused.
fn wrong_host_name_is_refused(broker: &KafkaBroker, certs: &TestCerts) {
    let by_address = broker
        .sasl_ssl_bootstrap()
        .replace("localhost", "127.0.0.1");
    let secured = security(certs, SaslMechanism::ScramSha256, SASL_PASSWORD);
    assert_tls_refused(
        &probe_error(&secured, &by_address),
        "wrong host name: probe",
    );
}

/// The `kafka` crate has no TLS or SASL: the bus refuses rather than connect in clear.
fn kafka_crate_is_refused(broker: &KafkaBroker, certs: &TestCerts) {
    let mut config = producer_config(
        &broker.sasl_ssl_bootstrap(),
        security(certs, SaslMechanism::Plain, SASL_PASSWORD),
        0,
    );
    config.client = KafkaClient::Kafka;
    let err = Producer::connect(config)
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("KAFKA_SECURITY_PROTOCOL") && err.contains("KAFKA_CLIENT"),
        "{err}"
    );
}

/// Every case on one broker of `line`.
fn all_cases(line: KafkaLine) {
    let certs = TestCerts::for_names(&["localhost"]);
    let broker = KafkaBroker::start_sasl_ssl(line, &certs);
    round_trip(&broker, &certs, SaslMechanism::ScramSha256);
    round_trip(&broker, &certs, SaslMechanism::ScramSha512);
    round_trip(&broker, &certs, SaslMechanism::Plain);
    wrong_password_is_refused(&broker, &certs);
    untrusted_ca_is_refused(&broker);
    ssl_without_sasl(&broker, &certs);
    wrong_host_name_is_refused(&broker, &certs);
    kafka_crate_is_refused(&broker, &certs);
}

#[test]
fn rdkafka_over_sasl_ssl_with_scram_and_plain_on_kafka_3_9() {
    all_cases(KafkaLine::V3_9);
}

#[test]
fn rdkafka_over_sasl_ssl_with_scram_and_plain_on_kafka_4() {
    all_cases(KafkaLine::V4);
}
