//! A cheap readiness check over a plain socket, bounded by a timeout (the `kafka`
//! crate's own client has a fixed 120 s socket timeout): ApiVersions, to refuse a broker
//! the client cannot use, then one Metadata v0 round trip on the same connection.
//!
//! With TLS or SASL ([`probe_secured`]) the probe is a librdkafka metadata request
//! instead (this one speaks plain TCP only).
//!
//! With `rdkafka` ([`probe_for`]) there is no refusal: librdkafka negotiates versions
//! with each broker, and every Apache Kafka release, 4.x included, still serves
//! ApiVersions v0 and Metadata v0, which is all the probe sends.

use std::io;
use std::time::{Duration, Instant};

use crate::compat;
use crate::error::BusError;
use crate::wire::{self, Request};
use crate::{KafkaClient, KafkaConnection, KafkaSecurity};

const CORRELATION_ID: i32 = 0x0b05;
const METADATA: i16 = 3;

/// Ok if any of `brokers` answers a metadata request within `timeout` (overall).
/// A broker that answers without the protocol versions the `kafka` client uses fails
/// the probe with [`BusError::UnsupportedBroker`].
pub fn probe(brokers: &[String], timeout: Duration) -> Result<(), BusError> {
    probe_for(KafkaClient::Kafka, brokers, timeout)
}

/// [`probe_for`] with the service's TLS and SASL settings: plaintext is the
/// hand-written probe; anything else (librdkafka only, the `kafka` client is refused)
/// is one librdkafka metadata request over TLS and/or SASL, so a wrong password or an
/// untrusted certificate makes the probe fail (the service not ready), with the
/// cause in the error.
pub fn probe_secured(
    client: KafkaClient,
    security: &KafkaSecurity,
    brokers: &[String],
    timeout: Duration,
) -> Result<(), BusError> {
    if security.is_plaintext() {
        return probe_for(client, brokers, timeout);
    }
    crate::rd::check_security(client, security).map_err(BusError::Config)?;
    if brokers.is_empty() {
        return Err(BusError::Config("no brokers given".into()));
    }
    crate::rd::probe(brokers, security, timeout)
}

/// How long a service's readiness probe of its brokers may take.
pub const READINESS_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// A service's `/readyz` check of its brokers: [`probe_secured`] on the brokers,
/// client and TLS/SASL of its Kafka section, within [`READINESS_PROBE_TIMEOUT`].
pub fn readiness_probe(
    kafka: &KafkaConnection,
) -> impl FnMut() -> Result<(), BusError> + Send + 'static {
    let (client, security, brokers) = (kafka.client, kafka.security.clone(), kafka.hosts());
    move || probe_secured(client, &security, &brokers, READINESS_PROBE_TIMEOUT)
}

/// [`probe`] for the services' client: with [`KafkaClient::Rdkafka`] a broker is
/// never refused for its protocol versions, only unreachable ones fail.
pub fn probe_for(
    client: KafkaClient,
    brokers: &[String],
    timeout: Duration,
) -> Result<(), BusError> {
    if brokers.is_empty() {
        return Err(BusError::Config("no brokers given".into()));
    }
    let deadline = Instant::now() + timeout;
    let mut last = String::from("timed out");
    for b in brokers {
        match probe_one(client, b, deadline) {
            Ok(()) => return Ok(()),
            Err(Failure::Unsupported(e)) => return Err(e),
            Err(Failure::Io(e)) => {
                tracing::debug!(broker = %b, error = %e, "probe failed");
                last = format!("{b}: {e}");
            }
        }
    }
    Err(BusError::Unreachable {
        brokers: brokers.to_vec(),
        last,
    })
}

enum Failure {
    Io(io::Error),
    Unsupported(BusError),
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Self {
        Failure::Io(e)
    }
}

fn probe_one(client: KafkaClient, broker: &str, deadline: Instant) -> Result<(), Failure> {
    let mut s = wire::connect(broker, deadline)?;
    match compat::query(&mut s, deadline) {
        Ok(served) if client == KafkaClient::Kafka => {
            compat::verdict(broker, &served).map_err(Failure::Unsupported)?
        }
        Ok(_) => {}
        Err(e) => {
            // Brokers before 0.10 close the connection on ApiVersions: ask for
            // metadata on a new one, as the probe always did.
            tracing::debug!(%broker, error = %e, "no usable ApiVersions answer");
            s = wire::connect(broker, deadline)?;
        }
    }
    // One topic name would auto-create it; an empty list (v0: all topics) creates nothing.
    let request = Request {
        api_key: METADATA,
        api_version: 0,
        correlation_id: CORRELATION_ID,
        client_id: "bus-probe",
        body: &0i32.to_be_bytes(),
    };
    wire::round_trip(&mut s, &request, deadline)?;
    Ok(())
}
