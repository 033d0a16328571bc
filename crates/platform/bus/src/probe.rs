//! A cheap readiness check over a plain socket, bounded by a timeout (the `kafka`
//! crate's own client has a fixed 120 s socket timeout): ApiVersions, to refuse a broker
//! the client cannot use, then one Metadata v0 round trip on the same connection.

use std::io;
use std::time::{Duration, Instant};

use crate::compat;
use crate::error::BusError;
use crate::wire::{self, Request};

const CORRELATION_ID: i32 = 0x0b05;
const METADATA: i16 = 3;

/// Ok if any of `brokers` answers a metadata request within `timeout` (overall).
/// A broker that answers without the protocol versions the `kafka` client uses fails
/// the probe with [`BusError::UnsupportedBroker`].
pub fn probe(brokers: &[String], timeout: Duration) -> Result<(), BusError> {
    if brokers.is_empty() {
        return Err(BusError::Config("no brokers given".into()));
    }
    let deadline = Instant::now() + timeout;
    let mut last = String::from("timed out");
    for b in brokers {
        match probe_one(b, deadline) {
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

fn probe_one(broker: &str, deadline: Instant) -> Result<(), Failure> {
    let mut s = wire::connect(broker, deadline)?;
    match compat::query(&mut s, deadline) {
        Ok(served) => compat::verdict(broker, &served).map_err(Failure::Unsupported)?,
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
