//! One Kafka request and its response over a plain blocking socket, every step bounded by
//! one deadline (the `kafka` crate's own client has a fixed 120 s socket timeout). Shared
//! by the readiness probe and the protocol-version check.

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// A response bigger than this is not a Kafka broker talking.
const MAX_RESPONSE: usize = 64 * 1024 * 1024;

/// A request: header v1 (api key, version, correlation id, client id), then `body`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Request<'a> {
    pub api_key: i16,
    pub api_version: i16,
    pub correlation_id: i32,
    pub client_id: &'a str,
    pub body: &'a [u8],
}

/// Time left before `deadline`; `TimedOut` once it has passed.
pub(crate) fn remaining(deadline: Instant) -> io::Result<Duration> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        Err(io::Error::new(io::ErrorKind::TimedOut, "deadline passed"))
    } else {
        Ok(left)
    }
}

/// Connects to the first address of `broker` (`host:port`) that accepts before `deadline`.
pub(crate) fn connect(broker: &str, deadline: Instant) -> io::Result<TcpStream> {
    let mut last_err = io::Error::new(io::ErrorKind::NotFound, "no address");
    for addr in broker.to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, remaining(deadline)?) {
            Ok(s) => return Ok(s),
            Err(e) => last_err = e,
        }
    }
    Err(last_err)
}

/// Sends `request` and returns the response body: what follows the correlation id
/// (response header v0), which must match the request's.
pub(crate) fn round_trip(
    s: &mut TcpStream,
    request: &Request<'_>,
    deadline: Instant,
) -> io::Result<Vec<u8>> {
    let client_id = request.client_id.as_bytes();
    let client_id_len = i16::try_from(client_id.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "client id too long"))?;
    let mut req = Vec::with_capacity(10 + client_id.len() + request.body.len());
    req.extend_from_slice(&request.api_key.to_be_bytes());
    req.extend_from_slice(&request.api_version.to_be_bytes());
    req.extend_from_slice(&request.correlation_id.to_be_bytes());
    req.extend_from_slice(&client_id_len.to_be_bytes());
    req.extend_from_slice(client_id);
    req.extend_from_slice(request.body);
    let size = i32::try_from(req.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "request too large"))?;
    let mut frame = size.to_be_bytes().to_vec();
    frame.extend_from_slice(&req);
    s.set_write_timeout(Some(remaining(deadline)?))?;
    s.write_all(&frame)?;

    s.set_read_timeout(Some(remaining(deadline)?))?;
    let mut size = [0u8; 4];
    s.read_exact(&mut size)?;
    let size = usize::try_from(i32::from_be_bytes(size))
        .ok()
        .filter(|&n| (4..=MAX_RESPONSE).contains(&n))
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad response size"))?;
    // Read as it arrives rather than allocating what the peer claims up front.
    let mut body = Vec::new();
    let mut rest = size;
    let mut chunk = [0u8; 8192];
    while rest > 0 {
        s.set_read_timeout(Some(remaining(deadline)?))?;
        let want = rest.min(chunk.len());
        let n = match s.read(&mut chunk[..want]) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed mid-response",
            ));
        }
        body.extend_from_slice(&chunk[..n]);
        rest -= n;
    }
    match body.split_first_chunk::<4>() {
        Some((id, _)) if *id == request.correlation_id.to_be_bytes() => {
            body.drain(..4);
            Ok(body)
        }
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "response does not match the request",
        )),
    }
}
