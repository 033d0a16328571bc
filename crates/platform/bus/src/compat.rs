//! The protocol-version check: before the `kafka` client talks to a broker, ask the broker
//! which versions it serves (ApiVersions v0, answered by every broker since 0.10) and
//! refuse one that no longer serves the versions the client sends (Apache Kafka 4.0
//! removed them, KIP-896) with an error that says so, instead of closed connections and
//! retries that never end.

use std::io;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::error::BusError;
use crate::versions::{MissingVersion, VersionRange};
use crate::wire::{self, Request};

const API_VERSIONS: i16 = 18;
const CORRELATION_ID: i32 = 0x0a71;
const CLIENT_ID: &str = "bus-version-check";
/// How long each broker gets to answer the check when the producer or consumer connects.
pub(crate) const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// Every request the `kafka` crate (0.10) sends, as (name, api key, version): all v0
/// except the offset requests, v1 with offsets kept in Kafka (`GroupOffsetStorage::Kafka`).
///
/// All are checked, whichever the caller needs: Apache Kafka 4.x (4.4.0 seen) still
/// advertises Produce v0 although it refuses it, so only Fetch, ListOffsets and
/// OffsetCommit give a 4.x broker away. (It still serves Metadata v0.)
const CLIENT_USES: &[(&str, i16, i16)] = &[
    ("Produce", 0, 0),
    ("Fetch", 1, 0),
    ("ListOffsets", 2, 0),
    ("Metadata", 3, 0),
    ("OffsetCommit", 8, 1),
    ("OffsetFetch", 9, 1),
    ("FindCoordinator", 10, 0),
];

/// Checks that the brokers serve every protocol version the `kafka` client uses. Each
/// broker in turn gets `timeout`; the first that answers decides:
/// - it serves them all: `Ok`;
/// - it lacks some (Apache Kafka 4.x): [`BusError::UnsupportedBroker`], not transient.
///
/// No broker accepting a connection is [`BusError::Unreachable`] (transient), as when the
/// client connects. Brokers that accept but give no usable answer (close the connection,
/// time out, send garbage) leave the question open: `Ok`, and the client finds out for
/// itself as it always did.
pub fn check_broker_versions(brokers: &[String], timeout: Duration) -> Result<(), BusError> {
    if brokers.is_empty() {
        return Err(BusError::Config("no brokers given".into()));
    }
    let mut connected = false;
    let mut last = String::from("timed out");
    for broker in brokers {
        let deadline = Instant::now() + timeout;
        let mut s = match wire::connect(broker, deadline) {
            Ok(s) => s,
            Err(e) => {
                last = format!("{broker}: {e}");
                continue;
            }
        };
        connected = true;
        match query(&mut s, deadline) {
            Ok(served) => return verdict(broker, &served),
            Err(e) => {
                tracing::debug!(%broker, error = %e, "no usable ApiVersions answer; leaving it to the kafka client");
            }
        }
    }
    if connected {
        Ok(())
    } else {
        Err(BusError::Unreachable {
            brokers: brokers.to_vec(),
            last,
        })
    }
}

/// [`check_broker_versions`] when `client` is the `kafka` crate; always `Ok` for
/// `rdkafka`, which negotiates versions with each broker (Apache Kafka 4.x included).
pub fn check_broker_versions_for(
    client: crate::KafkaClient,
    brokers: &[String],
    timeout: Duration,
) -> Result<(), BusError> {
    match client {
        crate::KafkaClient::Kafka => check_broker_versions(brokers, timeout),
        crate::KafkaClient::Rdkafka => Ok(()),
    }
}

/// `Ok` if `served` (a broker's ApiVersions table) has every version the client uses.
pub(crate) fn verdict(broker: &str, served: &[(i16, VersionRange)]) -> Result<(), BusError> {
    let missing = missing(served);
    if missing.is_empty() {
        Ok(())
    } else {
        Err(BusError::UnsupportedBroker {
            broker: broker.to_owned(),
            missing,
        })
    }
}

/// The versions the client uses that `served` lacks, in the client's order.
fn missing(served: &[(i16, VersionRange)]) -> Vec<MissingVersion> {
    CLIENT_USES
        .iter()
        .filter_map(|&(api, api_key, version)| {
            let range = served
                .iter()
                .find(|(key, _)| *key == api_key)
                .map(|&(_, r)| r);
            (!range.is_some_and(|r| r.contains(version))).then_some(MissingVersion {
                api,
                api_key,
                version,
                served: range,
            })
        })
        .collect()
}

/// Sends ApiVersions v0 on `s` and returns the broker's table. The connection stays
/// usable for further requests when this succeeds.
pub(crate) fn query(s: &mut TcpStream, deadline: Instant) -> io::Result<Vec<(i16, VersionRange)>> {
    let request = Request {
        api_key: API_VERSIONS,
        api_version: 0,
        correlation_id: CORRELATION_ID,
        client_id: CLIENT_ID,
        body: &[],
    };
    let body = wire::round_trip(s, &request, deadline)?;
    parse(&body).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// An ApiVersions v0 response that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ParseError {
    #[error("the ApiVersions response is cut short")]
    Truncated,
    #[error("the broker answered ApiVersions with error code {0}")]
    Refused(i16),
    #[error("the ApiVersions response has an array of length {0}")]
    BadLength(i32),
}

/// Decodes an ApiVersions v0 response body (after the correlation id): `error_code`
/// int16, then `[api_key int16, min_version int16, max_version int16]`. Bytes after
/// the table are ignored.
fn parse(body: &[u8]) -> Result<Vec<(i16, VersionRange)>, ParseError> {
    let mut r = Reader(body);
    let error_code = r.i16()?;
    if error_code != 0 {
        return Err(ParseError::Refused(error_code));
    }
    let len = r.i32()?;
    let count = usize::try_from(len).map_err(|_| ParseError::BadLength(len))?;
    if count > r.0.len() / 6 {
        return Err(ParseError::Truncated);
    }
    (0..count)
        .map(|_| {
            let key = r.i16()?;
            let min = r.i16()?;
            let max = r.i16()?;
            Ok((key, VersionRange { min, max }))
        })
        .collect()
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], ParseError> {
        let (head, rest) = self
            .0
            .split_first_chunk::<N>()
            .ok_or(ParseError::Truncated)?;
        self.0 = rest;
        Ok(*head)
    }

    fn i16(&mut self) -> Result<i16, ParseError> {
        self.take().map(i16::from_be_bytes)
    }

    fn i32(&mut self) -> Result<i32, ParseError> {
        self.take().map(i32::from_be_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(error_code: i16, table: &[(i16, i16, i16)]) -> Vec<u8> {
        let mut b = error_code.to_be_bytes().to_vec();
        b.extend_from_slice(&(table.len() as i32).to_be_bytes());
        for &(key, min, max) in table {
            for v in [key, min, max] {
                b.extend_from_slice(&v.to_be_bytes());
            }
        }
        b
    }

    /// What Apache Kafka 4.4.0 advertises for the APIs the client uses (and one more).
    const KAFKA_4_4: &[(i16, i16, i16)] = &[
        (0, 0, 13),
        (1, 4, 18),
        (2, 1, 11),
        (3, 0, 13),
        (8, 2, 10),
        (9, 1, 10),
        (10, 0, 6),
        (18, 0, 5),
    ];

    /// A 4.x-like table that also drops the old Produce and Metadata versions (as the
    /// KIP-896 text lists them).
    const KAFKA_4_NARROW: &[(i16, i16, i16)] = &[
        (0, 3, 12),
        (1, 4, 17),
        (2, 1, 10),
        (3, 4, 13),
        (8, 2, 9),
        (9, 1, 9),
        (10, 0, 6),
        (18, 0, 4),
        (19, 2, 7),
    ];

    /// What Apache Kafka 3.9.2 advertises for them.
    const KAFKA_3_9: &[(i16, i16, i16)] = &[
        (0, 0, 11),
        (1, 0, 17),
        (2, 0, 9),
        (3, 0, 12),
        (8, 0, 9),
        (9, 0, 9),
        (10, 0, 6),
        (18, 0, 4),
    ];

    /// devbroker's table (crates/devtools/devbroker/src/protocol/mod.rs).
    const DEVBROKER: &[(i16, i16, i16)] = &[
        (0, 0, 2),
        (1, 0, 3),
        (2, 0, 1),
        (3, 0, 1),
        (8, 0, 2),
        (9, 0, 1),
        (10, 0, 0),
        (18, 0, 0),
    ];

    fn check(table: &[(i16, i16, i16)]) -> Result<(), BusError> {
        let served = parse(&response(0, table)).map_err(|e| BusError::Config(e.to_string()))?;
        verdict("kafka-1:9092", &served)
    }

    #[test]
    fn parses_a_table() {
        let served = parse(&response(0, &[(0, 3, 12), (18, 0, 4)]));
        assert_eq!(
            served,
            Ok(vec![
                (0, VersionRange { min: 3, max: 12 }),
                (18, VersionRange { min: 0, max: 4 })
            ])
        );
        assert_eq!(parse(&response(0, &[])), Ok(vec![]));
        // Trailing bytes (e.g. a throttle time) are ignored.
        let mut long = response(0, &[(3, 0, 12)]);
        long.extend_from_slice(&0i32.to_be_bytes());
        assert_eq!(parse(&long).map(|t| t.len()), Ok(1));
    }

    #[test]
    fn brokers_that_serve_the_legacy_versions_pass() {
        assert!(check(KAFKA_3_9).is_ok());
        assert!(check(DEVBROKER).is_ok());
    }

    #[test]
    fn a_kafka_4_4_broker_is_refused_with_each_missing_version_and_what_it_serves() {
        let err = check(KAFKA_4_4)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert_eq!(
            err,
            "broker kafka-1:9092 does not serve the protocol versions the kafka client uses: \
             Fetch v0 (broker serves v4..v18), ListOffsets v0 (broker serves v1..v11), \
             OffsetCommit v1 (broker serves v2..v10); the kafka client needs a broker that \
             still serves them: Apache Kafka 3.x (3.9.2 or later recommended); \
             for Apache Kafka 4.x set KAFKA_CLIENT=rdkafka"
        );
    }

    #[test]
    fn every_missing_version_is_listed_in_the_clients_order() {
        let err = check(KAFKA_4_NARROW).err();
        let Some(BusError::UnsupportedBroker { broker, missing }) = &err else {
            panic!("expected UnsupportedBroker, got {err:?}");
        };
        assert_eq!(broker, "kafka-1:9092");
        let names: Vec<_> = missing.iter().map(|m| (m.api, m.version)).collect();
        assert_eq!(
            names,
            [
                ("Produce", 0),
                ("Fetch", 0),
                ("ListOffsets", 0),
                ("Metadata", 0),
                ("OffsetCommit", 1)
            ]
        );
        let err = err.map(|e| e.to_string()).unwrap_or_default();
        assert_eq!(
            err,
            "broker kafka-1:9092 does not serve the protocol versions the kafka client uses: \
             Produce v0 (broker serves v3..v12), Fetch v0 (broker serves v4..v17), \
             ListOffsets v0 (broker serves v1..v10), Metadata v0 (broker serves v4..v13), \
             OffsetCommit v1 (broker serves v2..v9); the kafka client needs a broker that \
             still serves them: Apache Kafka 3.x (3.9.2 or later recommended); \
             for Apache Kafka 4.x set KAFKA_CLIENT=rdkafka"
        );
    }

    #[test]
    fn an_api_the_broker_does_not_list_is_missing() {
        let without_offset_fetch: Vec<_> = DEVBROKER.iter().filter(|e| e.0 != 9).copied().collect();
        let err = check(&without_offset_fetch).err();
        assert!(!err.as_ref().is_some_and(BusError::is_transient));
        assert!(err.map(|e| e.to_string()).unwrap_or_default().contains(
            "does not serve the protocol versions the kafka client uses: \
                 OffsetFetch v1 (broker does not serve OffsetFetch);"
        ));
        // Only the max below the version also counts.
        let mut old = DEVBROKER.to_vec();
        old[4] = (8, 0, 0);
        let err = check(&old).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            err.contains(": OffsetCommit v1 (broker serves v0..v0);"),
            "{err}"
        );
    }

    #[test]
    fn bad_responses_are_errors_not_panics() {
        assert_eq!(parse(&[]), Err(ParseError::Truncated));
        assert_eq!(parse(&[0]), Err(ParseError::Truncated));
        assert_eq!(parse(&[0, 0, 0, 0]), Err(ParseError::Truncated));
        assert_eq!(
            parse(&response(35, KAFKA_4_4)),
            Err(ParseError::Refused(35))
        );
        let mut negative = 0i16.to_be_bytes().to_vec();
        negative.extend_from_slice(&(-1i32).to_be_bytes());
        assert_eq!(parse(&negative), Err(ParseError::BadLength(-1)));
        // A huge count with nothing behind it: no allocation, no panic.
        let mut huge = 0i16.to_be_bytes().to_vec();
        huge.extend_from_slice(&i32::MAX.to_be_bytes());
        assert_eq!(parse(&huge), Err(ParseError::Truncated));

        // Every cut of a good response, and noise, decode to a value or an error.
        let full = response(0, KAFKA_4_NARROW);
        for end in 0..full.len() {
            let cut = parse(&full[..end]);
            assert!(cut.is_err(), "{end}: {cut:?}");
        }
        let mut x: u32 = 0x9e37_79b9;
        for len in 0..200 {
            let noise: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect();
            let _ = parse(&noise).map(|served| missing(&served));
        }
    }
}
