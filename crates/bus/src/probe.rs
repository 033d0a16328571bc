//! A cheap readiness check: one Metadata v0 round trip over a plain socket, bounded by a
//! timeout (the `kafka` crate's own client has a fixed 120 s socket timeout).

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use crate::error::BusError;

const CORRELATION_ID: i32 = 0x0b05;
/// A metadata answer bigger than this is not a Kafka broker talking.
const MAX_RESPONSE: usize = 64 * 1024 * 1024;

/// Ok if any of `brokers` answers a metadata request within `timeout` (overall).
pub fn probe(brokers: &[String], timeout: Duration) -> Result<(), BusError> {
    if brokers.is_empty() {
        return Err(BusError::Config("no brokers given".into()));
    }
    let deadline = Instant::now() + timeout;
    let mut last = String::from("timed out");
    for b in brokers {
        match probe_one(b, deadline) {
            Ok(()) => return Ok(()),
            Err(e) => {
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

fn remaining(deadline: Instant) -> std::io::Result<Duration> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "probe deadline passed",
        ))
    } else {
        Ok(left)
    }
}

fn probe_one(broker: &str, deadline: Instant) -> std::io::Result<()> {
    let mut last_err = std::io::Error::new(std::io::ErrorKind::NotFound, "no address");
    for addr in broker.to_socket_addrs()? {
        let stream = match TcpStream::connect_timeout(&addr, remaining(deadline)?) {
            Ok(s) => s,
            Err(e) => {
                last_err = e;
                continue;
            }
        };
        return round_trip(stream, deadline);
    }
    Err(last_err)
}

fn round_trip(mut s: TcpStream, deadline: Instant) -> std::io::Result<()> {
    let client_id = b"bus-probe";
    let mut req = Vec::with_capacity(32);
    req.extend_from_slice(&3i16.to_be_bytes()); // Metadata
    req.extend_from_slice(&0i16.to_be_bytes()); // v0
    req.extend_from_slice(&CORRELATION_ID.to_be_bytes());
    req.extend_from_slice(&(client_id.len() as i16).to_be_bytes());
    req.extend_from_slice(client_id);
    // One topic name would auto-create it; an empty list (v0: all topics) creates nothing.
    req.extend_from_slice(&0i32.to_be_bytes());
    let mut frame = (req.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&req);
    s.set_write_timeout(Some(remaining(deadline)?))?;
    s.write_all(&frame)?;
    s.set_read_timeout(Some(remaining(deadline)?))?;
    let mut size = [0u8; 4];
    s.read_exact(&mut size)?;
    let size = i32::from_be_bytes(size);
    let size = usize::try_from(size)
        .ok()
        .filter(|&n| (4..=MAX_RESPONSE).contains(&n))
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "bad response size"))?;
    let mut body = vec![0u8; size];
    s.set_read_timeout(Some(remaining(deadline)?))?;
    s.read_exact(&mut body)?;
    if body[..4] != CORRELATION_ID.to_be_bytes() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "response does not match the request",
        ));
    }
    Ok(())
}
