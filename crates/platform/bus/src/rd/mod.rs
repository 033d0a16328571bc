//! The `rdkafka` side of the bus (`KAFKA_CLIENT=rdkafka`): librdkafka, built from the
//! source bundled in `rdkafka-sys` against the system OpenSSL, behind the same
//! [`Producer`](crate::Producer) and [`spawn_consumer`](crate::spawn_consumer) as the
//! `kafka` crate.
//!
//! The handles are driven from the dedicated blocking thread of their caller (the
//! outbox relay, the consumer loop), nothing on the async runtime: the consumer is a
//! poll-driven `BaseConsumer`; the producer a `ThreadedProducer`, whose own thread
//! serves the delivery reports and wakes the waiting relay (see `producer.rs`). librdkafka negotiates
//! protocol versions with each broker, so Apache Kafka 3.x and 4.x both work and there
//! is no legacy-protocol check. Its log lines and global errors go to `tracing`.
//!
//! TLS and SASL ([`KafkaSecurity`]) are librdkafka's `security.protocol`,
//! `ssl.ca.location`, `sasl.mechanism`, `sasl.username` and `sasl.password`; the
//! broker's host name is verified (librdkafka's default
//! `ssl.endpoint.identification.algorithm=https`). With TLS or SASL the readiness
//! probe ([`probe`]) is a librdkafka metadata request, since the hand-written one
//! speaks plain TCP only.
//!
//! A deployment's own librdkafka properties ([`RdkafkaProperties`],
//! `KAFKA_RDKAFKA_PRODUCER_PROPERTIES` / `KAFKA_RDKAFKA_CONSUMER_PROPERTIES`) are set
//! after the platform's ([`apply_properties`]); those carrying a guarantee were
//! refused when the settings were read.

pub(crate) mod consumer;
pub(crate) mod producer;

use std::sync::Mutex;
use std::time::Duration;

use backoff::RetryPolicy;
use rdkafka::ClientConfig;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{
    BaseProducer, DeliveryResult, NoCustomPartitioner, Producer as _, ProducerContext,
};

use crate::error::BusError;
use crate::{KafkaClient, KafkaSecurity, RdkafkaProperties};

/// The settings every librdkafka handle of the platform shares.
pub(crate) fn base_config(
    brokers: &[String],
    client_id: &str,
    security: &KafkaSecurity,
) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers.join(","))
        .set("client.id", client_id)
        // Java's partitioner (murmur2 of the key), as the `kafka` side uses: an order's
        // events land on the same partition whichever client published them.
        .set("partitioner", "murmur2_random")
        // No Nagle delay on small requests (librdkafka leaves it on): with delayed
        // ACKs it adds tens of milliseconds to a produce or a fetch answer.
        .set("socket.nagle.disable", "true")
        // Reconnects back off as every retry loop of the platform does.
        .set("reconnect.backoff.ms", millis(RetryPolicy::DEFAULT.initial))
        .set("reconnect.backoff.max.ms", millis(RetryPolicy::DEFAULT.max))
        .set_log_level(RDKafkaLogLevel::Info);
    apply_security(&mut config, security);
    config
}

/// Sets the deployment's own librdkafka properties over the platform's.
pub(crate) fn apply_properties(config: &mut ClientConfig, properties: &RdkafkaProperties) {
    for (name, value) in properties.iter() {
        config.set(name, value);
    }
}

/// Why librdkafka refused to create a handle, naming the variable whose properties
/// it may have refused.
pub(crate) fn creation_failed(
    what: &str,
    error: &KafkaError,
    properties: &RdkafkaProperties,
    var: &str,
) -> BusError {
    if properties.is_empty() {
        BusError::Config(format!("cannot create the rdkafka {what}: {error}"))
    } else {
        BusError::Config(format!(
            "cannot create the rdkafka {what}: {error} (check {var})"
        ))
    }
}

/// A duration as librdkafka's `*.ms` settings take it.
fn millis(duration: Duration) -> String {
    duration.as_millis().to_string()
}

/// Maps [`KafkaSecurity`] onto librdkafka's settings. Host-name verification stays
/// librdkafka's default (on).
fn apply_security(config: &mut ClientConfig, security: &KafkaSecurity) {
    config.set("security.protocol", security.protocol.as_str());
    if let Some(ca) = &security.ca_location {
        config.set("ssl.ca.location", ca.to_string_lossy());
    }
    if let Some(sasl) = &security.sasl {
        config
            .set("sasl.mechanism", sasl.mechanism.as_str())
            .set("sasl.username", &sasl.username)
            .set("sasl.password", sasl.password.expose());
    }
}

/// Refuses TLS or SASL with the `kafka` crate, which supports neither (the services
/// refuse it at start-up already; this guards other callers).
pub(crate) fn check_security(client: KafkaClient, security: &KafkaSecurity) -> Result<(), String> {
    if client == KafkaClient::Kafka && !security.is_plaintext() {
        return Err(format!(
            "KAFKA_SECURITY_PROTOCOL={} needs KAFKA_CLIENT=rdkafka: the kafka crate supports \
             neither TLS nor SASL here",
            security.protocol
        ));
    }
    Ok(())
}

/// Refuses librdkafka properties given to the `kafka` crate's side, which would
/// ignore them (the services refuse them at start-up already).
pub(crate) fn check_properties(
    client: KafkaClient,
    properties: &RdkafkaProperties,
    role: settings::RdkafkaRole,
) -> Result<(), String> {
    if client == KafkaClient::Kafka && !properties.is_empty() {
        return Err(format!(
            "{} needs KAFKA_CLIENT=rdkafka: the kafka crate has no librdkafka properties",
            role.var()
        ));
    }
    Ok(())
}

/// The last global error a handle reported (authentication failed, TLS handshake
/// failed, ...): librdkafka answers a request that could not be sent with a generic
/// error, this says why.
#[derive(Default)]
pub(crate) struct LastError(Mutex<Option<String>>);

impl LastError {
    /// Keeps `error` if it explains a failed connection (not the generic ones).
    pub(crate) fn remember(&self, error: &KafkaError, reason: &str) {
        if matches!(
            error.rdkafka_error_code(),
            Some(RDKafkaErrorCode::Authentication | RDKafkaErrorCode::SSL)
        ) {
            *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(reason.to_owned());
        }
    }

    /// Keeps a log line that explains a failed connection (see [`security_failure`]):
    /// librdkafka logs it at once, while its error event waits for the next poll.
    pub(crate) fn remember_log(&self, fac: &str, message: &str) {
        if fac == "FAIL" && security_failure(message).is_some() {
            *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(message.to_owned());
        }
    }

    /// Forgets the last refusal (after a success).
    pub(crate) fn clear(&self) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Whether a refused authentication or TLS handshake was seen.
    pub(crate) fn is_set(&self) -> bool {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).is_some()
    }

    /// `error`, followed by the last remembered cause if there is one.
    pub(crate) fn explain(&self, error: &KafkaError) -> String {
        match &*self.0.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(cause) => format!("{error} ({cause})"),
            None => error.to_string(),
        }
    }
}

/// One metadata round trip (all topics) within `timeout`, asked in slices (250 ms,
/// doubling up to 2 s, so a slow network still gets its answer) so that a refused
/// authentication or TLS handshake (seen in `last_error`) ends the wait early instead
/// of at the timeout. `poll` serves the handle's queue between slices: librdkafka
/// hands log lines and error events over only there. A success forgets the last
/// refusal.
pub(crate) fn fetch_metadata<C: ClientContext>(
    client: &rdkafka::client::Client<C>,
    poll: impl Fn(),
    last_error: &LastError,
    timeout: Duration,
) -> Result<(), KafkaError> {
    let deadline = std::time::Instant::now() + timeout;
    let mut slice = Duration::from_millis(250);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let answer = client.fetch_metadata(None, left.min(slice).max(Duration::from_millis(1)));
        poll();
        match answer {
            Ok(_) => {
                last_error.clear();
                return Ok(());
            }
            Err(e) if last_error.is_set() || left <= slice => return Err(e),
            Err(_) => slice = (slice * 2).min(Duration::from_secs(2)),
        }
    }
}

/// The context of a probe's short-lived handle: logs like the others, remembers why
/// a connection failed.
#[derive(Default)]
struct ProbeContext {
    last_error: LastError,
}

impl ClientContext for ProbeContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        // The probe runs every readiness check: its connection trouble is the
        // service's own handles' to report; keep it at debug.
        tracing::debug!(target: "librdkafka", fac, ?level, "{message}");
        self.last_error.remember_log(fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::debug!(target: "librdkafka", error = %error, "probe: {reason}");
        self.last_error.remember(&error, reason);
    }
}

impl ProducerContext for ProbeContext {
    type DeliveryOpaque = ();

    fn delivery(&self, _: &DeliveryResult<'_>, _: Self::DeliveryOpaque) {}
}

/// A readiness probe through librdkafka (TLS and SASL included): Ok once a broker
/// answered a metadata request within `timeout`, authenticated.
pub(crate) fn probe(
    brokers: &[String],
    security: &KafkaSecurity,
    timeout: Duration,
) -> Result<(), BusError> {
    let producer: BaseProducer<ProbeContext, NoCustomPartitioner> =
        base_config(brokers, "readiness-probe", security)
            .create_with_context(ProbeContext::default())
            .map_err(|e| BusError::Config(format!("cannot create the rdkafka probe: {e}")))?;
    fetch_metadata(
        producer.client(),
        || {
            producer.poll(Duration::ZERO);
        },
        &producer.context().last_error,
        timeout,
    )
    .map_err(|e| BusError::Unreachable {
        brokers: brokers.to_vec(),
        last: producer.context().last_error.explain(&e),
    })
}

/// What to check when a librdkafka connection failure (`FAIL` log line) is a refused
/// authentication or TLS handshake: retrying cannot fix those.
pub(crate) fn security_failure(message: &str) -> Option<&'static str> {
    if message.contains("SASL authentication error")
        || message.contains("SASL authentication failed")
    {
        Some(
            "Kafka SASL authentication failed (check KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME, \
             KAFKA_SASL_PASSWORD)",
        )
    } else if message.contains("SSL handshake failed") || message.contains("certificate verify") {
        Some(
            "Kafka TLS handshake failed (check KAFKA_SSL_CA_LOCATION and the broker's \
             certificate and host name)",
        )
    } else {
        None
    }
}

/// Forwards librdkafka's log lines and global errors to `tracing` (target
/// `librdkafka`), with the facility (`fac`) as a field. A failed connection (facility
/// `FAIL`, which librdkafka logs as an error) is a warning here, as the `kafka` side's
/// reconnects are: librdkafka retries it by itself; unless it is a refused
/// authentication or TLS handshake ([`security_failure`]): an error, with what to
/// check.
pub(crate) fn forward_log(level: RDKafkaLogLevel, fac: &str, message: &str) {
    if fac == "FAIL"
        && let Some(hint) = security_failure(message)
    {
        tracing::error!(target: "librdkafka", fac, "{hint}; retrying: {message}");
        return;
    }
    match level {
        RDKafkaLogLevel::Error if fac == "FAIL" => {
            tracing::warn!(target: "librdkafka", fac, "{message}")
        }
        RDKafkaLogLevel::Emerg
        | RDKafkaLogLevel::Alert
        | RDKafkaLogLevel::Critical
        | RDKafkaLogLevel::Error => tracing::error!(target: "librdkafka", fac, "{message}"),
        RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", fac, "{message}"),
        RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
            tracing::info!(target: "librdkafka", fac, "{message}")
        }
        RDKafkaLogLevel::Debug => tracing::debug!(target: "librdkafka", fac, "{message}"),
    }
}

/// A global librdkafka error (a broker down, all brokers down, ...): librdkafka keeps
/// reconnecting by itself, so these are warnings, except a refused authentication or
/// TLS handshake (a wrong password, an untrusted certificate): retrying cannot fix
/// those, so they are errors, naming the settings to check.
pub(crate) fn forward_error(error: &KafkaError, reason: &str) {
    match error.rdkafka_error_code() {
        Some(RDKafkaErrorCode::Authentication) => tracing::error!(
            target: "librdkafka",
            error = %error,
            "Kafka SASL authentication failed (check KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME, \
             KAFKA_SASL_PASSWORD); retrying: {reason}"
        ),
        Some(RDKafkaErrorCode::SSL) => tracing::error!(
            target: "librdkafka",
            error = %error,
            "Kafka TLS handshake failed (check KAFKA_SSL_CA_LOCATION and the broker's \
             certificate and host name); retrying: {reason}"
        ),
        _ => tracing::warn!(target: "librdkafka", error = %error, "{reason}"),
    }
}
